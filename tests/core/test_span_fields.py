"""What each span holds: input as sent, output, metadata and metrics (see tracing.py)."""

from __future__ import annotations

import base64
import inspect
import json

import braintrust
import ollama
import pytest
from braintrust import Attachment
from support.ollama_server import Chat, Embed, Generate
from support.sdk import HAS_SCHEMA_FORMAT, HAS_THINK, think
from support.spans import only

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def add_two_numbers(a: int, b: int) -> int:
    """
    Add two numbers together.

    Args:
      a: The first number
      b: The second number

    Returns:
      int: The sum
    """
    return a + b


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"}},
            "required": ["city"],
        },
    },
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
}
FORMAT = ANSWER_SCHEMA if HAS_SCHEMA_FORMAT else "json"


def test_chat_span_holds_messages_settings_tools_and_metrics(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/chat", Chat('{"answer": 5}', prompt_eval_count=40, eval_count=6))
    client = ollama.Client(host=ollama_server.url)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2 + 3?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "add_two_numbers", "arguments": {"a": 2, "b": 3}}}
            ],
        },
        {"role": "tool", "content": "5", "tool_name": "add_two_numbers"},
    ]
    with braintrust.start_span(name="request") as parent:
        client.chat(
            model="qwen3:4b",
            messages=messages,
            tools=[add_two_numbers, WEATHER_TOOL],
            options=ollama.Options(temperature=0.2, num_ctx=4096, seed=7),
            format=FORMAT,
            keep_alive="5m",
            **think(False),
        )
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["span_attributes"]["type"] == "llm"
    assert span["span_parents"] == [parent.span_id]
    (sent,) = ollama_server.requests
    tool_result = {"role": "tool", "content": "5", "tool_call_id": "ollama_call_add_two_numbers_0"}
    if "tool_name" in sent.body["messages"][3]:  # the SDK sends tool_name from ollama 0.4.8
        tool_result["tool_name"] = "add_two_numbers"
    assert span["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2 + 3?"},
        {
            "role": "assistant",
            "content": None,  # the SDK drops the empty content
            "tool_calls": [
                {
                    "id": "ollama_call_add_two_numbers_0",
                    "type": "function",
                    "function": {"name": "add_two_numbers", "arguments": '{"a":2,"b":3}'},
                }
            ],
        },
        tool_result,
    ]
    assert span["output"] == [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": '{"answer": 5}'},
        }
    ]
    metadata = span["metadata"]
    assert metadata["provider"] == "ollama"
    assert metadata["model"] == "qwen3:4b"
    assert metadata["temperature"] == 0.2  # OpenAI's name, beside the options as sent
    assert metadata["options"] == {"temperature": 0.2, "num_ctx": 4096, "seed": 7}
    assert metadata["response_format"] == FORMAT
    assert "format" not in metadata
    assert metadata.get("think") is (False if HAS_THINK else None)
    assert metadata["keep_alive"] == "5m"
    assert metadata["stream"] is False
    assert metadata["done_reason"] == "stop"
    assert metadata["host"] == ollama_server.url
    tool = metadata["tools"][0]["function"]
    assert tool["name"] == "add_two_numbers"
    assert tool["description"] == "Add two numbers together."
    assert tool["parameters"]["properties"]["a"] == {
        "type": "integer",
        "description": "The first number",
    }
    assert metadata["tools"][1] == WEATHER_TOOL
    metrics = span["metrics"]
    assert metrics["prompt_tokens"] == 40
    assert metrics["completion_tokens"] == 6
    assert metrics["tokens"] == 46
    assert metrics["total_duration"] == pytest.approx(1.234567)
    assert metrics["load_duration"] == pytest.approx(0.012345)
    assert metrics["prompt_eval_duration"] == pytest.approx(0.098765)
    assert metrics["eval_duration"] == pytest.approx(0.12)
    # Generation speed from the server's own counters: tokens over each eval duration.
    assert metrics["prompt_tokens_per_second"] == pytest.approx(40 / 0.098765)
    assert metrics["completion_tokens_per_second"] == pytest.approx(6 / 0.12)
    assert metadata["cold_start"] is False  # loaded in 12 ms: the model was already loaded
    # A plain call's time to first token is its whole latency, as in Braintrust's OpenAI integration.
    assert metrics["time_to_first_token"] == pytest.approx(
        metrics["end"] - metrics["start"], abs=1e-3
    )


