"""Where the adapter patches, each idempotent and undone exactly by `unpatch_langchain()`.

The two functions (`END_SPAN`, `CONFIGURE`: the table of what is patched, for which versions) go
through `braintrust_ollama._patching`, as every package's patches do: our wrapper is told by its
type, under one lock. The variable is not a function: a `ProcessWideHandler` replaces it, and its
type is likewise its marker.

1. `BraintrustCallbackHandler._end_span(run_id, ..., metrics=...)`, on the class: where every
   Braintrust handler release writes a run's metrics. Token counters are dropped there when a
   traced Ollama SDK call ran under the run's span (the SDK span carries them). On the class, so
   every handler is covered however it was registered.
2. `braintrust_callback_handler_var` in Braintrust's context module: replaced by a
   `ProcessWideHandler`, so a global registration is seen from every thread, task and context.
3. `langchain_core.callbacks.manager._configure`, where LangChain builds every run's callback
   manager (`invoke`, `ainvoke`, `stream`, `astream`, `batch`, tools, retrievers, nested runs,
   LangGraph): it leaves each run exactly one Braintrust handler, adding the global one when the
   run has none. Two handlers on a run would each write a span tree. A root run also remembers
   the user's line that started it (`remember_caller`), the caller of the Ollama calls LangGraph
   makes from tasks or threads of its own.
"""

from __future__ import annotations

import inspect
import logging
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from braintrust_ollama import remember_caller, tokens_counted_under
from braintrust_ollama._patching import LOCK, Patch
from braintrust_ollama._patching import is_patched as _is_patched
from braintrust_ollama._warn import warn_once

from ._global_handler import ProcessWideHandler
from ._handlers import CONTEXT_MODULES
from .tracing import metrics_without_tokens

__all__ = [
    "CONFIGURE",
    "END_SPAN",
    "install_home",
    "is_patched",
    "one_braintrust_handler",
    "registered_handler",
    "uninstall_home",
]

_VARIABLE = "braintrust_callback_handler_var"  # in Braintrust's context module
_log = logging.getLogger(__name__)

# The handler classes and global-handler variables of every home installed (design state: the
# configure patch must recognise Braintrust's handlers without importing anything per run).
_handler_classes: tuple[type[Any], ...] = ()
_global_handlers: list[ProcessWideHandler] = []


def install_home(context: ModuleType) -> None:
    """Apply the three patches for one Braintrust handler home (idempotent, thread-safe:
    `wrap_ollama()` may run in many threads at once)."""
    with LOCK:
        _install_home(context)


def _install_home(context: ModuleType) -> None:
    global _handler_classes
    handler_class = context.BraintrustCallbackHandler
    END_SPAN[context.__name__].apply()
    if handler_class not in _handler_classes:
        _handler_classes = (*_handler_classes, handler_class)
    variable = context.braintrust_callback_handler_var
    if not isinstance(variable, ProcessWideHandler):
        variable = _process_wide(context)
    if variable not in _global_handlers:
        _global_handlers.append(variable)
    CONFIGURE.apply(load=True)


def uninstall_home(context: ModuleType, *, unregister: Any = None) -> None:
    """Undo `install_home`. The global handler goes back to Braintrust's ContextVar, in the
    calling context, unless it is `unregister` (the one `setup_langchain()` registered)."""
    with LOCK:
        _uninstall_home(context, unregister)


def _uninstall_home(context: ModuleType, unregister: Any) -> None:
    global _handler_classes
    handler_class = context.BraintrustCallbackHandler
    END_SPAN[context.__name__].remove()
    _handler_classes = tuple(c for c in _handler_classes if c is not handler_class)
    variable = context.braintrust_callback_handler_var
    if isinstance(variable, ProcessWideHandler):
        setattr(context, _VARIABLE, variable.replaced)
        if variable in _global_handlers:
            _global_handlers.remove(variable)
        handler = variable.get()
        if handler is not None and handler is not unregister:
            variable.replaced.set(handler)
    if not _handler_classes:
        CONFIGURE.remove()


# --- 1. token metrics ---------------------------------------------------------------------


def is_patched(handler_class: type[Any]) -> bool:
    """True when `handler_class` leaves token metrics to the Ollama SDK span under a run."""
    return _is_patched(handler_class, "_end_span")


def _end_span(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        args, kwargs = _tokens_left_to_the_sdk_span(wrapped, instance, args, kwargs)
    except Exception:
        warn_once(_log, "could not adjust a LangChain span's metrics", unaffected="the run")
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


# --- 2. the global handler, process-wide ----------------------------------------------------


def _process_wide(context: ModuleType) -> ProcessWideHandler:
    """Put a `ProcessWideHandler` in place of the context module's ContextVar, carrying over a
    handler registered in the calling context (and clearing it there, so LangChain's own hook,
    which still reads the ContextVar, adds nothing `clear_global_handler()` would not clear)."""
    replaced: ContextVar[Any] = context.braintrust_callback_handler_var
    variable = ProcessWideHandler(replaced)
    handler = replaced.get(None)
    if handler is not None:
        variable.set(handler)
        replaced.set(None)
    setattr(context, _VARIABLE, variable)
    return variable


def registered_handler() -> Any:
    """The handler registered globally (by this adapter or Braintrust's set-up), or None."""
    for variable in _global_handlers:
        handler = variable.get()
        if isinstance(handler, _handler_classes):
            return handler
    return None


# --- 3. one Braintrust handler per run ------------------------------------------------------


def one_braintrust_handler(manager: Any) -> None:
    """Leave `manager` (a run's callback manager) exactly one Braintrust handler.

    The one kept is the handler tracing the parent run (so a nested run stays in its parent's
    tree), else the first one passed for the run (a per-call handler before the global one).
    A run with none gets the globally registered handler, wherever it was registered.
    """
    classes = _handler_classes
    tracers = [h for h in manager.handlers if isinstance(h, classes)]
    if not tracers:
        handler = registered_handler()
        if handler is not None:
            manager.add_handler(handler, inherit=True)
        return
    if len(tracers) == 1:
        return
    parent = manager.parent_run_id
    inheritable = [h for h in tracers if any(h is i for i in manager.inheritable_handlers)]
    keep = next(
        (h for h in tracers if parent is not None and parent in getattr(h, "spans", {})),
        (inheritable or tracers)[0],
    )
    manager.handlers = [h for h in manager.handlers if h is keep or not isinstance(h, classes)]
    manager.inheritable_handlers = [
        h for h in manager.inheritable_handlers if h is keep or not isinstance(h, classes)
    ]


def _configured(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    manager = wrapped(*args, **kwargs)
    try:
        one_braintrust_handler(manager)
        if manager.parent_run_id is None:  # a root run: LangGraph may run its nodes as tasks
            remember_caller()
    except Exception:
        warn_once(
            _log, "could not choose the Braintrust handler of a LangChain run", unaffected="the run"
        )
    return manager


# What is patched, for which versions: `_end_span` in each home of Braintrust's handler
# (`_handlers.CONTEXT_MODULES`, by module name), and LangChain's `_configure`.
END_SPAN = {
    context: Patch(f"{context}:BraintrustCallbackHandler._end_span", _end_span, requires)
    for context, requires in CONTEXT_MODULES.items()
}
CONFIGURE = Patch(
    "langchain_core.callbacks.manager:_configure", _configured, "langchain-core>=0.3.20"
)
