"""Set up in a FastAPI `lifespan`, served by uvicorn in a thread on 127.0.0.1: every request's
LangChain run is traced (async endpoints on the event loop, sync ones in the thread pool), once,
tokens on the SDK spans. The lifespan runs in a task of its own: a ContextVar set there is seen
by no request."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from braintrust_ollama import setup_ollama
from braintrust_ollama_langchain import setup_langchain
from fastapi import FastAPI
from langchain_ollama import ChatOllama
from support.ollama_server import MODEL, FakeOllama
from support.spans import parent_of, span_tree

from .traces import (
    TOKEN_KEYS,
    assert_tokens_counted_once,
    braintrust_setup_langchain,
    sdk_spans,
)

WAIT_S = 30.0


class _Server(uvicorn.Server):
    """uvicorn, signalling once it listens (or gave up starting)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[Any] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """`app` under uvicorn in a thread on 127.0.0.1 (a free port, lifespan on); its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(WAIT_S) and server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)


SET_UPS: dict[str, Callable[[], bool]] = {
    "setup_ollama() + setup_langchain()": lambda: setup_ollama() and setup_langchain(),
    "Braintrust's set-up + setup_ollama()": lambda: braintrust_setup_langchain() and setup_ollama(),
}


@pytest.mark.parametrize("set_up", list(SET_UPS))
def test_set_up_in_the_lifespan_traces_every_request(
    set_up: str, ollama_server: FakeOllama, memory_logger: Any
) -> None:
    chat = ChatOllama(model=MODEL, base_url=ollama_server.url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert SET_UPS[set_up]() is True
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/async")
    async def ask_async(q: str) -> dict[str, str]:
        return {"answer": str((await chat.ainvoke(q)).content)}

    @app.get("/sync")
    def ask_sync(q: str) -> dict[str, str]:  # run in the thread pool
        return {"answer": str(chat.invoke(q).content)}

    try:
        with serve(app) as url:
            for path in ("/async", "/sync", "/async", "/sync"):
                reply = httpx.get(f"{url}{path}", params={"q": "Hi"}, timeout=WAIT_S)
                assert reply.json() == {"answer": "Hello! How can I help you today?"}
    finally:
        from braintrust_ollama import unpatch_ollama

        unpatch_ollama()

    rows = memory_logger.pop()
    assert span_tree(rows) == ["ChatOllama", "  ollama.chat"] * 4
    assert len({r["root_span_id"] for r in rows}) == 4  # a trace per request
    assert len(sdk_spans(rows)) == 4 == len(ollama_server.served)
    for span in sdk_spans(rows):
        run = parent_of(rows, span)
        assert run is not None and not set(run.get("metrics") or {}) & set(TOKEN_KEYS)
    assert_tokens_counted_once(rows, ollama_server.tokens_served())
