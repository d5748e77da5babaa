"""The public setup: Braintrust's LlamaIndex integration, the traced SDK, and this adapter."""

from __future__ import annotations

import importlib.util

from braintrust_ollama import setup_ollama

from . import _patchers


def setup_llamaindex(
    api_key: str | None = None,
    project_id: str | None = None,
    project_name: str | None = None,
) -> bool:
    """Trace LlamaIndex over Ollama; idempotent. False when llama-index is not installed.

    Registers Braintrust's LlamaIndex span handler (unless it already is), traces the `ollama`
    SDK (`setup_ollama()`), and keeps the LlamaIndex span of every streamed `Ollama` call open
    until its stream is finished. Every `ollama.*` span is then a child of the LlamaIndex span of
    the LLM or embedding call that made it, and carries that call's tokens (LlamaIndex spans
    carry none, so each call's tokens are counted once).

    `api_key`, `project_id` and `project_name` are Braintrust's: given any of them, and with no
    span current, a logger is initialised for that project. Given none, the logger you already
    initialised is used as it is.
    """
    if importlib.util.find_spec("llama_index.core") is None:
        return False
    from braintrust.integrations.llamaindex import LlamaIndexIntegration
    from braintrust.logger import NOOP_SPAN, current_span, init_logger

    if (api_key or project_id or project_name) and current_span() == NOOP_SPAN:
        init_logger(project=project_name, api_key=api_key, project_id=project_id)
    if not LlamaIndexIntegration.setup():
        return False
    setup_ollama()
    return _patchers.patch()


def unpatch_llamaindex() -> None:
    """Undo this adapter's patches (Braintrust's handler and the SDK patch stay as they are)."""
    _patchers.unpatch()
