"""`setup_langchain()`: Braintrust's LangChain handler, registered globally and Ollama-aware."""

from __future__ import annotations

import logging

from braintrust.logger import NOOP_SPAN, current_span, init_logger

from .callbacks import BraintrustCallbackHandler, patch_braintrust_handlers
from .handlers import handler_homes

__all__ = ["setup_langchain"]

_log = logging.getLogger("braintrust_ollama.langchain")


def setup_langchain(
    api_key: str | None = None,
    project_id: str | None = None,
    project_name: str | None = None,
) -> bool:
    """Trace LangChain runs to Braintrust, with each Ollama call's tokens counted once.

    Registers Braintrust's LangChain callback handler globally unless one already is (from an
    earlier call, Braintrust's own `setup_langchain()` or `auto_instrument()`), and makes every
    Braintrust handler Ollama-aware: when a traced `ollama.*` SDK call runs under a LangChain
    model run, the SDK span carries the tokens and the run's span none.

    Same arguments as Braintrust's `setup_langchain()`: given any and outside a span, a logger
    is initialised with them. Called without arguments it never replaces the current logger.
    Safe to call any number of times; returns False (and does nothing) when langchain-core is
    not installed.
    """
    try:
        if not patch_braintrust_handlers():
            return False
        if (api_key or project_id or project_name) and current_span() == NOOP_SPAN:
            init_logger(project=project_name, api_key=api_key, project_id=project_id)
        homes = handler_homes()
        if not any(isinstance(home.global_handler.get(), home.handler_class) for home in homes):
            homes[0].global_handler.set(BraintrustCallbackHandler())
        return True
    except Exception:
        _log.warning("braintrust-ollama: could not set up LangChain tracing", exc_info=True)
        return False
