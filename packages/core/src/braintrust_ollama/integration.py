"""What is patched, and for which versions: the public setup functions."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
from typing import Any, TypeVar

from . import patchers

_log = logging.getLogger("braintrust_ollama")

MIN_OLLAMA = (0, 4)
ClientT = TypeVar("ClientT")


def _supported_ollama() -> Any:
    """The `ollama` module if it is installed at a supported version, else None."""
    try:
        import ollama
    except ImportError:
        return None
    version = importlib.metadata.version("ollama")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < MIN_OLLAMA:
        _log.warning("braintrust-ollama needs ollama >= 0.4 (found %s): not tracing", version)
        return None
    return ollama


def setup_ollama() -> bool:
    """Trace the `ollama` SDK process-wide: every chat, generate, embed and embeddings call.

    Covers module functions (`ollama.chat`), functions imported before setup (`from ollama
    import chat`), `Client` and `AsyncClient`. Idempotent. Returns False when `ollama` is not
    installed (or too old), True once tracing is on.
    """
    ollama = _supported_ollama()
    if ollama is None:
        return False
    patchers.patch_class(ollama.Client)
    patchers.patch_class(ollama.AsyncClient)
    install_adapter_handoffs()
    return True


def unpatch_ollama() -> None:
    """Restore the SDK exactly as it was before `setup_ollama()`."""
    try:
        import ollama
    except ImportError:
        return
    patchers.unpatch_class(ollama.Client)
    patchers.unpatch_class(ollama.AsyncClient)


def wrap_ollama(client: ClientT) -> ClientT:
    """Trace one `ollama.Client` / `ollama.AsyncClient` instance and return it.

    Combined with `setup_ollama()`, a call on this client still yields exactly one span.
    """
    if _supported_ollama() is not None:
        patchers.patch_instance(client)
        install_adapter_handoffs()
    return client


def install_adapter_handoffs() -> None:
    """Let every installed adapter of this suite hand token ownership to the SDK spans.

    Whenever the SDK is traced, a Braintrust LangChain / LlamaIndex handler must leave each
    Ollama call's tokens to its SDK span, whichever set-up functions the user called and in
    whichever order. Each adapter package exports `install_ollama_handoff()` (idempotent,
    cheap, never importing the framework itself); a failure is logged once and tracing goes on.
    """
    for module_name, _ in _ADAPTERS.values():
        if importlib.util.find_spec(module_name) is None:
            continue
        try:
            importlib.import_module(module_name).install_ollama_handoff()
        except Exception:
            _log.warning("braintrust-ollama: hand-off to %s failed", module_name, exc_info=True)


_ADAPTERS = {
    "langchain": ("braintrust_ollama_langchain", "setup_langchain"),
    "llamaindex": ("braintrust_ollama_llamaindex", "setup_llamaindex"),
}


def auto_instrument(*, ollama: bool = True, **flags: Any) -> dict[str, bool]:
    """Braintrust's `auto_instrument()`, plus Ollama, plus this suite's installed adapters.

    `flags` are Braintrust's own (`openai=False`, `langchain=False`, ...); `langchain` and
    `llamaindex` also switch this suite's adapters. Returns what was instrumented.
    """
    import braintrust

    from .destinations import keeping_current_logger

    accepted = inspect.signature(braintrust.auto_instrument).parameters
    with keeping_current_logger():  # Braintrust's set-ups may replace the user's logger
        results = dict(
            braintrust.auto_instrument(**{k: v for k, v in flags.items() if k in accepted})
        )
    if ollama:
        results["ollama"] = setup_ollama()
    for flag, (module_name, setup_name) in _ADAPTERS.items():
        if not flags.get(flag, True):
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            results[f"{flag}_ollama"] = bool(getattr(module, setup_name)())
        except Exception:
            _log.warning("braintrust-ollama: setting up %s failed", module_name, exc_info=True)
            results[f"{flag}_ollama"] = False
    return results
