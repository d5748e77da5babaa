"""The one patch point: Braintrust's LangChain handler, where it ends a run's span.

`BraintrustCallbackHandler._end_span(run_id, ..., metrics=...)` is where every Braintrust handler
release writes a run's metrics (`on_llm_end` computes them from LangChain's `usage_metadata`).
Wrapping it on the class, not on an instance, makes every handler Ollama-aware however it was
registered: ours, Braintrust's `setup_langchain()` / `auto_instrument()`, or one the user built.
The patch is idempotent through a marker on the class.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import wrapt
from braintrust_ollama import tokens_counted_under

from .tracing import metrics_without_tokens

__all__ = ["is_patched", "patch_handler_class"]

_MARKER = "__braintrust_ollama_patched__"
_log = logging.getLogger("braintrust_ollama.langchain")
_warned = False


def is_patched(handler_class: type[Any]) -> bool:
    return bool(handler_class.__dict__.get(_MARKER))


def patch_handler_class(handler_class: type[Any]) -> None:
    """Make `handler_class` leave token metrics to the Ollama SDK span under a run (idempotent)."""
    if is_patched(handler_class):
        return
    wrapt.wrap_function_wrapper(handler_class, "_end_span", _end_span)
    setattr(handler_class, _MARKER, True)


def _end_span(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        args, kwargs = _tokens_left_to_the_sdk_span(wrapped, instance, args, kwargs)
    except Exception:
        _warn_once()
    return wrapped(*args, **kwargs)


def _tokens_left_to_the_sdk_span(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments, with token metrics dropped when a traced SDK call ran under the span."""
    bound = inspect.signature(wrapped).bind(*args, **kwargs)
    metrics = bound.arguments.get("metrics")
    if not metrics:
        return args, kwargs
    span = instance.spans.get(bound.arguments.get("run_id"))
    if span is None or not tokens_counted_under(span):
        return args, kwargs
    bound.arguments["metrics"] = metrics_without_tokens(metrics)
    return bound.args, bound.kwargs


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        _log.warning(
            "braintrust-ollama: could not adjust a LangChain span's metrics", exc_info=True
        )
