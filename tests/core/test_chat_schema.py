"""Chat and generate spans in Braintrust's chat schema, so they render as OpenAI / Anthropic spans.

Every span the suite logs is checked against the schema by the `memory_logger` fixture
(tests/conftest.py); these tests pin the mapping itself on a whole tool-calling conversation, as
Ollama's tool-calling tutorial writes it, and show the check rejects Ollama's own shape.
"""

from __future__ import annotations

import json

import braintrust
import ollama
import pytest
from support.chat_schema import chat_schema_errors
from support.ollama_server import Chat, Generate
from support.sdk import HAS_THINK, sync_generate_think, think
from support.spans import by_name

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def add_two_numbers(a: int, b: int) -> int:
    """
    Add two numbers.

    Args:
      a: The first number
      b: The second number

    Returns:
      int: The sum
    """
    return a + b


def subtract_two_numbers(a: int, b: int) -> int:
    """
    Subtract two numbers.

    Args:
      a: The first number
      b: The second number

    Returns:
      int: The difference
    """
    return a - b


TOOLS = {"add_two_numbers": add_two_numbers, "subtract_two_numbers": subtract_two_numbers}
CALLS = [
    {"function": {"name": "add_two_numbers", "arguments": {"a": 3, "b": 1}}},
    {"function": {"name": "subtract_two_numbers", "arguments": {"a": 3, "b": 1}}},
]


def choice(message: dict) -> dict:
    return {"index": 0, "finish_reason": "stop", "message": message}


def tool_call(call_id: str, name: str, arguments: dict) -> dict:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))},
    }


def test_tool_conversation_logs_schema_messages_with_one_id_per_call(
    memory_logger, ollama_server, traced
):
    ollama_server.reply(
        "/api/chat",
        Chat("", thinking="Two tools to call.", tool_calls=CALLS),
        Chat("3 + 1 = 4 and 3 - 1 = 2."),
    )
    client = ollama.Client(host=ollama_server.url)
    messages: list = [{"role": "user", "content": "What is 3 + 1 and 3 - 1?"}]
    with braintrust.start_span(name="agent"):
        response = client.chat(
            model="qwen3", messages=messages, tools=list(TOOLS.values()), **think()
        )
        messages.append(response.message)
        for call in response.message.tool_calls or []:
            result = TOOLS[call.function.name](**call.function.arguments)
            messages.append(
                {"role": "tool", "content": str(result), "tool_name": call.function.name}
            )
        client.chat(model="qwen3", messages=messages, tools=list(TOOLS.values()), **think())

    first, second = by_name(memory_logger.pop(), "ollama.chat")
    calls = [
        tool_call("ollama_call_add_two_numbers_0", "add_two_numbers", {"a": 3, "b": 1}),
        tool_call("ollama_call_subtract_two_numbers_1", "subtract_two_numbers", {"a": 3, "b": 1}),
    ]
    reply = {"role": "assistant", "content": None, "tool_calls": calls}  # calls, no text
    if HAS_THINK:
        reply["reasoning"] = [{"content": "Two tools to call."}]
    assert first["input"] == [{"role": "user", "content": "What is 3 + 1 and 3 - 1?"}]
    assert first["output"] == [{"index": 0, "finish_reason": "tool_calls", "message": reply}]
    (sent,) = [r.body for r in ollama_server.requests][1:]
    sent_back = reply
    results = [
        {"role": "tool", "content": "4", "tool_call_id": "ollama_call_add_two_numbers_0"},
        {"role": "tool", "content": "2", "tool_call_id": "ollama_call_subtract_two_numbers_1"},
    ]
    if "tool_name" in sent["messages"][2]:  # the SDK sends tool_name from ollama 0.4.8
        results[0]["tool_name"], results[1]["tool_name"] = "add_two_numbers", "subtract_two_numbers"
    # The ids the first span gave its calls are the ids the results answer in the second.
    assert second["input"] == [first["input"][0], sent_back, *results]
    assert second["output"] == [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "3 + 1 = 4 and 3 - 1 = 2."},
        }
    ]
    assert chat_schema_errors(first) == chat_schema_errors(second) == []


async def test_streamed_tool_calls_get_the_same_ids(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/chat", Chat("", tool_calls=CALLS))
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="agent"):
        stream = await client.chat(
            model="qwen3",
            messages=[{"role": "user", "content": "What is 3 + 1 and 3 - 1?"}],
            tools=list(TOOLS.values()),
            stream=True,
        )
        async for _ in stream:
            pass
    (span,) = by_name(memory_logger.pop(), "ollama.chat")
    (choice,) = span["output"]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["id"] for c in choice["message"]["tool_calls"]] == [
        "ollama_call_add_two_numbers_0",
        "ollama_call_subtract_two_numbers_1",
    ]
    assert chat_schema_errors(span) == []


def test_generate_logs_system_prompt_and_images_as_messages(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/generate", Generate("A red square.", thinking="Look."))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="describe"):
        client.generate(
            model="llava",
            prompt="Describe",
            system="Be short.",
            images=[PNG],
            **sync_generate_think(),
        )
    (span,) = by_name(memory_logger.pop(), "ollama.generate")
    (attachment,) = memory_logger.uploaded_attachments
    assert span["input"] == [
        {"role": "system", "content": "Be short."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": attachment.reference}},
            ],
        },
    ]
    reply = {"role": "assistant", "content": "A red square."}
    if HAS_THINK:
        reply["reasoning"] = [{"content": "Look."}]
    assert span["output"] == [{"index": 0, "finish_reason": "stop", "message": reply}]
    assert chat_schema_errors(span) == []


def test_generate_suffix_is_on_the_prompt_message(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="complete"):
        client.generate(model="codellama:code", prompt="def add(a, b):\n", suffix="\n    return c")
    (span,) = by_name(memory_logger.pop(), "ollama.generate")
    assert span["input"] == [
        {"role": "user", "content": "def add(a, b):\n", "suffix": "\n    return c"}
    ]
    assert "suffix" not in span["metadata"]
    assert chat_schema_errors(span) == []


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (
            {"input": [{"role": "user", "content": "Hi", "images": ["aGk="]}]},
            "input[0]: unexpected key 'images'",
        ),
        (
            {"output": [choice({"role": "assistant", "content": "", "thinking": "Hmm."})]},
            "output[0].message: unexpected key 'thinking'",
        ),
        (
            {"output": [choice({"role": "assistant", "tool_calls": [CALLS[0]]})]},
            "output[0].message.tool_calls[0]: missing key 'id'",
        ),
        ({"input": [{"role": "tool", "content": "4"}]}, "input[0]: missing key 'tool_call_id'"),
        ({"input": "Describe"}, "input: expected a list of messages, got str"),
        ({"output": "A red square."}, "output: expected a list of choices, got 'A red square.'"),
        (
            {"output": {"role": "assistant", "content": "Hi"}},
            "output: expected a list of choices, got {'role': 'assistant', 'content': 'Hi'}",
        ),
        (
            {"output": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]},
            "output[0].finish_reason: expected a string",
        ),
        (
            {"output": [choice({"role": "user", "content": "Hi"})]},
            "output[0].message: role 'user', expected 'assistant'",
        ),
    ],
    ids=[
        "images-beside-content",
        "thinking",
        "call-without-id",
        "result-without-id",
        "bare-prompt",
        "bare-text",
        "bare-message",
        "choice-without-finish-reason",
        "user-reply",
    ],
)
def test_the_schema_check_rejects_ollamas_own_shape(row, error):
    assert error in chat_schema_errors(row)
