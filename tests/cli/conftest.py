"""Fixtures for the command-line tests: a new user with no key and no Ollama server."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from support.runner import User


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def new_user(user: User, closed_port: int) -> User:
    """A fresh HOME, no Braintrust key, no Ollama server (its address refuses connections)."""
    user.ollama_host = f"127.0.0.1:{closed_port}"
    return user
