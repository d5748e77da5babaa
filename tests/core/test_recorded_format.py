"""A JSON schema as `format` (ollama > 0.4.0; conftest.py collects this module only for SDKs that
take one). Hand-made cassette: no public recording sends a schema.
"""

from __future__ import annotations

import braintrust
import pytest
from core.cassettes import (
    expected_span,
    final_reply,
    metrics_of,
    replay,
    server_metrics,
    whole,
)
from ollama import Client
from support.spans import only

QWEN = "qwen3.6:latest"
SEEDED = {"temperature": 0, "seed": 42}
CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer as JSON."}]
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
}


def test_chat_with_json_schema_format_logs_the_schema(memory_logger, traced):
    with replay("chat_format_json_schema"), braintrust.start_span(name="test") as parent:
        response = Client().chat(model=QWEN, messages=CAPITAL, format=CITY, options=SEEDED)

    reply = final_reply("chat_format_json_schema")
    assert response.message.content == '{"city": "Paris", "country": "France"}'
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "chat_format_json_schema",
        parent,
        input=CAPITAL,
        output=[
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": reply["message"]["content"]},
            }
        ],
        model=QWEN,
        temperature=0,
        response_format=CITY,
        options=SEEDED,
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))
