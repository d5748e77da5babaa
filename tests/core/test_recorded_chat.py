"""`ollama.chat` over real recorded Ollama traffic: one whole `ollama.chat` span per call.

Each test drives the real SDK (module function, imported function, `Client`, `AsyncClient`)
over HTTP replayed from a cassette, inside a test span, and checks the SDK span field by field
against what was sent and what the recording says the server answered.
"""

from __future__ import annotations

import base64
import json
import traceback
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import braintrust
import ollama
import pytest
from core.cassettes import (
    HOST,
    SDK_PARSES_THINKING,
    cached_prompt_metrics,
    expected_span,
    final_reply,
    metrics_of,
    recorded_request,
    replay,
    replies,
    server_metrics,
    whole,
)
from ollama import AsyncClient, Client
from ollama import chat as chat_imported_before_setup
from support.spans import choices, only, reply_of

QWEN = "qwen3.6:latest"  # every qwen cassette was recorded with this model
SEEDED = {"temperature": 0, "seed": 42}
# The metadata of a call made with model=QWEN, options=SEEDED (temperature also by its OpenAI name).
SEEDED_QWEN = {"model": QWEN, "temperature": 0, "options": SEEDED}
SKY = [{"role": "user", "content": "Why is the sky blue? Answer in one sentence."}]
COUNT = [{"role": "user", "content": "Count from 1 to 5, digits only."}]
JOKE = [{"role": "user", "content": "Tell me a joke about OpenTelemetry"}]
WEATHER = [
    {"role": "user", "content": "What is the weather in Paris? Use the get_current_weather tool."}
]
ADD = [{"role": "user", "content": "What is 2 + 3? Use the add_two_numbers tool."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "description": "The city name."}},
        },
    },
}
RED_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def add_two_numbers(a: int, b: int) -> int:
    """Add two numbers.

    Args:
      a: The first number.
      b: The second number.

    Returns:
      int: The sum of a and b.
    """
    return a + b


def assistant(
    message: dict[str, Any], calls_before: int = 0, done_reason: str = "stop"
) -> list[dict[str, Any]]:
    """The span output a recorded assistant message implies, as this SDK version parses it, in
    Braintrust's chat schema: choices, thinking as `reasoning`, tool calls with `type` and JSON
    text arguments. The SDK keeps a call's name and arguments only (no id), so each call's id is
    `ollama_call_<name>_<n>`, `n` counting the conversation's calls (`calls_before` of them came
    before this reply)."""
    calls = [
        {
            "id": f"ollama_call_{c['function']['name']}_{calls_before + i}",
            "type": "function",
            "function": {
                "name": c["function"]["name"],
                "arguments": json.dumps(c["function"]["arguments"], separators=(",", ":")),
            },
        }
        for i, c in enumerate(message.get("tool_calls") or [])
    ]
    output: dict[str, Any] = {
        "role": message["role"],
        "content": message["content"] or (None if calls else ""),
    }
    if SDK_PARSES_THINKING and message.get("thinking"):
        output["reasoning"] = [{"content": message["thinking"]}]
    if calls:
        output["tool_calls"] = calls
    finish_reason = "tool_calls" if calls else done_reason
    return [{"index": 0, "finish_reason": finish_reason, "message": output}]


