"""Errors: the user's call raises exactly what it would untraced, and the span records it.
Failures inside our own code never reach the user's call."""

from __future__ import annotations

import logging
import socket
import traceback

import braintrust
import httpx
import ollama
import pytest
from braintrust_ollama import tracing
from support.ollama_server import Error
from support.spans import by_name, only, reply_of

MESSAGES = [{"role": "user", "content": "Hi"}]


def assert_recorded_as_braintrust_does(recorded: str, error: BaseException) -> None:
    """`braintrust.logger.stringify_exception`'s shape: a traceback ending in the frame that
    raised, then the exception's own last line (`module.Type: message`)."""
    assert recorded.startswith("Traceback (most recent call last):\n")
    last_line = traceback.format_exception_only(type(error), error)[-1]
    assert recorded.endswith(last_line)
    raised_at = traceback.extract_tb(error.__traceback__)[-1]
    assert f'File "{raised_at.filename}", line {raised_at.lineno}, in {raised_at.name}' in recorded


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (404, 'model "nope" not found, try pulling it first'),
        (500, "llama runner process has terminated"),
    ],
)
def test_response_error_is_reraised_unchanged_and_recorded_with_status(
    memory_logger, ollama_server, traced, status, message
):
    ollama_server.reply("/api/chat", Error(status, message))
    client = ollama.Client(host=ollama_server.url)
    with (
        braintrust.start_span(name="request") as parent,
        pytest.raises(ollama.ResponseError) as raised,
    ):
        client.chat(model="nope", messages=MESSAGES)
    assert (raised.value.error, raised.value.status_code) == (message, status)
    assert raised.value.__traceback__ is not None
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["span_parents"] == [parent.span_id]
    # As Braintrust records an exception: the traceback (down to where the SDK raised it), then
    # `type: message`.
    assert_recorded_as_braintrust_does(span["error"], raised.value)
    assert span["metadata"]["status_code"] == status
    assert span["metadata"]["model"] == "nope"
    assert span.get("output") is None


async def test_async_error_is_reraised_unchanged(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/embed", Error(400, "input too long"))
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="request"), pytest.raises(ollama.ResponseError) as raised:
        await client.embed(model="nomic-embed-text", input="x" * 10)
    assert raised.value.status_code == 400
    error = only(memory_logger.pop(), "ollama.embed")["error"]
    assert_recorded_as_braintrust_does(error, raised.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_error_is_reraised_unchanged_and_recorded(memory_logger, traced):
    client = ollama.Client(host=f"http://127.0.0.1:{_closed_port()}")
    # The SDK raises ConnectionError (httpx.ConnectError before ollama 0.4.5); so do we.
    with (
        braintrust.start_span(name="request"),
        pytest.raises((ConnectionError, httpx.ConnectError)) as raised,
    ):
        client.generate(model="llama3.2", prompt="Hi")
    span = only(memory_logger.pop(), "ollama.generate")
    assert_recorded_as_braintrust_does(span["error"], raised.value)


def test_failure_inside_tracing_is_logged_once_and_the_call_goes_on(
    memory_logger, ollama_server, traced, monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError("bug in braintrust-ollama")

    monkeypatch.setattr(tracing.Chat, "output", broken)
    client = ollama.Client(host=ollama_server.url)
    with (
        caplog.at_level(logging.DEBUG, logger="braintrust_ollama"),
        braintrust.start_span(name="request"),
    ):
        for _ in range(3):
            response = client.chat(model="llama3.2", messages=MESSAGES)
            assert response.message.content == "Hello! How can I help you today?"
    records = [r for r in caplog.records if r.name == "braintrust_ollama._call"]
    # Once at warning level; the same failure again only at debug level.
    assert [r.levelname for r in records] == ["WARNING", "DEBUG", "DEBUG"]
    assert all(
        r.exc_info is not None and "bug in braintrust-ollama" in str(r.exc_info[1]) for r in records
    )


def test_failure_while_reading_stream_chunks_does_not_break_the_stream(
    memory_logger, ollama_server, traced, monkeypatch, caplog
):
    def broken(self, chunk):
        raise RuntimeError("bug in the accumulator")

    monkeypatch.setattr(tracing._ChatStream, "add", broken)
    monkeypatch.setattr(tracing._ChatStreamWithoutThinking, "add", broken)
    client = ollama.Client(host=ollama_server.url)
    with (
        caplog.at_level(logging.WARNING, logger="braintrust_ollama"),
        braintrust.start_span(name="request"),
    ):
        chunks = list(client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    assert "".join(c.message.content for c in chunks) == "Hello! How can I help you today?"
    assert chunks[-1].done is True
    records = [r for r in caplog.records if r.name == "braintrust_ollama._call"]
    assert len(records) == 1  # logged once
    span = only(memory_logger.pop(), "ollama.chat")  # the span is still written
    assert reply_of(span)["content"] == ""  # the first chunk read is where it broke


def test_a_field_that_cannot_be_built_is_left_out_and_noted(
    memory_logger, ollama_server, traced, monkeypatch
):
    """A bug building one field costs that field only: the span keeps its input, metadata and
    tokens, and says what was left out."""

    def broken(*args, **kwargs):
        raise RuntimeError("bug in braintrust-ollama")

    monkeypatch.setattr(tracing.Chat, "output", broken)
    monkeypatch.setattr(tracing._ChatStream, "output", broken)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(model="llama3.2", messages=MESSAGES)
        for _ in client.chat(model="llama3.2", messages=MESSAGES, stream=True):
            pass
    spans = by_name(memory_logger.pop(), "ollama.chat")
    assert [s["metadata"]["stream"] for s in spans] == [False, True]
    for span, served in zip(spans, ollama_server.served, strict=True):
        assert "output" not in span
        assert span["input"] == MESSAGES
        assert span["metrics"]["prompt_tokens"] == served.prompt_eval_count
        assert span["metrics"]["completion_tokens"] == served.eval_count
        assert span["metadata"]["model"] == "llama3.2"
        assert span["metadata"]["not_recorded"] == {
            "output": "RuntimeError: bug in braintrust-ollama"
        }
