"""Assertions over a whole LangChain trace: where SDK spans sit and who carries the tokens."""

from __future__ import annotations

from typing import Any

from support.ollama_server import FakeOllama
from support.spans import TOKEN_METRICS as TOKEN_KEYS
from support.spans import assert_tokens_counted_once, names, parent_of

Row = dict[str, Any]


def sdk_spans(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["span_attributes"]["name"].startswith("ollama.")]


def parent_name(rows: list[Row], span: Row) -> str | None:
    parent = parent_of(rows, span)
    return None if parent is None else parent["span_attributes"]["name"]


def assert_one_trace(rows: list[Row]) -> None:
    assert len({r["root_span_id"] for r in rows}) == 1, names(rows)


def assert_sdk_spans_own_tokens(rows: list[Row], server: FakeOllama, sdk_calls: int) -> None:
    """Every `ollama.*` span sits directly under a LangChain model run that carries no tokens,
    and the trace adds up to the server's counters."""
    spans = sdk_spans(rows)
    assert len(spans) == sdk_calls == len(server.served), names(rows)
    for span in spans:
        run = parent_of(rows, span)
        assert run is not None, names(rows)
        assert run["span_attributes"]["type"] == "llm", names(rows)  # a LangChain model run
        assert run["metadata"]["run_id"], run
        assert not set(run.get("metrics") or {}) & set(TOKEN_KEYS), run["metrics"]
        assert (span.get("metrics") or {}).get("tokens"), span
    assert_one_trace(rows)
    assert_tokens_counted_once(rows, server.tokens_served())


def braintrust_setup_langchain() -> bool:
    """Braintrust's own global registration, as its docs tell users to do it (braintrust >= 0.12:
    `LangChainIntegration.setup()`, what `setup_langchain()` / `auto_instrument()` run; older:
    the braintrust-langchain package's `set_global_handler`)."""
    try:
        from braintrust.integrations.langchain import LangChainIntegration
    except ImportError:
        from braintrust_langchain import BraintrustCallbackHandler, set_global_handler

        set_global_handler(BraintrustCallbackHandler())
        return True
    return bool(LangChainIntegration.setup())


def braintrust_handler_class() -> type[Any]:
    """Braintrust's own handler class: braintrust.integrations.langchain, or braintrust-langchain
    before braintrust 0.12."""
    try:
        from braintrust.integrations.langchain.callbacks import BraintrustCallbackHandler
    except ImportError:
        from braintrust_langchain.callbacks import BraintrustCallbackHandler
    return BraintrustCallbackHandler
