"""Fixtures for the local store: user programs run as their own processes on a fresh store, and
the in-process set-up undone after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from local.programs import Program
from support.ollama_server import FakeOllama


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Program]:
    with FakeOllama() as server:
        yield Program(home=tmp_path / "home", ollama_url=server.url)
