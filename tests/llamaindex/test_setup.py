"""setup_llamaindex(): idempotent, and a no-op returning False without llama-index."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from braintrust.integrations.llamaindex import BraintrustSpanHandler
from braintrust_ollama_llamaindex import (
    install_ollama_handoff,
    setup_llamaindex,
    unpatch_llamaindex,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.workflow import Workflow
from llama_index.llms.ollama import Ollama


def test_setup_twice_registers_one_handler_and_one_patch(adapter: None) -> None:
    stream_chat = Ollama.__dict__["stream_chat"]

    assert setup_llamaindex()

    handlers = [h for h in get_dispatcher().span_handlers if isinstance(h, BraintrustSpanHandler)]
    assert len(handlers) == 1
    assert Ollama.__dict__["stream_chat"] is stream_chat
    assert stream_chat.__wrapped__ is not None


def test_unpatch_restores_llamaindex_methods(adapter: None) -> None:
    patched = Ollama.__dict__["stream_chat"]
    patched_run = Workflow.__dict__["run"]
    assert patched_run.__wrapped__ is not None

    unpatch_llamaindex()

    assert Ollama.__dict__["stream_chat"] is patched.__wrapped__
    assert Workflow.__dict__["run"] is patched_run.__wrapped__
    assert setup_llamaindex()
    assert Workflow.__dict__["run"].__wrapped__ is patched_run.__wrapped__


def test_setup_without_llama_index_returns_false(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name.startswith("llama_index") else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    assert setup_llamaindex() is False


def test_install_ollama_handoff_returns_nothing_as_every_adapters_does(adapter: None) -> None:
    assert install_ollama_handoff() is None  # docs/CONTRACTS.md: `install_ollama_handoff() -> None`
