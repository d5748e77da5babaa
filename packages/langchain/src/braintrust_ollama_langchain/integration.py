"""What the adapter sets up: `setup_langchain()`, `unpatch_langchain()`, and the hand-off that
`braintrust_ollama.setup_ollama()` / `wrap_ollama()` call (`install_ollama_handoff()`)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from braintrust.logger import NOOP_SPAN, current_span, init_logger
from braintrust_ollama._patching import WhenImported
from braintrust_ollama._warn import warn_once

from ._handlers import CONTEXT_MODULES, handler_homes
from .patchers import install_home, registered_handler, uninstall_home

__all__ = ["install_ollama_handoff", "setup_langchain", "unpatch_langchain"]

_log = logging.getLogger(__name__)

_registered: Any = None  # the global handler setup_langchain() registered, for unpatch
# Each home of Braintrust's handler is patched as its module is imported, while the hand-off is on.
_handoff = WhenImported(
    dict.fromkeys(CONTEXT_MODULES, install_home), log=_log, unaffected="LangChain"
)


def install_ollama_handoff() -> None:
    """Make every Braintrust LangChain handler trace each run once, process-wide, and leave each
    Ollama call's tokens to its SDK span. Registers no handler.

    Called by `braintrust_ollama.setup_ollama()` / `wrap_ollama()`, so the minimal set-up is
    enough, in any order with Braintrust's own: a Braintrust handler module already imported is
    patched now, one imported later (by `braintrust.auto_instrument()`, Braintrust's
    `setup_langchain()`, or the user) as its import finishes. Never imports LangChain itself;
    idempotent and cheap (a dictionary lookup per handler home once installed).
    """
    _handoff.on()


def setup_langchain(
    api_key: str | None = None,
    project_id: str | None = None,
    project_name: str | None = None,
) -> bool:
    """Trace LangChain runs to Braintrust, once each, with each Ollama call's tokens counted once.

    Registers Braintrust's LangChain callback handler globally, for the whole process (every
    thread, task and context, made before or after this call), unless one already is (from an
    earlier call, Braintrust's own `setup_langchain()` or `auto_instrument()`). A run with other
    Braintrust handlers passed in `config={"callbacks": [...]}` is still traced once. When a
    traced `ollama.*` SDK call runs under a LangChain model run, the SDK span carries the tokens
    and the run's span none.

    Same arguments as Braintrust's `setup_langchain()`: given any and outside a span, a logger
    is initialised with them. Called without arguments it never replaces the current logger.
    Safe to call any number of times; returns False (and does nothing) when langchain-core is
    not installed. `unpatch_langchain()` undoes it.
    """
    global _registered
    try:
        homes = handler_homes()
        if not homes:
            return False
        install_ollama_handoff()
        if (api_key or project_id or project_name) and current_span() == NOOP_SPAN:
            init_logger(project=project_name, api_key=api_key, project_id=project_id)
        if registered_handler() is None:
            from ._callbacks import BraintrustCallbackHandler

            _registered = BraintrustCallbackHandler()
            homes[0].global_handler.set(_registered)
        return True
    except Exception:
        warn_once(_log, "could not set up LangChain tracing", unaffected="LangChain")
        return False


def unpatch_langchain() -> None:
    """Undo `setup_langchain()` and the hand-off: Braintrust's handlers, its global-handler
    variable and LangChain's callback configuration are as they were before, and the handler
    `setup_langchain()` registered is unregistered. A handler registered by Braintrust's own
    set-up stays registered (in Braintrust's ContextVar, in the calling context).

    A later `setup_ollama()`, `wrap_ollama()` or `setup_langchain()` installs it all again.
    """
    global _registered
    _handoff.off()
    for name in CONTEXT_MODULES:
        context = sys.modules.get(name)
        if context is not None:
            try:
                uninstall_home(context, unregister=_registered)
            except Exception:
                warn_once(_log, f"could not unpatch {name}", unaffected="LangChain")
    _registered = None
