"""Fixtures for the local store: a user whose programs, run as their own processes, call an
in-process Ollama and write a fresh store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.ollama_server import FakeOllama
from support.runner import User


@pytest.fixture
def user(user: User) -> Iterator[User]:
    """The suite's new user (tests/conftest.py), with a FakeOllama at OLLAMA_HOST."""
    with FakeOllama() as server:
        user.ollama_host = server.url
        yield user