def replied(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The choices a recorded whole (not streamed) reply implies."""
    return assistant(reply["message"], done_reason=reply["done_reason"])


def streamed(name: str) -> list[dict[str, Any]]:
    """The choices a recorded stream adds up to: its chunks' text, joined."""
    chunks = [r["message"] for r in replies(name)]
    return assistant(
        {
            "role": "assistant",
            "content": "".join(m.get("content", "") for m in chunks),
            "thinking": "".join(m.get("thinking", "") for m in chunks),
        },
        done_reason=final_reply(name)["done_reason"],
    )


def test_module_chat_span_holds_the_whole_call(memory_logger, traced):
    with replay("chat_plain"), braintrust.start_span(name="test") as parent:
        response = ollama.chat(model=QWEN, messages=SKY, options=SEEDED)

    reply = final_reply("chat_plain")
    assert response.message.content == reply["message"]["content"]
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "chat_plain",
        parent,
        input=SKY,
        output=replied(reply),
        **SEEDED_QWEN,
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_chat_imported_before_setup_logs_options_given_as_ollama_options(memory_logger, traced):
    with replay("chat_options_object"), braintrust.start_span(name="test") as parent:
        chat_imported_before_setup(
            model=QWEN, messages=SKY, options=ollama.Options(temperature=0, seed=42)
        )

    reply = final_reply("chat_options_object")
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "chat_options_object",
        parent,
        input=SKY,
        output=replied(reply),
        model=QWEN,
        temperature=0.0,
        options={"temperature": 0.0, "seed": 42},
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_client_chat_logs_host_without_credentials_api_key_or_headers(
    memory_logger, traced, monkeypatch
):
    monkeypatch.setenv("OLLAMA_API_KEY", "api-k3y")
    scheme, netloc, *rest = urlsplit(HOST)
    host_with_password = urlunsplit((scheme, f"user:pa55word@{netloc}", *rest))
    client = Client(host=host_with_password, headers={"Authorization": "Bearer bearer-t0ken"})

    with replay("chat_plain_client_with_credentials"), braintrust.start_span(name="test") as parent:
        client.chat(model=QWEN, messages=SKY, options=SEEDED)

    rows = memory_logger.pop()
    logged = json.dumps(rows, default=str)
    for secret in ("pa55word", "bearer-t0ken", "api-k3y"):
        assert secret not in logged
    reply = final_reply("chat_plain_client_with_credentials")
    span = only(rows, "ollama.chat")
    assert whole(span) == expected_span(
        "chat_plain_client_with_credentials",
        parent,
        input=SKY,
        output=replied(reply),
        **SEEDED_QWEN,
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


async def test_async_client_chat_span_holds_the_whole_call(memory_logger, traced):
    with replay("async_chat_plain"), braintrust.start_span(name="test") as parent:
        await AsyncClient().chat(model=QWEN, messages=SKY, options=SEEDED)

    reply = final_reply("async_chat_plain")
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "async_chat_plain",
        parent,
        input=SKY,
        output=replied(reply),
        **SEEDED_QWEN,
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_module_chat_stream_joins_thinking_and_content(memory_logger, traced):
    with replay("chat_stream_thinking"), braintrust.start_span(name="test") as parent:
        chunks = list(ollama.chat(model=QWEN, messages=COUNT, options=SEEDED, stream=True))

    assert "".join(c.message.content or "" for c in chunks) == "1\n2\n3\n4\n5"
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "chat_stream_thinking",
        parent,
        input=COUNT,
        output=streamed("chat_stream_thinking"),
        stream=True,
        **SEEDED_QWEN,
    )
    assert metrics_of(span) == pytest.approx(server_metrics(final_reply("chat_stream_thinking")))


async def test_async_client_chat_stream_joins_thinking_and_content(memory_logger, traced):
    with replay("async_chat_stream_thinking"), braintrust.start_span(name="test") as parent:
        stream = await AsyncClient().chat(model=QWEN, messages=COUNT, options=SEEDED, stream=True)
        chunks = [chunk async for chunk in stream]

    assert "".join(c.message.content or "" for c in chunks) == "1\n2\n3\n4\n5"
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "async_chat_stream_thinking",
        parent,
        input=COUNT,
        output=streamed("async_chat_stream_thinking"),
        stream=True,
        **SEEDED_QWEN,
    )
    reply = final_reply("async_chat_stream_thinking")
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_client_chat_stream_without_thinking(memory_logger, traced):
    with replay("chat_stream_plain"), braintrust.start_span(name="test") as parent:
        chunks = list(Client().chat(model="llama3", messages=JOKE, stream=True))

    output = streamed("chat_stream_plain")
    assert "".join(c.message.content or "" for c in chunks) == output[0]["message"]["content"]
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "chat_stream_plain",
        parent,
        input=JOKE,
        output=output,
        model="llama3",
        stream=True,
    )
    assert metrics_of(span) == pytest.approx(server_metrics(final_reply("chat_stream_plain")))


