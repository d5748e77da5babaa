"""Where Braintrust's LangChain callback handler lives, across the supported Braintrust releases.

- braintrust >= 0.12: `braintrust.integrations.langchain` (callbacks + context modules).
- older braintrust: the separate `braintrust-langchain` package (`braintrust_langchain`).

Both expose the handler class and a `braintrust_callback_handler_var` ContextVar that LangChain's
configure hook reads: a handler in it is attached to every run (global registration).
"""

from __future__ import annotations

import importlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["HandlerHome", "handler_homes"]

# Newest first: the first importable home is where a global handler is registered.
_HOMES = (
    ("braintrust.integrations.langchain.callbacks", "braintrust.integrations.langchain.context"),
    ("braintrust_langchain.callbacks", "braintrust_langchain.context"),
)


@dataclass(frozen=True)
class HandlerHome:
    """One importable copy of Braintrust's handler and its global-registration ContextVar."""

    handler_class: type[Any]
    global_handler: ContextVar[Any]


def handler_homes() -> list[HandlerHome]:
    """Every importable copy of Braintrust's LangChain handler, newest location first.

    Empty when langchain-core (or Braintrust's handler) is not installed.
    """
    homes: list[HandlerHome] = []
    for callbacks_name, context_name in _HOMES:
        try:
            callbacks = importlib.import_module(callbacks_name)
            context = importlib.import_module(context_name)
        except ImportError:
            continue
        handler_class = callbacks.BraintrustCallbackHandler
        if any(home.handler_class is handler_class for home in homes):
            continue  # a re-export (braintrust-langchain >= 0.3 re-exports the new location)
        homes.append(HandlerHome(handler_class, context.braintrust_callback_handler_var))
    return homes