def test_options_given_as_dict_are_logged_as_sent(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.generate(model="llama3.2", prompt="Hi", options={"temperature": 0, "stop": ["\n"]})
    span = only(memory_logger.pop(), "ollama.generate")
    assert span["metadata"]["options"] == {"temperature": 0, "stop": ["\n"]}


def test_images_are_attachments_never_base64_text(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(
            model="llava",
            messages=[
                {
                    "role": "user",
                    "content": "What is this?",
                    "images": [PNG, base64.b64encode(JPEG).decode()],
                }
            ],
        )
        client.generate(model="llava", prompt="Describe", system="Be short.", images=[PNG])
    rows = memory_logger.pop()
    uploaded = memory_logger.uploaded_attachments
    assert [type(a) for a in uploaded] == [Attachment, Attachment, Attachment]
    assert [(a.data, a.reference["content_type"]) for a in uploaded] == [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (PNG, "image/png"),
    ]
    # Rows hold references to the uploaded files, never the image bytes, in image_url parts.
    assert only(rows, "ollama.chat")["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": uploaded[0].reference}},
                {"type": "image_url", "image_url": {"url": uploaded[1].reference}},
            ],
        }
    ]
    assert uploaded[0].reference["type"] == "braintrust_attachment"
    generate = only(rows, "ollama.generate")
    assert generate["input"] == [
        {"role": "system", "content": "Be short."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": uploaded[2].reference}},
            ],
        },
    ]
    serialized = json.dumps(rows, default=str)
    assert base64.b64encode(PNG).decode() not in serialized


def test_generate_with_a_bare_prompt_logs_the_prompt_and_text(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/generate", Generate("Blue.", prompt_eval_count=None, eval_count=2))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.generate(model="llama3.2", prompt="Sky colour?", suffix="")
    span = only(memory_logger.pop(), "ollama.generate")
    assert span["input"] == [{"role": "user", "content": "Sky colour?"}]
    assert span["output"] == [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Blue."}}
    ]
    # A cached prompt has no prompt_eval_count: no prompt_tokens, tokens = completion only.
    assert "prompt_tokens" not in span["metrics"]
    assert span["metrics"]["completion_tokens"] == 2
    assert span["metrics"]["tokens"] == 2


def test_embed_logs_inputs_and_vector_shape_not_vectors(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/embed", Embed(dimensions=8, prompt_eval_count=9))
    ollama_server.reply("/api/embeddings", Embed(dimensions=8))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.embed(model="nomic-embed-text", input=["first text", "second text"], truncate=True)
        client.embeddings(model="nomic-embed-text", prompt="legacy text")
    rows = memory_logger.pop()
    embed = only(rows, "ollama.embed")
    assert embed["input"] == ["first text", "second text"]
    assert embed["output"] == {"embedding_length": 8, "embeddings": 2}
    assert embed["metadata"]["truncate"] is True
    assert embed["metrics"]["prompt_tokens"] == 9
    assert embed["metrics"]["tokens"] == 9
    legacy = only(rows, "ollama.embeddings")
    assert legacy["input"] == "legacy text"
    assert legacy["output"] == {"embedding_length": 8}
    assert not {"prompt_tokens", "completion_tokens", "tokens"} & set(legacy["metrics"])


def test_credentials_and_headers_are_never_logged(
    memory_logger, ollama_server, traced, monkeypatch
):
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-ollama-secret-key")
    host = ollama_server.url.replace("http://", "http://alice:hunter2@")
    client = ollama.Client(host=host, headers={"X-Api-Key": "sk-header-secret"})
    with braintrust.start_span(name="request"):
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
    (request,) = ollama_server.requests
    assert request.headers["x-api-key"] == "sk-header-secret"  # it was sent...
    rows = memory_logger.pop()
    dumped = json.dumps(rows, default=str)
    for secret in ("sk-ollama-secret-key", "sk-header-secret", "hunter2", "alice", "Bearer"):
        assert secret not in dumped  # ...and is in no span
    assert only(rows, "ollama.chat")["metadata"]["host"] == ollama_server.url


def test_context_names_the_users_line_for_calls_and_streams(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
        chat_line = inspect.currentframe().f_lineno - 1
        stream = client.generate(model="llama3.2", prompt="Hi", stream=True)
        generate_line = inspect.currentframe().f_lineno - 1
    consume(stream)  # the span is written here, from inside the iteration
    rows = memory_logger.pop()
    here = {
        "caller_functionname": inspect.currentframe().f_code.co_name,
        "caller_filename": __file__,
    }
    assert caller_of(only(rows, "ollama.chat")) == {**here, "caller_lineno": chat_line}
    assert caller_of(only(rows, "ollama.generate")) == {**here, "caller_lineno": generate_line}


def consume(stream) -> None:
    for _ in stream:
        pass


def caller_of(span: dict) -> dict:
    """The span's call site (Braintrust's `context` also holds its own `span_origin`)."""
    return {k: v for k, v in span["context"].items() if k.startswith("caller_")}


async def test_context_names_the_users_line_for_async_calls(memory_logger, ollama_server, traced):
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        await client.embed(model="all-minilm", input="Hi")
        line = inspect.currentframe().f_lineno - 1
    assert caller_of(only(memory_logger.pop(), "ollama.embed")) == {
        "caller_functionname": "test_context_names_the_users_line_for_async_calls",
        "caller_filename": __file__,
        "caller_lineno": line,
    }