def test_chat_tool_given_as_json_schema_logs_tools_and_tool_calls(memory_logger, traced):
    with replay("chat_tool_call_json_schema"), braintrust.start_span(name="test") as parent:
        response = ollama.chat(model=QWEN, messages=WEATHER, tools=[WEATHER_TOOL], options=SEEDED)

    reply = final_reply("chat_tool_call_json_schema")
    assert response.message.tool_calls[0].function.arguments == {"city": "Paris"}
    span = only(memory_logger.pop(), "ollama.chat")
    assert reply_of(span)["tool_calls"] == [
        {
            "id": "ollama_call_get_current_weather_0",
            "type": "function",
            "function": {"name": "get_current_weather", "arguments": '{"city":"Paris"}'},
        }
    ]
    assert whole(span) == expected_span(
        "chat_tool_call_json_schema",
        parent,
        input=WEATHER,
        output=replied(reply),
        **SEEDED_QWEN,
        tools=[WEATHER_TOOL],
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_chat_tool_given_as_python_function_logs_the_converted_schema(memory_logger, traced):
    with replay("chat_tool_call_python_function"), braintrust.start_span(name="test") as parent:
        Client().chat(model=QWEN, messages=ADD, tools=[add_two_numbers], options=SEEDED)

    converted = {
        "type": "function",
        "function": {
            "name": "add_two_numbers",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "required": ["a", "b"],
                "properties": {
                    "a": {"type": "integer", "description": "The first number."},
                    "b": {"type": "integer", "description": "The second number."},
                },
            },
        },
    }
    # what the recording SDK sent for the same function: the conversion is the SDK's own
    assert recorded_request("chat_tool_call_python_function")["tools"] == [converted]
    reply = final_reply("chat_tool_call_python_function")
    span = only(memory_logger.pop(), "ollama.chat")
    assert reply_of(span)["tool_calls"] == [
        {
            "id": "ollama_call_add_two_numbers_0",
            "type": "function",
            "function": {"name": "add_two_numbers", "arguments": '{"a":2,"b":3}'},
        }
    ]
    assert whole(span) == expected_span(
        "chat_tool_call_python_function",
        parent,
        input=ADD,
        output=replied(reply),
        **SEEDED_QWEN,
        tools=[converted],
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_chat_input_maps_tool_calls_and_tool_results_to_one_call_id(memory_logger, traced):
    messages = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "function": {
                        "name": "get_current_weather",
                        "arguments": {"location": "San Francisco"},
                    }
                }
            ],
        },
        {"role": "tool", "content": "The weather in San Francisco is 70 degrees and sunny."},
    ]
    with replay("chat_tool_result_followup"), braintrust.start_span(name="test") as parent:
        ollama.chat(model="llama3.1", messages=messages)

    reply = final_reply("chat_tool_result_followup")
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "chat_tool_result_followup",
        parent,
        input=[
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "ollama_call_get_current_weather_0",
                        "type": "function",
                        "function": {
                            "name": "get_current_weather",
                            "arguments": '{"location":"San Francisco"}',
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "content": messages[1]["content"],
                "tool_call_id": "ollama_call_get_current_weather_0",
            },
        ],
        output=assistant(reply["message"], 1, reply["done_reason"]),
        model="llama3.1",
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_model_not_found_404_is_reraised_unchanged_and_recorded_on_the_span(memory_logger, traced):
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    with (
        replay("chat_model_not_found_404"),
        braintrust.start_span(name="test") as parent,
        pytest.raises(ollama.ResponseError) as raised,
    ):
        ollama.chat(model="nonexistent-model:latest", messages=messages)

    assert type(raised.value) is ollama.ResponseError
    assert raised.value.status_code == 404
    assert raised.value.error == "model 'nonexistent-model:latest' not found"
    # raised by the SDK itself, not re-created by our wrapper
    assert traceback.extract_tb(raised.tb)[-1].filename.endswith("ollama/_client.py")
    span = only(memory_logger.pop(), "ollama.chat")
    assert "ResponseError" in span["error"]
    assert "model 'nonexistent-model:latest' not found" in span["error"]
    assert whole(span) | {"error": None} == {
        "name": "ollama.chat",
        "type": "llm",
        "input": messages,
        "output": None,
        "metadata": {
            "provider": "ollama",
            "model": "nonexistent-model:latest",
            "stream": False,
            "status_code": 404,
            "host": HOST,
        },
        "error": None,
        "span_parents": [parent.span_id],
    }
    assert set(span["metrics"]) == {"start", "end"}


