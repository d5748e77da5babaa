"""Fixtures shared by every package's tests: an in-memory Braintrust logger, the patched SDK and
an in-process Ollama-protocol server."""

from __future__ import annotations

from collections.abc import Iterator

import braintrust
import pytest
from braintrust import logger as bt_logger
from braintrust.test_helpers import init_test_logger
from braintrust.util import LazyValue
from support.ollama_server import FakeOllama

PROJECT = "braintrust-ollama-tests"


class MemoryLogger:
    """Braintrust's in-memory background logger, with a logger initialised to write to it."""

    def __init__(self, background: object) -> None:
        self._background = background

    def pop(self) -> list[dict]:
        """Every row logged since the last pop, merged per span (as the server would)."""
        braintrust.flush()
        return self._background.pop()  # type: ignore[attr-defined]

    @property
    def uploaded_attachments(self) -> list:
        """Attachments the logger extracted from rows (rows hold references to them)."""
        return self._background.upload_attempts  # type: ignore[attr-defined]


@pytest.fixture
def memory_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryLogger]:
    bt_logger._state.reset_parent_state()
    with bt_logger._internal_with_memory_background_logger() as background:
        # The override is thread-local: worker threads must see the same logger.
        monkeypatch.setattr(
            bt_logger._state, "_global_bg_logger", LazyValue(lambda: background, use_mutex=False)
        )
        init_test_logger(PROJECT)
        yield MemoryLogger(background)
    bt_logger._state.reset_parent_state()


@pytest.fixture
def traced() -> Iterator[None]:
    """The ollama SDK patched process-wide for this test, restored afterwards."""
    from braintrust_ollama import setup_ollama, unpatch_ollama

    setup_ollama()
    yield
    unpatch_ollama()


@pytest.fixture
def ollama_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    """A fresh Ollama-protocol server; OLLAMA_HOST points at it for clients made in the test."""
    with FakeOllama() as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        yield server
