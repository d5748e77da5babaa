"""Fixtures shared by every package's tests: an in-memory Braintrust logger, the patched SDK and
an in-process Ollama-protocol server.

Every span the in-memory logger holds is checked as it is read (`pop()`) and when the test ends:
an SDK span of a chat-shaped endpoint (`ollama.chat`, `ollama.generate`, ...) whose input or
output is not in Braintrust's chat schema fails the test (see support/chat_schema.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import braintrust
import pytest
from braintrust import logger as bt_logger
from braintrust.test_helpers import init_test_logger
from braintrust.util import LazyValue
from braintrust_ollama import destinations
from braintrust_ollama._model_info import MODEL_INFO
from braintrust_ollama._settings import MODEL_INFO_ENV
from braintrust_ollama._warn import reset_warnings
from braintrust_ollama.tracing import ENDPOINTS
from support.chat_schema import chat_schema_errors
from support.ollama_server import FakeOllama
from support.runner import User

PROJECT = "braintrust-ollama-tests"
CHAT_SHAPED = frozenset(e.name for e in ENDPOINTS.values() if e.chat_schema)


def assert_chat_schema(rows: list[dict]) -> None:
    """Fail when a chat-shaped SDK span's input or output is not in Braintrust's chat schema."""
    for row in rows:
        if row.get("span_attributes", {}).get("name") in CHAT_SHAPED:
            errors = chat_schema_errors(row)
            assert not errors, (
                f"{row['span_attributes']['name']} not in Braintrust's schema: {errors}"
            )


class MemoryLogger:
    """Braintrust's in-memory background logger, with a logger initialised to write to it."""

    def __init__(self, background: object) -> None:
        self._background = background

    def pop(self) -> list[dict]:
        """Every row logged since the last pop, merged per span (as the server would)."""
        braintrust.flush()
        rows: list[dict] = self._background.pop()  # type: ignore[attr-defined]
        assert_chat_schema(rows)
        return rows

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
        logger = MemoryLogger(background)
        yield logger
        logger.pop()  # the rows the test did not read are checked too
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


@pytest.fixture
def user(tmp_path: Path) -> Iterator[User]:
    """A new user, for programs and commands run as processes of their own (support/runner.py):
    a fresh HOME and private store, no key, no Ollama unless the test gives one."""
    with User(tmp_path / "home") as user:
        yield user


@pytest.fixture(autouse=True)
def _warn_again() -> Iterator[None]:
    """Failures are logged once per kind per process; each test starts with none logged."""
    reset_warnings()
    yield
    reset_warnings()


@pytest.fixture(autouse=True)
def _no_model_info(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Spans carry no model information fetched in the background (`/api/show`, `/api/ps`)
    unless a test asks for it (`model_info`): whole-span tests stay deterministic, and FakeOllama
    serves only what a test sends it. Programs run through support/runner.py have it off too."""
    monkeypatch.setenv(MODEL_INFO_ENV, "false")
    MODEL_INFO.clear()
    yield
    MODEL_INFO.clear()


@pytest.fixture
def model_info(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Model information on, with an empty cache; `.wait()` waits for fetches in flight."""
    monkeypatch.setenv(MODEL_INFO_ENV, "true")
    MODEL_INFO.clear()
    yield MODEL_INFO
    assert MODEL_INFO.wait(timeout=10), "a model-info fetch outlived its test"
    MODEL_INFO.clear()


@pytest.fixture
def restore_braintrust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what init_logger / init_local_logger do to the process: the router on the
    background logger, the delivery, and the current logger."""
    state = bt_logger._state
    # Where the current logger lives differs across braintrust versions.
    for name in ("_global_bg_logger", "_local_logger", "current_logger"):
        if name in vars(state):
            monkeypatch.setattr(state, name, getattr(state, name))
    monkeypatch.setattr(destinations, "_delivery", None)
    current = getattr(state, "_cv_logger", None)
    token = current.set(current.get()) if current is not None else None
    yield
    for router in list(destinations._routers):
        router.exit()
        for name in ("log", "flush", "set_masking_function"):
            vars(router.background).pop(name, None)
    destinations._routers.clear()
    if current is not None and token is not None:
        current.reset(token)
    state.reset_parent_state()