async def test_cached_prompt_without_prompt_eval_count_has_no_prompt_tokens(memory_logger, traced):
    with replay("async_chat_cached_prompt"), braintrust.start_span(name="test") as parent:
        await AsyncClient().chat(model="llama3", messages=JOKE)

    reply = final_reply("async_chat_cached_prompt")
    assert "prompt_eval_count" not in reply  # Ollama omits it when the prompt was cached
    span = only(memory_logger.pop(), "ollama.chat")
    assert whole(span) == expected_span(
        "async_chat_cached_prompt",
        parent,
        input=JOKE,
        output=replied(reply),
        model="llama3",
    )
    assert metrics_of(span) == pytest.approx(cached_prompt_metrics(reply))


def test_chat_images_are_logged_as_attachments_never_base64(memory_logger, traced):
    """Hand-made cassette: no public recording sends an image."""
    png = base64.b64decode(RED_PIXEL_PNG)
    question = "What colour is this image? One word."
    with replay("chat_images"), braintrust.start_span(name="test") as parent:
        ollama.chat(
            model="gemma3:4b", messages=[{"role": "user", "content": question, "images": [png]}]
        )

    assert recorded_request("chat_images")["messages"][0]["images"] == [RED_PIXEL_PNG]
    reply = final_reply("chat_images")
    rows = memory_logger.pop()
    assert RED_PIXEL_PNG not in json.dumps(rows, default=str)
    span = only(rows, "ollama.chat")
    ((message,),) = [span["input"]]
    text, image_part = message.pop("content")
    assert text == {"type": "text", "text": question}
    assert image_part["type"] == "image_url"
    image = image_part["image_url"]["url"]
    assert image == {
        "type": "braintrust_attachment",
        "filename": "image-0.png",
        "content_type": "image/png",
        "key": image["key"],
    }
    # the bytes handed to Braintrust for upload are the image itself
    uploads = memory_logger.uploaded_attachments
    assert [(a.reference["key"], a.data) for a in uploads] == [(image["key"], png)]
    assert whole(span) == expected_span(
        "chat_images",
        parent,
        input=[{"role": "user"}],
        output=replied(reply),
        model="gemma3:4b",
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_stream_read_after_its_span_ended_stays_under_the_span_it_was_called_in(
    memory_logger, traced
):
    # The SDK sends nothing until the first next(): the parent is fixed at call time.
    with replay("chat_stream_plain"):
        with braintrust.start_span(name="test") as parent:
            stream = ollama.chat(model="llama3", messages=JOKE, stream=True)
        with braintrust.start_span(name="elsewhere"):
            text = "".join(chunk.message.content or "" for chunk in stream)

    span = only(memory_logger.pop(), "ollama.chat")
    assert span["output"] == choices({"role": "assistant", "content": text})
    assert span["span_parents"] == [parent.span_id]
    assert span["root_span_id"] == parent.root_span_id
