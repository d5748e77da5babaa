"""Streams: the span is written exactly once, with the output seen so far, however they end."""

from __future__ import annotations

import asyncio
import gc
import threading

import braintrust
import httpx
import ollama
import pytest
from support.ollama_server import Chat, Fault, Generate
from support.sdk import HAS_THINK, think
from support.spans import by_name, choices, only, reply_of

MESSAGES = [{"role": "user", "content": "What is 2 + 3?"}]
TOOL_CALL = {"function": {"name": "add", "arguments": {"a": 2, "b": 3}}}


def test_exhausted_chat_stream_joins_content_thinking_and_tool_calls(
    memory_logger, ollama_server, traced
):
    ollama_server.reply(
        "/api/chat",
        Chat("It is five.", thinking="Two plus three.", tool_calls=[TOOL_CALL], eval_count=7),
    )
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request") as parent:
        chunks = list(client.chat(model="qwen3", messages=MESSAGES, stream=True, **think()))
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["span_parents"] == [parent.span_id]
    expected = {
        "role": "assistant",
        "content": "It is five.",
        "tool_calls": [
            {
                "id": "ollama_call_add_0",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a":2,"b":3}'},
            }
        ],
    }
    if HAS_THINK:  # older SDKs drop the thinking the server sends
        expected["reasoning"] = [{"content": "Two plus three."}]
    assert span["output"] == choices(expected, "tool_calls")
    assert span["metadata"]["stream"] is True
    assert span["metadata"].get("think") is (True if HAS_THINK else None)
    assert span["metadata"]["done_reason"] == "stop"
    metrics = span["metrics"]
    assert (metrics["prompt_tokens"], metrics["completion_tokens"], metrics["tokens"]) == (
        26,
        7,
        33,
    )
    assert metrics["eval_duration"] == pytest.approx(0.14)
    assert 0 <= metrics["time_to_first_token"] <= metrics["end"] - metrics["start"]
    assert chunks[-1].done is True and chunks[-1].eval_count == 7


def test_stream_parent_is_the_span_current_at_call_not_at_iteration(
    memory_logger, ollama_server, traced
):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="caller") as caller:
        stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
    with braintrust.start_span(name="consumer"):
        for _ in stream:
            pass
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["span_parents"] == [caller.span_id]


def test_error_line_mid_stream_is_raised_unchanged_and_recorded_with_partial_output(
    memory_logger, ollama_server, traced
):
    ollama_server.reply("/api/chat", Fault(chunks=2, then="error", message="model runner crashed"))
    client = ollama.Client(host=ollama_server.url)
    seen = []
    with braintrust.start_span(name="request"), pytest.raises(ollama.ResponseError) as raised:
        for chunk in client.chat(model="llama3.2", messages=MESSAGES, stream=True):
            seen.append(chunk.message.content)
    assert raised.value.error == "model runner crashed"
    assert raised.value.status_code == -1
    span = only(memory_logger.pop(), "ollama.chat")
    assert seen == ["part0 ", "part1 "]
    assert span["output"] == choices({"role": "assistant", "content": "part0 part1 "})
    assert span["error"].endswith(f"ResponseError: {raised.value}\n")
    assert "prompt_tokens" not in span["metrics"]


def test_connection_cut_mid_stream_is_raised_unchanged_and_recorded(
    memory_logger, ollama_server, traced
):
    ollama_server.reply("/api/generate", Fault(chunks=1, then="cut"))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"), pytest.raises(httpx.RemoteProtocolError):
        for _ in client.generate(model="llama3.2", prompt="Tell me a story", stream=True):
            pass
    span = only(memory_logger.pop(), "ollama.generate")
    assert span["output"] == choices({"role": "assistant", "content": "part0 "})
    assert "httpx.RemoteProtocolError: peer closed connection" in span["error"]


def test_stream_broken_early_still_ends_span_with_partial_output(
    memory_logger, ollama_server, traced
):
    ollama_server.reply("/api/chat", Chat("one two three four five"))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
        for chunk in stream:
            if chunk.message.content.startswith("two"):
                break
        # As untraced, the generator stays open while it is held (a second loop would carry
        # on reading it); releasing it ends the span.
        assert by_name(memory_logger.pop(), "ollama.chat") == []
        del stream
        span = only(memory_logger.pop(), "ollama.chat")
    assert reply_of(span)["content"] == "one two "
    assert span.get("error") is None


def test_stream_read_with_next_and_dropped_is_recorded_with_partial_output(
    memory_logger, ollama_server, traced
):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
        next(stream)
        del stream  # no reference cycle: collected here, not by a later gc.collect()
        span = only(memory_logger.pop(), "ollama.chat")
    assert reply_of(span)["content"] == "Hello! "


def test_closed_stream_ends_span_once(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        stream = client.generate(model="llama3.2", prompt="Hi", stream=True)
        first = next(stream)
        stream.close()
        stream.close()
        with pytest.raises(StopIteration):
            next(stream)
        del stream
        gc.collect()
    span = only(memory_logger.pop(), "ollama.generate")
    assert span["output"] == choices({"role": "assistant", "content": first.response})


def test_stream_never_iterated_is_recorded_when_collected(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request") as parent:
        stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
        del stream
        gc.collect()
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["span_parents"] == [parent.span_id]
    assert span["output"] == choices({"role": "assistant", "content": ""})
    assert ollama_server.requests == []  # the SDK never sent it


async def test_async_stream_is_traced_like_the_sync_one(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/generate", Generate("Blue.", thinking="Scattering.", eval_count=2))
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="request") as parent:
        stream = await client.generate(model="qwen3", prompt="Sky colour?", stream=True, **think())
    text = "".join([chunk.response async for chunk in stream])
    span = only(memory_logger.pop(), "ollama.generate")
    assert text == "Blue."
    assert span["span_parents"] == [parent.span_id]
    expected = {"role": "assistant", "content": "Blue."}
    if HAS_THINK:
        expected["reasoning"] = [{"content": "Scattering."}]
    assert span["output"] == choices(expected)
    assert span["metrics"]["completion_tokens"] == 2


async def test_cancelled_async_stream_is_recorded_as_cancelled(
    memory_logger, ollama_server, traced
):
    gate = threading.Semaphore(0)
    ollama_server.reply("/api/chat", Chat("slow words here", gate=gate))
    client = ollama.AsyncClient(host=ollama_server.url)
    first_chunk = asyncio.Event()

    async def consume() -> None:
        async for _ in await client.chat(model="llama3.2", messages=MESSAGES, stream=True):
            first_chunk.set()

    with braintrust.start_span(name="request"):
        task = asyncio.create_task(consume())
        await first_chunk.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    gate.release(10)
    span = only(memory_logger.pop(), "ollama.chat")
    assert reply_of(span)["content"] == "slow "
    assert span["error"].endswith("CancelledError\n")


async def test_async_stream_aclose_ends_span(memory_logger, ollama_server, traced):
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        stream = await client.chat(model="llama3.2", messages=MESSAGES, stream=True)
        await stream.__anext__()
        await stream.aclose()
    rows = memory_logger.pop()
    assert reply_of(only(rows, "ollama.chat"))["content"] == "Hello! "
    assert len(by_name(rows, "ollama.chat")) == 1
