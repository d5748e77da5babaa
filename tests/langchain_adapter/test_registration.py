"""How the handler gets registered, and who keeps the tokens when the Ollama SDK is not traced."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import braintrust
import pytest
import wrapt
from braintrust import start_span
from braintrust_ollama import setup_ollama, unpatch_ollama
from braintrust_ollama_langchain import BraintrustCallbackHandler, patchers, setup_langchain
from braintrust_ollama_langchain import integration as integration_module
from braintrust_ollama_langchain._handlers import handler_homes
from langchain_ollama import ChatOllama
from support.ollama_server import Chat, Error, FakeOllama
from support.runner import User
from support.spans import by_name, only, span_tree, token_sums

from .traces import (
    assert_sdk_spans_own_tokens,
    braintrust_handler_class,
    braintrust_setup_langchain,
    sdk_spans,
)

# Braintrust's own handler: braintrust.integrations.langchain, or braintrust-langchain before 0.12.
PlainHandler = braintrust_handler_class()


def global_handler() -> Any:
    """The handler registered globally, as Braintrust's configure hook sees it."""
    return handler_homes()[0].global_handler.get()


# What Braintrust's handler logs from LangChain's usage_metadata (no `tokens`: it adds that
# only alongside input_token_details, which langchain-ollama does not report).
TOKENS = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def test_untraced_sdk_leaves_tokens_on_the_langchain_span(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("Paris.", prompt_eval_count=12, eval_count=3))
    with start_span(name="request"):
        chat.invoke("Capital of France?", config=registration)

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  ChatOllama"]
    assert only(rows, "ChatOllama")["metrics"].items() >= TOKENS.items()
    assert token_sums(rows)["prompt_tokens"] == ollama_server.tokens_served()[0] == 12
    assert token_sums(rows)["completion_tokens"] == ollama_server.tokens_served()[1] == 3


