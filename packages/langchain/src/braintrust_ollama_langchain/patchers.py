"""Where the adapter patches, each idempotent (a marker) and undone exactly by `unpatch_langchain()`.

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

import importlib
import inspect
import logging
import threading
from contextvars import ContextVar
from types import ModuleType
from typing import Any

import wrapt
from braintrust_ollama import remember_caller, tokens_counted_under
from braintrust_ollama._warn import warn_once

from ._global_handler import ProcessWideHandler
from .tracing import metrics_without_tokens

__all__ = [
    "install_home",
    "is_patched",
    "one_braintrust_handler",
    "patch_handler_class",
    "registered_handler",
    "uninstall_home",
]

_MARKER = "__braintrust_ollama_patched__"
_MANAGER_MODULE = "langchain_core.callbacks.manager"
_VARIABLE = "braintrust_callback_handler_var"  # in Braintrust's context module
_log = logging.getLogger(__name__)

# The handler classes and global-handler variables of every home installed (design state: the
# configure patch must recognise Braintrust's handlers without importing anything per run).
_handler_classes: tuple[type[Any], ...] = ()
_global_handlers: list[ProcessWideHandler] = []
_lock = threading.Lock()


def install_home(context: ModuleType) -> None:
    """Apply the three patches for one Braintrust handler home (idempotent, thread-safe:
    `wrap_ollama()` may run in many threads at once)."""
    with _lock:
        _install_home(context)


def _install_home(context: ModuleType) -> None:
    global _handler_classes
    handler_class = context.BraintrustCallbackHandler
    patch_handler_class(handler_class)
    if handler_class not in _handler_classes:
        _handler_classes = (*_handler_classes, handler_class)
    variable = context.braintrust_callback_handler_var
    if not isinstance(variable, ProcessWideHandler):
        variable = _process_wide(context)
    if variable not in _global_handlers:
        _global_handlers.append(variable)
    _patch_configure()


def uninstall_home(context: ModuleType, *, unregister: Any = None) -> None:
    """Undo `install_home`. The global handler goes back to Braintrust's ContextVar, in the
    calling context, unless it is `unregister` (the one `setup_langchain()` registered)."""
    with _lock:
        _uninstall_home(context, unregister)


def _uninstall_home(context: ModuleType, unregister: Any) -> None:
    global _handler_classes
    handler_class = context.BraintrustCallbackHandler
    unpatch_handler_class(handler_class)
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
        _unpatch_configure()


# --- 1. token metrics ---------------------------------------------------------------------


def is_patched(handler_class: type[Any]) -> bool:
    return bool(handler_class.__dict__.get(_MARKER))


def patch_handler_class(handler_class: type[Any]) -> None:
    """Make `handler_class` leave token metrics to the Ollama SDK span under a run (idempotent)."""
    if is_patched(handler_class):
        return
    wrapt.wrap_function_wrapper(handler_class, "_end_span", _end_span)
    setattr(handler_class, _MARKER, True)


def unpatch_handler_class(handler_class: type[Any]) -> None:
    if not is_patched(handler_class):
        return
    handler_class._end_span = handler_class.__dict__["_end_span"].__wrapped__
    delattr(handler_class, _MARKER)


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


def _is_ours(attribute: Any) -> bool:
    return isinstance(attribute, wrapt.FunctionWrapper) and attribute._self_wrapper is _configured


def _patch_configure() -> None:
    manager_module: Any = importlib.import_module(_MANAGER_MODULE)
    if not _is_ours(manager_module.__dict__.get("_configure")):
        wrapt.wrap_function_wrapper(manager_module, "_configure", _configured)


def _unpatch_configure() -> None:
    manager_module: Any = importlib.import_module(_MANAGER_MODULE)
    patched: Any = manager_module.__dict__.get("_configure")
    if _is_ours(patched):
        manager_module._configure = patched.__wrapped__
