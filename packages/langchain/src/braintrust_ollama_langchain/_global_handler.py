"""Braintrust's global LangChain handler, one for the whole process.

Braintrust registers its global handler in a `ContextVar` (`braintrust_callback_handler_var`):
a handler registered inside a FastAPI `lifespan`, in another thread (uvicorn run in a thread), in
an earlier notebook cell's task, or before a `ThreadPoolExecutor` starts its workers is invisible
to the runs there, which then get no LangChain spans at all. `ProcessWideHandler` stands in for
that variable in Braintrust's context module, whose `set_global_handler()`,
`get_global_handler()` and `clear_global_handler()` (and so Braintrust's `setup_langchain()` and
`auto_instrument()`) look it up by name: one value, seen from every thread, task and context,
whether made before or after the registration.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["ProcessWideHandler"]


@dataclass(frozen=True)
class _Token:
    previous: Any


class ProcessWideHandler:
    """A process-wide variable with the `ContextVar` methods Braintrust and LangChain use."""

    def __init__(self, replaced: ContextVar[Any]) -> None:
        self.replaced = replaced  # put back by `unpatch_langchain()`
        self.name = replaced.name
        self._value: Any = None

    def get(self, default: Any = None) -> Any:
        value = self._value
        return default if value is None else value

    def set(self, value: Any) -> _Token:
        token = _Token(self._value)
        self._value = value  # one reference assignment: atomic, no lock needed
        return token

    def reset(self, token: _Token) -> None:
        self._value = token.previous

    def __repr__(self) -> str:
        return f"<ProcessWideHandler {self.name!r} value={self._value!r}>"
