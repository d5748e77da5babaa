"""Where Braintrust's LangChain callback handler lives, across the supported Braintrust releases.

- braintrust >= 0.12: `braintrust.integrations.langchain` (callbacks + context modules).
- older braintrust: the separate `braintrust-langchain` package (`braintrust_langchain`).

Each context module holds the handler class and `braintrust_callback_handler_var`, the variable
its `set_global_handler()` writes and LangChain's configure hook reads: a handler in it is
attached to every run (global registration).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["CONTEXT_MODULES", "HandlerHome", "handler_homes"]

# Each home's context module, and the distribution (and versions) it comes with. Newest first: the
# first importable home is where `setup_langchain()` registers its handler. Importing any part of
# a home runs its package's `__init__`, which imports the context module.
CONTEXT_MODULES = {
    "braintrust.integrations.langchain.context": "braintrust>=0.12",
    "braintrust_langchain.context": "braintrust-langchain",
}


@dataclass(frozen=True)
class HandlerHome:
    """One importable copy of Braintrust's handler and its global-registration variable."""

    context: ModuleType

    @property
    def handler_class(self) -> type[Any]:
        handler_class: type[Any] = self.context.BraintrustCallbackHandler
        return handler_class

    @property
    def global_handler(self) -> Any:
        """The global-registration variable (a ContextVar, or the process-wide stand-in the
        adapter puts in its place): `.get()`, `.set(handler)`."""
        return self.context.braintrust_callback_handler_var


def handler_homes() -> list[HandlerHome]:
    """Every importable copy of Braintrust's LangChain handler, newest location first.

    Imports them (and so langchain-core). Empty when langchain-core (or Braintrust's handler) is
    not installed.
    """
    homes: list[HandlerHome] = []
    for context_name in CONTEXT_MODULES:
        try:
            context = importlib.import_module(context_name)
        except ImportError:
            continue
        home = HandlerHome(context)
        if any(other.handler_class is home.handler_class for other in homes):
            continue  # a re-export (braintrust-langchain >= 0.3 re-exports the new location)
        homes.append(home)
    return homes
