"""Fixtures for the FastAPI middleware tests: an ASGI app served by uvicorn on a loopback port,
for tests that go over real HTTP.

    with serve(app) as live:          # uvicorn on 127.0.0.1:<free port>, lifespan on
        httpx.get(f"{live.url}/chat/1")
        live.wait()                   # the request's app call (and its span) has finished
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

STARTUP_TIMEOUT_S = 10.0
FINISH_TIMEOUT_S = 30.0


class _Server(uvicorn.Server):
    """A uvicorn server that signals when it is listening (or has given up starting)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


class Finished:
    """ASGI wrapper (outside the middleware) counting HTTP requests whose app call returned,
    so a test can wait until the request span's closing row has been written."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._done = threading.Semaphore(0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self._done.release()

    def wait(self, requests: int = 1) -> None:
        for _ in range(requests):
            assert self._done.acquire(timeout=FINISH_TIMEOUT_S), "a request never finished"


@dataclass
class Live:
    url: str
    finished: Finished

    def wait(self, requests: int = 1) -> None:
        """Block until `requests` more HTTP requests have left the app."""
        self.finished.wait(requests)


@contextmanager
def _serve(app: ASGIApp) -> Iterator[Live]:
    """Run `app` under uvicorn on 127.0.0.1 (a free port, lifespan on). Leaving the block
    shuts the server down, lifespan shutdown included."""
    finished = Finished(app)
    config = uvicorn.Config(finished, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(STARTUP_TIMEOUT_S), "uvicorn did not start"
        assert server.started, "uvicorn failed to start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Live(f"http://127.0.0.1:{port}", finished)
    finally:
        server.should_exit = True
        thread.join(FINISH_TIMEOUT_S)


@pytest.fixture
def serve() -> Callable[[ASGIApp], AbstractContextManager[Live]]:
    return _serve


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# The adapters are installed in the workspace, not in the fastapi-only nox sessions.
collect_ignore = (
    []
    if _installed("braintrust_ollama_langchain") and _installed("braintrust_ollama_llamaindex")
    else ["test_with_adapters.py"]
)