def test_unpatched_sdk_leaves_tokens_on_the_langchain_span(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    setup_ollama()
    unpatch_ollama()
    ollama_server.reply("/api/chat", Chat("Paris.", prompt_eval_count=12, eval_count=3))
    chat.invoke("Capital of France?", config=registration)

    rows = memory_logger.pop()
    assert span_tree(rows) == ["ChatOllama"]
    assert only(rows, "ChatOllama")["metrics"].items() >= TOKENS.items()
    assert token_sums(rows)["prompt_tokens"] == ollama_server.tokens_served()[0] == 12
    assert token_sums(rows)["completion_tokens"] == ollama_server.tokens_served()[1] == 3


@pytest.mark.usefixtures("traced")
def test_braintrust_auto_instrument_handler_is_made_ollama_aware(
    chat: ChatOllama, ollama_server: FakeOllama, memory_logger: Any
) -> None:
    """braintrust_ollama.auto_instrument() runs Braintrust's (which registers a plain handler)
    and reaches setup_langchain(), which keeps that handler and makes it Ollama-aware."""
    from braintrust_ollama import auto_instrument

    params = inspect.signature(braintrust.auto_instrument).parameters.values()
    only_langchain = {p.name: False for p in params if p.default is True and p.name != "langchain"}
    results = auto_instrument(**only_langchain)
    assert results["langchain_ollama"] is True
    assert isinstance(global_handler(), PlainHandler)

    chat.invoke("Hi")
    rows = memory_logger.pop()
    assert span_tree(rows) == ["ChatOllama", "  ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


@pytest.mark.usefixtures("traced")
@pytest.mark.parametrize("order", ["braintrust first", "ours first"])
def test_braintrust_setup_and_ours_register_one_handler(
    order: str, chat: ChatOllama, ollama_server: FakeOllama, memory_logger: Any
) -> None:
    steps = [braintrust_setup_langchain, setup_langchain]
    for step in steps if order == "braintrust first" else reversed(steps):
        assert step() is True
    assert isinstance(global_handler(), PlainHandler)
    if order == "braintrust first":  # setup_langchain() kept the handler Braintrust registered
        assert type(global_handler()) is PlainHandler

    chat.invoke("Hi")
    rows = memory_logger.pop()
    assert span_tree(rows) == ["ChatOllama", "  ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


@pytest.mark.usefixtures("traced")
def test_plain_braintrust_handler_in_config_is_ollama_aware_once_set_up(
    chat: ChatOllama, ollama_server: FakeOllama, memory_logger: Any
) -> None:
    setup_langchain()
    handler_homes()[0].global_handler.set(None)  # only the handler the caller passes

    chat.invoke("Hi", config={"callbacks": [PlainHandler()]})
    rows = memory_logger.pop()
    assert span_tree(rows) == ["ChatOllama", "  ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


def test_setup_langchain_is_idempotent(memory_logger: Any) -> None:
    assert [setup_langchain() for _ in range(3)] == [True, True, True]
    handler = global_handler()
    assert isinstance(handler, BraintrustCallbackHandler)
    assert setup_langchain() is True
    assert global_handler() is handler
    wrapper = PlainHandler.__dict__["_end_span"]
    assert isinstance(wrapper, wrapt.FunctionWrapper)
    assert not isinstance(wrapper.__wrapped__, wrapt.FunctionWrapper)  # wrapped once


def test_handler_is_a_drop_in_subclass_with_the_same_constructor(memory_logger: Any) -> None:
    logger = braintrust.current_logger()
    handler = BraintrustCallbackHandler(logger=logger, debug=True)
    assert isinstance(handler, PlainHandler)
    assert handler.logger is logger and handler.debug is True
    assert patchers.is_patched(PlainHandler)


def test_setup_langchain_without_arguments_keeps_the_current_logger(memory_logger: Any) -> None:
    logger = braintrust.current_logger()
    assert setup_langchain() is True
    assert braintrust.current_logger() is logger


def test_setup_langchain_with_a_project_initialises_a_logger_outside_a_span(
    monkeypatch: pytest.MonkeyPatch, memory_logger: Any
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(integration_module, "init_logger", lambda **kw: calls.append(kw))
    assert setup_langchain(project_name="demo", api_key="k") is True
    with start_span(name="request"):
        assert setup_langchain(project_name="other") is True
    assert calls == [{"project": "demo", "api_key": "k", "project_id": None}]


def test_setup_langchain_without_langchain_core_returns_false(user: User) -> None:
    script = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "import braintrust_ollama_langchain as m\n"
        "print(m.setup_langchain(), m.setup_langchain())\n"
        "try:\n    m.BraintrustCallbackHandler()\nexcept ImportError:\n    print('ImportError')\n"
    )
    done = user.run_python(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "ImportError"]


@pytest.mark.usefixtures("traced")
def test_failure_in_our_patch_never_breaks_the_call(
    chat: ChatOllama,
    ollama_server: FakeOllama,
    registration: dict[str, Any],
    memory_logger: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(span: Any) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(patchers, "tokens_counted_under", broken)
    with caplog.at_level(logging.WARNING, logger="braintrust_ollama_langchain"):
        assert chat.invoke("Hi", config=registration).content
        assert chat.invoke("Hi", config=registration).content

    rows = memory_logger.pop()
    assert len(by_name(rows, "ChatOllama")) == 2 and len(sdk_spans(rows)) == 2
    assert len(caplog.records) == 1  # logged once


@pytest.mark.usefixtures("traced")
def test_server_error_is_raised_unchanged_and_logged_on_both_spans(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    from ollama import ResponseError

    ollama_server.reply("/api/chat", Error(500, "model crashed"))
    with pytest.raises(ResponseError, match="model crashed"):
        chat.invoke("Hi", config=registration)

    rows = memory_logger.pop()
    assert span_tree(rows) == ["ChatOllama", "  ollama.chat"]
    assert "model crashed" in only(rows, "ChatOllama")["error"]
    assert "model crashed" in only(rows, "ollama.chat")["error"]
