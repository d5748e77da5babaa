"""The public setup: Braintrust's LlamaIndex integration, the traced SDK, and this adapter.

This module imports neither LlamaIndex nor the patches (which do): `braintrust_ollama` imports
it from `setup_ollama()`, which must stay cheap for programs that never use LlamaIndex.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from types import ModuleType

from braintrust_ollama import _patching, setup_ollama

_log = logging.getLogger(__name__)

CORE_MODULE = "llama_index.core"
# The group of `patchers` to install once each module is imported. Braintrust's handler is patched
# when its own module has loaded, not when llama_index.core has: that module may be what is
# importing it.
_WHEN_IMPORTED = {
    "braintrust.integrations.llamaindex.tracing": "HANDLER",
    CORE_MODULE: "CORE",
    "llama_index.llms.ollama": "OLLAMA_LLM",
}


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
    install_ollama_handoff()  # also when setup_ollama() did not (BRAINTRUST_OLLAMA_DISABLED)
    from . import patchers

    return patchers.patch()


def install_ollama_handoff() -> None:
    """Make Braintrust's LlamaIndex spans and the Ollama SDK spans one tree (idempotent, cheap).

    Called by `braintrust_ollama.setup_ollama()` / `wrap_ollama()`, so that with Braintrust's
    LlamaIndex handler set up in any way (`braintrust.auto_instrument()`, Braintrust's
    `setup_llamaindex()`, or by hand) and `setup_ollama()`, in either order, this adapter is in
    place without `setup_llamaindex()`. It patches LlamaIndex when LlamaIndex is imported (now
    if it already is) and never imports LlamaIndex itself.
    """
    _handoff.on()


def _install(group: str) -> Callable[[ModuleType], None]:
    """What patches `patchers.<group>` once its module is imported (with llama-index-core)."""

    def install(module: ModuleType) -> None:
        if _llamaindex_loaded():  # Braintrust's integration module loads without llama-index-core
            from . import patchers

            _patching.apply(getattr(patchers, group), load=True)

    return install


def _llamaindex_loaded() -> bool:
    return CORE_MODULE in sys.modules


_handoff = _patching.WhenImported(
    {name: _install(group) for name, group in _WHEN_IMPORTED.items()},
    log=_log,
    unaffected="LlamaIndex",
)


def unpatch_llamaindex() -> None:
    """Undo this adapter's patches exactly (Braintrust's handler and the SDK patch stay).

    `setup_ollama()` or `setup_llamaindex()` installs them again.
    """
    _handoff.off()
    if not _llamaindex_loaded():
        return  # never imported, so never patched
    from . import patchers

    patchers.unpatch()
