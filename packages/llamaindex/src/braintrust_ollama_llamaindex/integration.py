"""The public setup: Braintrust's LlamaIndex integration, the traced SDK, and this adapter.

This module imports neither LlamaIndex nor the patches (which do): `braintrust_ollama` imports
it from `setup_ollama()`, which must stay cheap for programs that never use LlamaIndex.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType

import wrapt
from braintrust_ollama import setup_ollama
from braintrust_ollama._warn import warn_once

_log = logging.getLogger(__name__)

CORE_MODULE = "llama_index.core"
# What to patch once each module is imported. Braintrust's handler is patched when its own module
# has loaded, not when llama_index.core has: that module may be what is importing it.
_PATCHERS = {
    "braintrust.integrations.llamaindex.tracing": "patch_span_handler",
    CORE_MODULE: "patch_core_llms",
    "llama_index.llms.ollama": "patch_ollama_llm",
}

_hooks_lock = threading.Lock()
# None until the first install: then whether llama-index is installed (and the hooks registered).
_hooks_registered: bool | None = None


def setup_llamaindex(
    api_key: str | None = None,
    project_id: str | None = None,
    project_name: str | None = None,
) -> bool:
    """Trace LlamaIndex over Ollama; idempotent. False when llama-index is not installed.

    Registers Braintrust's LlamaIndex span handler (unless it already is), traces the `ollama`
    SDK (`setup_ollama()`), and installs this adapter's patches (`install_ollama_handoff()`).
    Every `ollama.*` span is then a child of the LlamaIndex span of the LLM or embedding call
    that made it, streams included, and carries that call's tokens (LlamaIndex spans carry none,
    so each call's tokens are counted once).

    `api_key`, `project_id` and `project_name` are Braintrust's: given any of them, and with no
    span current, a logger is initialised for that project. Given none, the logger you already
    initialised is used as it is.
    """
    if importlib.util.find_spec(CORE_MODULE) is None:
        return False
    from braintrust.integrations.llamaindex import LlamaIndexIntegration
    from braintrust.logger import NOOP_SPAN, current_span, init_logger

    if (api_key or project_id or project_name) and current_span() == NOOP_SPAN:
        init_logger(project=project_name, api_key=api_key, project_id=project_id)
    if not LlamaIndexIntegration.setup():
        return False
    setup_ollama()
    from . import patchers

    return patchers.patch()


def install_ollama_handoff() -> bool:
    """Make Braintrust's LlamaIndex spans and the Ollama SDK spans one tree (idempotent, cheap).

    Called by `braintrust_ollama.setup_ollama()` / `wrap_ollama()`, so that with Braintrust's
    LlamaIndex handler set up in any way (`braintrust.auto_instrument()`, Braintrust's
    `setup_llamaindex()`, or by hand) and `setup_ollama()`, in either order, this adapter is in
    place without `setup_llamaindex()`. It patches LlamaIndex when LlamaIndex is imported (now
    if it already is) and never imports LlamaIndex itself. Returns False when llama-index is not
    installed.
    """
    global _hooks_registered
    with _hooks_lock:
        if _hooks_registered is None:  # looked up once: find_spec scans sys.path
            _hooks_registered = importlib.util.find_spec("llama_index") is not None
            if _hooks_registered:
                # Each hook runs once its module is imported, or at once if it already is.
                for module_name, patcher in _PATCHERS.items():
                    wrapt.register_post_import_hook(_hook(patcher), module_name)
            return _hooks_registered
    if not _hooks_registered:
        return False
    for module_name, patcher in _PATCHERS.items():
        if module_name in sys.modules:  # its hook ran: patch again (after an unpatch, say)
            _hook(patcher)(sys.modules[module_name])
    return True


def _hook(patcher: str) -> Callable[[ModuleType], None]:
    """A post-import hook running `patchers.<patcher>()`; a failure is logged, never raised into
    the user's import."""

    def hook(module: ModuleType) -> None:
        if not _llamaindex_loaded():
            return  # Braintrust's integration module loads without llama-index-core too
        try:
            from . import patchers

            getattr(patchers, patcher)()
        except Exception:
            warn_once(_log, f"could not patch {module.__name__}", unaffected="LlamaIndex")

    return hook


def _llamaindex_loaded() -> bool:
    return CORE_MODULE in sys.modules


def unpatch_llamaindex() -> None:
    """Undo this adapter's patches exactly (Braintrust's handler and the SDK patch stay).

    `setup_ollama()` or `setup_llamaindex()` installs them again.
    """
    if not _llamaindex_loaded():
        return  # never imported, so never patched
    from . import patchers

    patchers.unpatch()
