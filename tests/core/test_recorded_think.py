"""`think` on generate (ollama >= 0.5; conftest.py collects this module only for SDKs that have it).

Hand-made cassettes: no public recording sends `think` to /api/generate.
"""

from __future__ import annotations

import braintrust
import ollama
import pytest
from core.cassettes import (
    expected_span,
    final_reply,
    metrics_of,
    replay,
    replies,
    server_metrics,
    whole,
)
from ollama import AsyncClient
from support.spans import choices, only

QWEN = "qwen3.6:latest"
CALC = "What is 17 * 23? Reply with the number only."
CALCULATOR = "You are a careful calculator."
# A generate span in Braintrust's chat schema: the system prompt and the prompt as messages.
CALC_INPUT = [{"role": "system", "content": CALCULATOR}, {"role": "user", "content": CALC}]


def thought(text: str, thinking: str) -> list[dict]:
    """A generate span's output: the text, with the model's thinking as `reasoning`."""
    return choices({"role": "assistant", "content": text, "reasoning": [{"content": thinking}]})


def test_generate_with_think_logs_system_thinking_and_keep_alive(memory_logger, traced):
    with replay("generate_think"), braintrust.start_span(name="test") as parent:
        ollama.generate(model=QWEN, prompt=CALC, system=CALCULATOR, think=True, keep_alive="10m")

    reply = final_reply("generate_think")
    span = only(memory_logger.pop(), "ollama.generate")
    assert whole(span) == expected_span(
        "generate_think",
        parent,
        name="ollama.generate",
        input=CALC_INPUT,
        output=thought(reply["response"], reply["thinking"]),
        model=QWEN,
        think=True,
        keep_alive="10m",
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


async def test_async_generate_stream_with_think_joins_thinking_and_text(memory_logger, traced):
    cassette = "generate_think_stream"
    with replay(cassette), braintrust.start_span(name="test") as parent:
        stream = await AsyncClient().generate(
            model=QWEN, prompt=CALC, system=CALCULATOR, think=True, keep_alive="10m", stream=True
        )
        chunks = [chunk async for chunk in stream]

    assert "".join(c.response for c in chunks) == "391"
    span = only(memory_logger.pop(), "ollama.generate")
    assert whole(span) == expected_span(
        cassette,
        parent,
        name="ollama.generate",
        input=CALC_INPUT,
        output=thought(
            "".join(r["response"] for r in replies(cassette)),
            "".join(r.get("thinking", "") for r in replies(cassette)),
        ),
        model=QWEN,
        stream=True,
        think=True,
        keep_alive="10m",
    )
    assert metrics_of(span) == pytest.approx(server_metrics(final_reply(cassette)))
