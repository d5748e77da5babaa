"""Where the adapter hooks in: one `wrapt` patch per patch point, each idempotent.

- `Ollama`'s streaming methods (`stream_chat`, `astream_chat`, `stream_complete`,
  `astream_complete`, `stream_structured_predict`, `astream_structured_predict`) claim the
  LlamaIndex span their call opens, and hand back their stream wrapped in a `StreamSpan`.
- `BraintrustSpanHandler.prepare_to_exit_span` leaves a claimed span open when LlamaIndex
  exits it on handing the stream back; the `StreamSpan` ends it when the stream does.

Everything else (chat, complete, structured prediction, tool calls, embeddings) already runs the
Ollama SDK call while Braintrust's LlamaIndex span is current, so it needs no patch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import wrapt

from ._streams import (
    StreamSpan,
    akeep_open,
    collecting_nested,
    keep_open,
    register_nested,
    warn_failure,
)

STREAMING_METHODS = ("stream_chat", "stream_complete", "stream_structured_predict")
ASYNC_STREAMING_METHODS = ("astream_chat", "astream_complete", "astream_structured_predict")


class _Claim:
    """A streaming method call in progress, and the LlamaIndex span its stream keeps open."""

    __slots__ = ("instance", "nested", "span", "stream")

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.stream: Any = None
        self.span: StreamSpan | None = None
        self.nested: list[Any] = []  # streams of claimed calls made inside this one


_claim: ContextVar[_Claim | None] = ContextVar("braintrust_ollama_llamaindex_claim", default=None)


class _Patch(wrapt.FunctionWrapper):
    """A function wrapper installed by this adapter: its type is the patch marker."""


def _patch(owner: type, name: str, wrapper: Callable[..., Any]) -> None:
    original = owner.__dict__.get(name)
    if original is None or isinstance(original, _Patch):
        return
    setattr(owner, name, _Patch(original, wrapper))


def _unpatch(owner: type, name: str) -> None:
    current = owner.__dict__.get(name)
    if isinstance(current, _Patch):
        setattr(owner, name, current.__wrapped__)


# --- the span handler ------------------------------------------------------------------------


def _defer_stream_exit(
    wrapped: Callable[..., Any], handler: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`prepare_to_exit_span`: a claimed call's stream keeps its span open (returns None)."""
    claim = _claim.get()
    if claim is not None and claim.span is None:
        try:
            if _claim_span(handler, claim, *args, **kwargs):
                return None
        except Exception:
            warn_failure("keeping a streamed LlamaIndex span open")
    return wrapped(*args, **kwargs)


def _claim_span(
    handler: Any,
    claim: _Claim,
    id_: str,
    bound_args: Any,
    instance: Any = None,
    result: Any = None,
    **_: Any,
) -> bool:
    if instance is not claim.instance:
        return False
    if not (inspect.isgenerator(result) or inspect.isasyncgen(result)):
        return False
    record = handler._bt_spans.get(id_)  # Braintrust's span for this LlamaIndex span
    if record is None:
        return False
    braintrust_span = record.bt_span
    braintrust_span.unset_current()  # as Braintrust's handler would on exit: the caller goes on
    claim.stream = result
    claim.span = StreamSpan(handler, id_, bound_args, instance, braintrust_span, claim.nested)
    return True


# --- Ollama's streaming methods --------------------------------------------------------------


def _stream_method(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    claim = _Claim(instance)
    token = _claim.set(claim)
    try:
        with collecting_nested(claim.nested):
            stream = wrapped(*args, **kwargs)
    finally:
        _claim.reset(token)
    return _hand_over(claim, stream, keep_open)


async def _astream_method(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    claim = _Claim(instance)
    token = _claim.set(claim)
    try:
        with collecting_nested(claim.nested):
            stream = await wrapped(*args, **kwargs)
    finally:
        _claim.reset(token)
    return _hand_over(claim, stream, akeep_open)


def _hand_over(claim: _Claim, stream: Any, keep: Callable[[Any, StreamSpan], Any]) -> Any:
    """The stream to give the caller: `stream` itself, or wrapped to keep its span open."""
    span = claim.span
    if span is None:
        return stream
    if claim.stream is not stream:  # the claimed span was not this call's: end it as usual
        span.finish()
        return stream
    try:
        kept = keep(stream, span)
        register_nested(kept)
        return kept
    except Exception:
        warn_failure("wrapping a LlamaIndex stream")
        span.finish()
        return stream


# --- install ---------------------------------------------------------------------------------


def _span_handler_class() -> type | None:
    try:
        from braintrust.integrations.llamaindex.tracing import BraintrustSpanHandler
    except ImportError:
        return None
    return BraintrustSpanHandler  # None when llama-index-core is not installed


def _ollama_llm_class() -> type | None:
    try:
        from llama_index.llms.ollama import Ollama
    except ImportError:
        return None
    return Ollama


def patch() -> bool:
    """Install every patch (idempotent). False if LlamaIndex or its Ollama LLM is missing."""
    handler_class = _span_handler_class()
    ollama_class = _ollama_llm_class()
    if handler_class is None or ollama_class is None:
        return False
    _patch(handler_class, "prepare_to_exit_span", _defer_stream_exit)
    for name in STREAMING_METHODS:
        _patch(ollama_class, name, _stream_method)
    for name in ASYNC_STREAMING_METHODS:
        _patch(ollama_class, name, _astream_method)
    return True


def unpatch() -> None:
    """Remove every patch this adapter installed."""
    handler_class = _span_handler_class()
    ollama_class = _ollama_llm_class()
    if handler_class is not None:
        _unpatch(handler_class, "prepare_to_exit_span")
    if ollama_class is not None:
        for name in (*STREAMING_METHODS, *ASYNC_STREAMING_METHODS):
            _unpatch(ollama_class, name)
