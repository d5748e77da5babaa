"""What is patched, and for which versions: the public setup functions."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import logging
from types import ModuleType
from typing import Any, TypeVar

from . import _patching, _settings, patchers
from ._warn import warn_once

_log = logging.getLogger(__name__)

ClientT = TypeVar("ClientT")


def _supported_ollama() -> ModuleType | None:
    """The `ollama` module if it is installed at a version `patchers.REQUIRES` allows, else None
    (an unsupported version is logged once)."""
    try:
        import ollama
    except ImportError:
        return None
    return ollama if _patching.supported(patchers.REQUIRES) else None


def setup_ollama(*, record_content: bool | None = None) -> bool:
    """Trace the `ollama` SDK process-wide: every call to an endpoint of `tracing.ENDPOINTS`
    (`chat`, `generate`, `embed`, `embeddings`, `systemone`, `web_search`, `web_fetch`).

    Covers module functions (`ollama.chat`), functions imported before setup (`from ollama
    import chat`), `Client` and `AsyncClient`. Idempotent. Returns False when `ollama` is not
    installed (or is older than 0.4) or `BRAINTRUST_OLLAMA_DISABLED` is set, True once tracing
    is on. `record_content=False` keeps inputs and outputs out of spans (metadata and metrics
    stay); unset, `BRAINTRUST_OLLAMA_RECORD_CONTENT` decides (default: recorded).
    """
    if _settings.tracing_disabled() or _supported_ollama() is None:
        return False
    patchers.patch_clients(record_content=_settings.record_content(record_content))
    install_adapter_handoffs()
    return True


def unpatch_ollama() -> None:
    """Restore the SDK exactly as it was before `setup_ollama()`."""
    patchers.unpatch_clients()


def wrap_ollama(client: ClientT, *, record_content: bool | None = None) -> ClientT:
    """Trace one `ollama.Client` / `ollama.AsyncClient` instance, or the `ollama` module, and
    return it unchanged.

    `wrap_ollama(ollama)` traces the module's functions (`ollama.chat`, `ollama.generate`, ...,
    also when imported before), which run on the module's default client; other clients stay
    untraced. Combined with `setup_ollama()`, a call still yields exactly one span (with this
    client's `record_content`, as for `setup_ollama`). Anything else raises `TypeError` naming
    what is accepted (`setup_ollama()` traces every client). With `BRAINTRUST_OLLAMA_DISABLED`
    set, the client is returned untouched.
    """
    ollama = None if _settings.tracing_disabled() else _supported_ollama()
    if ollama is None:
        return client
    patchers.patch_client(
        _traceable_client(ollama, client), record_content=_settings.record_content(record_content)
    )
    install_adapter_handoffs()
    return client


def _traceable_client(ollama: ModuleType, given: object) -> object:
    """The client instance whose calls `wrap_ollama(given)` traces."""
    if isinstance(given, (ollama.Client, ollama.AsyncClient)):
        return given
    if given is ollama:
        default = ollama.__dict__.get("_client")  # what `ollama.chat` & co. are bound to
        if isinstance(default, ollama.Client):
            return default
    raise TypeError(
        "wrap_ollama() accepts an ollama.Client, an ollama.AsyncClient or the ollama module, "
        f"not {given!r}; setup_ollama() traces every client"
    )


def install_adapter_handoffs() -> None:
    """Let every installed adapter of this suite hand token ownership to the SDK spans.

    Whenever the SDK is traced, a Braintrust LangChain / LlamaIndex handler must leave each
    Ollama call's tokens to its SDK span, whichever set-up functions the user called and in
    whichever order. Each adapter package exports `install_ollama_handoff()` (idempotent,
    cheap; importing the package imports no framework): it patches the framework's Braintrust
    handler now if it is imported, or when it is. A failure is logged once per adapter and
    tracing goes on.
    """
    for module_name in _ADAPTER_MODULES:
        adapter = _installed_adapter(module_name)
        if adapter is None:
            continue
        try:
            adapter.install_ollama_handoff()
        except Exception:
            warn_once(_log, f"could not hand off to {module_name}", unaffected="Ollama tracing")


@functools.cache
def _installed_adapter(module_name: str) -> ModuleType | None:
    """The adapter package if it is installed (looked up once: `wrap_ollama()` runs per client)."""
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        return importlib.import_module(module_name)
    except Exception:
        warn_once(_log, f"could not import {module_name}", unaffected="Ollama tracing")
        return None


_ADAPTERS = {
    "langchain": ("braintrust_ollama_langchain", "setup_langchain"),
    "llamaindex": ("braintrust_ollama_llamaindex", "setup_llamaindex"),
}
_ADAPTER_MODULES = tuple(module_name for module_name, _ in _ADAPTERS.values())


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
            warn_once(_log, f"could not set up {module_name}", unaffected="Ollama tracing")
            results[f"{flag}_ollama"] = False
    return results
