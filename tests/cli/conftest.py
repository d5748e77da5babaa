"""Fixtures for the command-line tests: a new user with no key and no Ollama server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli.runner import Cli


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def new_user(tmp_path: Path, closed_port: int) -> Cli:
    """A fresh HOME, no Braintrust key, no Ollama server."""
    return Cli(home=tmp_path / "home", ollama_host=f"127.0.0.1:{closed_port}")
