"""The privacy switches: spans without inputs and outputs, and Ollama tracing turned off.

`record_content=False` (argument) or `BRAINTRUST_OLLAMA_RECORD_CONTENT=false` (environment) keep
what was sent and what came back out of every span, and keep metadata and metrics;
`BRAINTRUST_OLLAMA_DISABLED=1` leaves the SDK untouched.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging

import braintrust
import ollama
import pytest
from braintrust_ollama import auto_instrument, setup_ollama, unpatch_ollama, wrap_ollama
from support.ollama_server import Chat, Generate
from support.spans import by_name, only

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
SECRET_QUESTION = "My card number is 4111 1111 1111 1111; is it valid?"
SECRET_ANSWER = "That card number looks valid."
SECRET_SUFFIX = "# patient: Jane Doe"


def auto_instrument_only_ollama() -> dict[str, bool]:
    """`auto_instrument()` with every other integration off (no side effects on other tests)."""
    params = inspect.signature(braintrust.auto_instrument).parameters.values()
    others = {p.name: False for p in params if p.default is True}
    return auto_instrument(**{**others, "langchain": False, "llamaindex": False})


@pytest.fixture
def unpatched():
    yield
    unpatch_ollama()


def call_everything(server) -> None:
    """A chat with an image and a tool result, a streamed generate with a suffix, an embed."""
    server.reply("/api/chat", Chat(SECRET_ANSWER, thinking="Luhn check.", prompt_eval_count=30))
    server.reply("/api/generate", Generate(SECRET_ANSWER, eval_count=5))
    client = ollama.Client(host=server.url)
    with braintrust.start_span(name="request"):
        client.chat(
            model="llava",
            messages=[
                {"role": "user", "content": SECRET_QUESTION, "images": [PNG]},
                {"role": "tool", "content": SECRET_ANSWER},
            ],
        )
        for _ in client.generate(
            model="llama3.2", prompt=SECRET_QUESTION, suffix=SECRET_SUFFIX, stream=True
        ):
            pass
        client.embed(model="all-minilm", input=SECRET_QUESTION)


def assert_no_content(rows, memory_logger) -> None:
    logged = json.dumps(rows, default=str)
    # "4111 1111", not "4111": a random id or a timestamp may hold those four digits.
    for secret in (SECRET_QUESTION, SECRET_ANSWER, SECRET_SUFFIX, "Luhn", "4111 1111"):
        assert secret not in logged
    assert base64.b64encode(PNG).decode() not in logged
    assert memory_logger.uploaded_attachments == []  # the image is not uploaded either
    for name in ("ollama.chat", "ollama.generate", "ollama.embed"):
        span = only(rows, name)
        assert span.get("input") is None and span.get("output") is None


def test_record_content_false_keeps_metadata_and_metrics_only(
    memory_logger, ollama_server, unpatched
):
    assert setup_ollama(record_content=False) is True
    call_everything(ollama_server)
    rows = memory_logger.pop()
    assert_no_content(rows, memory_logger)
    chat = only(rows, "ollama.chat")
    assert chat["metadata"] == {
        "provider": "ollama",
        "model": "llava",
        "stream": False,
        "done_reason": "stop",
        "cold_start": False,
        "host": ollama_server.url,
    }
    assert chat["metrics"]["prompt_tokens"] == 30
    assert chat["metrics"]["completion_tokens_per_second"] > 0
    generate = only(rows, "ollama.generate")
    assert generate["metadata"]["stream"] is True and "suffix" not in generate["metadata"]
    assert generate["metrics"]["completion_tokens"] == 5
    assert "time_to_first_token" in generate["metrics"]
    assert only(rows, "ollama.embed")["metrics"]["prompt_tokens"] == 6


def test_environment_turns_content_off_for_setup_and_auto_instrument(
    memory_logger, ollama_server, unpatched, monkeypatch
):
    monkeypatch.setenv("BRAINTRUST_OLLAMA_RECORD_CONTENT", "false")
    assert auto_instrument_only_ollama()["ollama"] is True
    call_everything(ollama_server)
    assert_no_content(memory_logger.pop(), memory_logger)


def test_the_argument_wins_over_the_environment(
    memory_logger, ollama_server, unpatched, monkeypatch
):
    monkeypatch.setenv("BRAINTRUST_OLLAMA_RECORD_CONTENT", "false")
    setup_ollama(record_content=True)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.generate(model="llama3.2", prompt="Hi")
    assert only(memory_logger.pop(), "ollama.generate")["input"] == [
        {"role": "user", "content": "Hi"}
    ]


def test_wrap_ollama_record_content_holds_for_its_client_only(
    memory_logger, ollama_server, unpatched
):
    setup_ollama()
    private = wrap_ollama(ollama.Client(host=ollama_server.url), record_content=False)
    public = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        private.generate(model="llama3.2", prompt=SECRET_QUESTION)
        public.generate(model="llama3.2", prompt="Hi")
    first, second = by_name(memory_logger.pop(), "ollama.generate")
    assert first.get("input") is None and first["metrics"]["completion_tokens"] == 12
    assert second["input"] == [{"role": "user", "content": "Hi"}]


def test_disabled_environment_leaves_the_sdk_untouched_and_says_so_once(
    memory_logger, ollama_server, unpatched, monkeypatch, caplog
):
    monkeypatch.setenv("BRAINTRUST_OLLAMA_DISABLED", "1")
    original = ollama.Client.__dict__["_request"]
    client = ollama.Client(host=ollama_server.url)
    with caplog.at_level(logging.INFO, logger="braintrust_ollama"):
        assert setup_ollama() is False
        assert setup_ollama() is False
        assert wrap_ollama(client) is client
        assert auto_instrument_only_ollama()["ollama"] is False
    assert ollama.Client.__dict__["_request"] is original
    assert "_request" not in vars(client)
    with braintrust.start_span(name="request"):
        client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
    assert by_name(memory_logger.pop(), "ollama.chat") == []
    said = [r for r in caplog.records if "BRAINTRUST_OLLAMA_DISABLED" in r.getMessage()]
    assert len(said) == 1
