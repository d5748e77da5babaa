"""`context` of an `ollama.*` span made while serving a request names the user's line, not
FastAPI's, Starlette's or AnyIO's: in an `async def` endpoint, in a plain `def` one (FastAPI runs
it on a worker thread), and in a background task run after the response."""

from __future__ import annotations

from typing import Any

import ollama
from braintrust_ollama_fastapi import BraintrustMiddleware
from fastapi import BackgroundTasks, FastAPI
from fastapi.testclient import TestClient
from support.call_site import caller_of, line_above
from support.ollama_server import MODEL, FakeOllama
from support.spans import by_name, only

QUESTION = [{"role": "user", "content": "Capital of France?"}]


def test_endpoints_are_the_callers(
    memory_logger: Any, ollama_server: FakeOllama, traced: None
) -> None:
    called: dict[str, dict[str, Any]] = {}
    app = FastAPI()
    app.add_middleware(BraintrustMiddleware)

    @app.get("/async")
    async def in_the_event_loop() -> dict[str, str]:
        await ollama.AsyncClient(host=ollama_server.url).chat(model=MODEL, messages=QUESTION)
        called["async"] = line_above()
        return {}

    @app.get("/sync")
    def on_a_worker_thread() -> dict[str, str]:
        ollama.Client(host=ollama_server.url).chat(model=MODEL, messages=QUESTION)
        called["sync"] = line_above()
        return {}

    def summarize(text: str) -> None:
        ollama.Client(host=ollama_server.url).generate(model=MODEL, prompt=text)
        called["background"] = line_above()

    @app.post("/later")
    async def after_the_response(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(summarize, "a long text")
        return {}

    with TestClient(app) as client:
        assert client.get("/async").status_code == 200
        assert client.get("/sync").status_code == 200
        assert client.post("/later").status_code == 200

    rows = memory_logger.pop()
    first, second = by_name(rows, "ollama.chat")
    assert caller_of(first) == called["async"]
    assert caller_of(second) == called["sync"]
    assert caller_of(only(rows, "ollama.generate")) == called["background"]
