"""Traced streams are what the SDK returns: generators (async generators for `AsyncClient`).

Each test runs one use of the generator protocol twice, on the SDK untraced and traced, and
asserts the user sees the same thing both times (values, exceptions, generator state); then that
the traced run wrote exactly one span holding what was read.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import braintrust
import ollama
import pytest
from braintrust_ollama import setup_ollama, unpatch_ollama
from support.spans import by_name, choices

MESSAGES = [{"role": "user", "content": "Hello"}]
REPLY = "Hello! How can I help you today?"  # FakeOllama's canned chat, streamed word by word


def text(chunk: Any) -> str:
    return chunk.message.content


def attempt(action: Callable[[], Any]) -> tuple[str, ...]:
    """What the user sees when calling `action`: a chunk's text, a value, or what it raised."""
    try:
        result = action()
    except BaseException as error:  # StopIteration, GeneratorExit and friends included
        return ("raised", type(error).__name__, str(error))
    return ("chunk", text(result)) if hasattr(result, "message") else ("value", repr(result))


async def attempt_async(action: Callable[[], Any]) -> tuple[str, ...]:
    try:
        result = await action()
    except BaseException as error:
        return ("raised", type(error).__name__, str(error))
    return ("chunk", text(result)) if hasattr(result, "message") else ("value", repr(result))


def send(stream: Any) -> list[Any]:
    return [
        attempt(lambda: stream.send("too early")),
        inspect.getgeneratorstate(stream),
        attempt(lambda: next(stream)),
        attempt(lambda: stream.send("ignored")),
        attempt(lambda: stream.send(None)),
        attempt(stream.close),
    ]


def throw(stream: Any) -> list[Any]:
    return [
        attempt(lambda: next(stream)),
        attempt(lambda: stream.throw(ValueError("stop reading"))),
        inspect.getgeneratorstate(stream),
        attempt(lambda: next(stream)),
    ]


def close(stream: Any) -> list[Any]:
    return [
        attempt(lambda: next(stream)),
        attempt(stream.close),
        inspect.getgeneratorstate(stream),
        attempt(lambda: next(stream)),
        attempt(stream.close),
    ]


def kind(stream: Any) -> list[Any]:
    return [
        inspect.isgenerator(stream),
        iter(stream) is stream,
        type(stream).__name__,
        inspect.getgeneratorstate(stream),
        "".join(text(c) for c in stream),
        inspect.getgeneratorstate(stream),
    ]


def loop_left_and_resumed(stream: Any) -> list[Any]:
    seen = []
    for chunk in stream:
        seen.append(text(chunk))
        break
    seen.append("".join(text(c) for c in stream))  # a second loop carries on, as untraced
    return seen


# use of the protocol -> (span output content, span error) of the traced run
SYNC_CASES = {
    "isgenerator_and_iteration": (kind, REPLY, None),
    "send": (send, "Hello! How can ", None),
    "throw": (throw, "Hello! ", "ValueError: stop reading"),
    "close": (close, "Hello! ", None),
    "loop_left_by_break_then_resumed": (loop_left_and_resumed, REPLY, None),
}


def assert_error(span: dict[str, Any], error: str | None) -> None:
    """No error, or Braintrust's record of it: a traceback ending in `Type: message`."""
    if error is None:
        assert span.get("error") is None
    else:
        assert span["error"].startswith("Traceback (most recent call last):")
        assert span["error"].rstrip().endswith(error)


def run_both(url: str, use: Callable[[Any], list[Any]]) -> tuple[list[Any], list[Any]]:
    """`use` on an untraced stream, then on a traced one (under a span, with `setup_ollama()`)."""
    client = ollama.Client(host=url)
    untraced = use(client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    setup_ollama()
    try:
        with braintrust.start_span(name="request"):
            stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
            traced = use(stream)
            del stream  # released: a stream the use left unfinished is written now
    finally:
        unpatch_ollama()
    return untraced, traced


@pytest.mark.parametrize("case", list(SYNC_CASES))
def test_traced_stream_behaves_as_the_sdk_generator(memory_logger, ollama_server, case):
    use, content, error = SYNC_CASES[case]
    untraced, traced = run_both(ollama_server.url, use)
    assert traced == untraced
    spans = by_name(memory_logger.pop(), "ollama.chat")
    assert len(spans) == 1
    assert spans[0]["output"] == choices({"role": "assistant", "content": content})
    assert_error(spans[0], error)


def test_loop_over_the_call_left_by_break_ends_the_span_at_once(
    memory_logger, ollama_server, traced
):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        for chunk in client.chat(model="llama3.2", messages=MESSAGES, stream=True):
            if text(chunk).startswith("How"):
                break
        (span,) = by_name(memory_logger.pop(), "ollama.chat")  # before the parent ends
    assert span["output"] == choices({"role": "assistant", "content": "Hello! How "})
    assert span.get("error") is None


def test_stream_closed_before_it_started_is_written_once_when_released(
    memory_logger, ollama_server, traced
):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
        stream.close()
        with pytest.raises(StopIteration):
            next(stream)
        del stream
    (span,) = by_name(memory_logger.pop(), "ollama.chat")
    assert span["output"] == choices({"role": "assistant", "content": ""})
    assert ollama_server.requests == []  # as untraced: the request was never sent


# --- async ---------------------------------------------------------------------------------


async def akind(stream: Any) -> list[Any]:
    return [
        inspect.isasyncgen(stream),
        stream.__aiter__() is stream,
        type(stream).__name__,
        "".join([text(c) async for c in stream]),
        await attempt_async(stream.__anext__),
    ]


async def asend(stream: Any) -> list[Any]:
    return [
        await attempt_async(lambda: stream.asend("too early")),
        await attempt_async(lambda: stream.asend(None)),
        await attempt_async(lambda: stream.asend("ignored")),
        await attempt_async(stream.aclose),
    ]


async def athrow(stream: Any) -> list[Any]:
    return [
        await attempt_async(stream.__anext__),
        await attempt_async(lambda: stream.athrow(ValueError("stop reading"))),
        await attempt_async(stream.__anext__),
    ]


async def aclose(stream: Any) -> list[Any]:
    return [
        await attempt_async(stream.__anext__),
        await attempt_async(stream.aclose),
        await attempt_async(stream.__anext__),
        await attempt_async(stream.aclose),
    ]


ASYNC_CASES = {
    "isasyncgen_and_iteration": (akind, REPLY, None),
    "asend": (asend, "Hello! How ", None),
    "athrow": (athrow, "Hello! ", "ValueError: stop reading"),
    "aclose": (aclose, "Hello! ", None),
}


@pytest.mark.parametrize("case", list(ASYNC_CASES))
async def test_traced_async_stream_behaves_as_the_sdk_async_generator(
    memory_logger, ollama_server, case
):
    use, content, error = ASYNC_CASES[case]
    client = ollama.AsyncClient(host=ollama_server.url)
    untraced = await use(await client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    setup_ollama()
    try:
        with braintrust.start_span(name="request"):
            traced = await use(await client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    finally:
        unpatch_ollama()
    assert traced == untraced
    spans = by_name(memory_logger.pop(), "ollama.chat")
    assert len(spans) == 1
    assert spans[0]["output"] == choices({"role": "assistant", "content": content})
    assert_error(spans[0], error)
