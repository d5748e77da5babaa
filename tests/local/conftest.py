"""Fixtures for the local store: user programs run as their own processes on a fresh store, and
the in-process set-up undone after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from braintrust import logger as bt_logger
from braintrust_ollama.local import logger as local_logger
from local.programs import Program
from support.ollama_server import FakeOllama


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Program]:
    with FakeOllama() as server:
        yield Program(home=tmp_path / "home", ollama_url=server.url)


@pytest.fixture
def restore_braintrust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Undo what init_local_logger does to the process: background logger and current logger."""
    state = bt_logger._state
    # Where the current logger lives differs across braintrust versions.
    for name in ("_global_bg_logger", "_local_logger", "current_logger"):
        if name in vars(state):
            monkeypatch.setattr(state, name, getattr(state, name))
    monkeypatch.setattr(local_logger, "_installed", None)
    current = getattr(state, "_cv_logger", None)
    token = current.set(current.get()) if current is not None else None
    yield
    if current is not None and token is not None:
        current.reset(token)
    state.reset_parent_state()
