"""BraintrustMiddleware over real HTTP: a FastAPI app under uvicorn on a loopback port, httpx
clients, and Ollama calls made with the real `ollama` clients against the fake Ollama server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import braintrust
import httpx
import ollama
import pytest
from braintrust_ollama_fastapi import BraintrustMiddleware
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from support.ollama_server import Chat
from support.spans import by_name, children_of, only, parent_of, roots

MODEL = "llama3.2:1b"
pytestmark = pytest.mark.usefixtures("traced")


def make_app(ollama_url: str, lifespan: Any = None, **options: Any) -> FastAPI:
    app = FastAPI(lifespan=lifespan)
    app.add_middleware(BraintrustMiddleware, **options)
    client = ollama.AsyncClient(host=ollama_url)

    def current_user(user: str) -> str:  # a plain `def` dependency: runs in the thread pool
        with braintrust.start_span(name="load user"):
            return user

    @app.get("/chat/{user}")
    async def chat(user: str = Depends(current_user), q: str = "hi") -> dict[str, str]:
        reply = await client.chat(MODEL, messages=[{"role": "user", "content": f"{q} from {user}"}])
        return {"answer": reply.message.content or ""}

    @app.get("/sync/chat/{user}")
    def sync_chat(user: str = Depends(current_user)) -> dict[str, str]:
        reply = ollama.Client(host=ollama_url).chat(
            MODEL, messages=[{"role": "user", "content": f"sync from {user}"}]
        )
        return {"answer": reply.message.content or ""}

    @app.get("/stream/{user}")
    async def stream(user: str) -> StreamingResponse:
        parts = await client.chat(
            MODEL, messages=[{"role": "user", "content": f"stream for {user}"}], stream=True
        )

        async def relay() -> AsyncIterator[str]:
            async for part in parts:
                yield part.message.content or ""

        return StreamingResponse(relay(), media_type="text/plain")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/missing/{thing}")
    async def missing(thing: str) -> None:
        raise HTTPException(status_code=404, detail=f"no {thing}")

    async def summarise(note: str) -> None:
        await client.generate(MODEL, prompt=f"summarise {note}")

    @app.post("/notes")
    async def notes(request: Request, tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(summarise, (await request.json())["note"])
        return {"queued": True}

    @app.post("/login")
    async def login(request: Request, response: Response) -> dict[str, str]:
        body = await request.json()
        response.set_cookie("session", body["password"] + "-session")
        return {"user": body["user"]}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def llm_spans(rows: list[dict]) -> list[dict]:
    """The Ollama SDK spans (`ollama.chat`, `ollama.generate`, ...)."""
    return [r for r in rows if r.get("span_attributes", {}).get("type") == "llm"]


def request_span(rows: list[dict], name: str) -> dict:
    span = only(rows, name)
    assert not span.get("span_parents"), "the request span is the root of its trace"
    return span


def test_async_endpoint_is_one_trace_named_by_route(memory_logger, ollama_server, serve):
    with serve(make_app(ollama_server.url)) as live:
        response = httpx.get(
            f"{live.url}/chat/ann", params={"q": "hello"}, headers={"user-agent": "pytest-agent"}
        )
        live.wait()
    assert response.status_code == 200
    assert response.json() == {"answer": Chat().content}

    rows = memory_logger.pop()
    root = request_span(rows, "GET /chat/{user}")
    assert root["span_attributes"]["type"] == "task"
    assert root["input"] == {
        "method": "GET",
        "path": "/chat/ann",
        "route": "/chat/{user}",
        "query": {"q": "hello"},
    }
    assert root["output"] == {"status_code": 200}
    metadata = root["metadata"]
    assert metadata["status_code"] == 200
    assert metadata["route"] == "/chat/{user}"
    assert metadata["http_version"] == "1.1"
    assert metadata["client"].startswith("127.0.0.1:")
    assert metadata["user_agent"] == "pytest-agent"
    assert "error" not in root or root["error"] is None
    # the dependency and the Ollama call are children of the request span
    assert sorted(r["span_attributes"]["name"] for r in children_of(rows, root)) == [
        "load user",
        "ollama.chat",
    ]
    assert {r["root_span_id"] for r in rows} == {root["root_span_id"]}
    # the response names the request span
    assert response.headers["traceparent"] == f"00-{root['root_span_id']}-{root['span_id']}-01"


def test_sync_endpoint_and_dependency_in_thread_pool_nest_under_request(
    memory_logger, ollama_server, serve
):
    with serve(make_app(ollama_server.url)) as live:
        response = httpx.get(f"{live.url}/sync/chat/bob")
        live.wait()
    assert response.status_code == 200

    rows = memory_logger.pop()
    root = request_span(rows, "GET /sync/chat/{user}")
    llm = only(rows, "ollama.chat")
    assert parent_of(rows, llm) is root
    assert "sync from bob" in json.dumps(llm["input"])
    assert parent_of(rows, only(rows, "load user")) is root


async def test_200_concurrent_requests_each_get_their_own_trace(
    memory_logger, ollama_server, serve
):
    count = 200
    with serve(make_app(ollama_server.url)) as live:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(client.get(f"/chat/user{i}", params={"q": f"question{i}"}) for i in range(count))
            )
        live.wait(count)
    assert [r.status_code for r in responses] == [200] * count

    rows = memory_logger.pop()
    requests = by_name(rows, "GET /chat/{user}")
    assert len(requests) == count
    assert len(roots(rows)) == count
    assert len({r["root_span_id"] for r in requests}) == count
    for root in requests:
        user = root["input"]["path"].removeprefix("/chat/")
        children = children_of(rows, root)
        llm = [c for c in children if c["span_attributes"].get("type") == "llm"]
        assert len(llm) == 1, f"{user}: {len(llm)} Ollama spans"
        assert f"question{user.removeprefix('user')} from {user}" in json.dumps(llm[0]["input"])
        assert llm[0]["root_span_id"] == root["root_span_id"]
        # every response links to its own request span
    linked = {r.headers["traceparent"].split("-")[2] for r in responses}
    assert linked == {r["span_id"] for r in requests}


def test_streaming_endpoint_span_ends_after_the_last_byte(memory_logger, ollama_server, serve):
    ollama_server.reply("/api/chat", Chat("one two three"))
    with serve(make_app(ollama_server.url)) as live:
        with httpx.stream("GET", f"{live.url}/stream/cy") as response:
            body = b"".join(response.iter_bytes())
        live.wait()
    assert body == b"one two three"

    rows = memory_logger.pop()
    root = request_span(rows, "GET /stream/{user}")
    (llm,) = llm_spans(rows)
    assert parent_of(rows, llm) is root
    assert "one two three" in json.dumps(llm["output"])
    # the endpoint returned before the stream was relayed; the span covers the whole body
    assert root["metrics"]["end"] >= llm["metrics"]["end"]
    assert root["metadata"]["status_code"] == 200
    assert "client_disconnected" not in root["metadata"]


def test_client_disconnecting_mid_stream_ends_span_marked(memory_logger, ollama_server, serve):
    gate = threading.Semaphore(0)  # holds the Ollama stream after its first chunk
    ollama_server.reply("/api/chat", Chat("one two three four", gate=gate))
    with serve(make_app(ollama_server.url)) as live:
        with (
            httpx.Client(base_url=live.url) as client,
            client.stream("GET", "/stream/dee") as response,
        ):
            first = next(response.iter_raw())
        # the connection is closed with the body unread: the server sees the client leave
        live.wait()
        gate.release(10)
    assert first == b"one "

    rows = memory_logger.pop()
    root = request_span(rows, "GET /stream/{user}")
    assert root["metadata"]["client_disconnected"] is True
    assert root["metadata"]["status_code"] == 200
    assert root.get("error") is None
    (llm,) = llm_spans(rows)
    assert parent_of(rows, llm) is root
    assert root["metrics"]["start"] <= root["metrics"]["end"]


def test_endpoint_raising_records_error_and_500(memory_logger, ollama_server, serve):
    with serve(make_app(ollama_server.url)) as live:
        crashed = httpx.get(f"{live.url}/boom")  # the server closes this connection
        missing = httpx.get(f"{live.url}/missing/cat")
        live.wait(2)
    assert crashed.status_code == 500
    assert missing.status_code == 404

    rows = memory_logger.pop()
    boom = request_span(rows, "GET /boom")
    assert "RuntimeError: kaboom" in boom["error"]
    assert boom["metadata"]["status_code"] == 500
    assert boom["output"] == {"status_code": 500}
    not_found = request_span(rows, "GET /missing/{thing}")
    assert not_found["metadata"]["status_code"] == 404
    assert not_found.get("error") is None


def test_background_task_spans_nest_under_request(memory_logger, ollama_server, serve):
    with serve(make_app(ollama_server.url)) as live:
        response = httpx.post(f"{live.url}/notes", json={"note": "groceries"})
        live.wait()
    assert response.json() == {"queued": True}

    rows = memory_logger.pop()
    root = request_span(rows, "POST /notes")
    llm = only(rows, "ollama.generate")
    assert parent_of(rows, llm) is root
    assert "summarise groceries" in json.dumps(llm["input"])
    # the span ended when the response was sent, before the task's Ollama call finished
    assert root["metrics"]["end"] <= llm["metrics"]["end"]


def test_incoming_traceparent_continues_the_callers_trace(memory_logger, ollama_server, serve):
    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {
        "traceparent": f"00-{trace_id}-{caller_span}-01",
        "baggage": "braintrust.parent=project_name:braintrust-ollama-tests,other=1",
    }
    with serve(make_app(ollama_server.url)) as live:
        response = httpx.get(f"{live.url}/chat/eve", headers=headers)
        live.wait()

    rows = memory_logger.pop()
    root = only(rows, "GET /chat/{user}")
    assert root["root_span_id"] == trace_id
    assert root["span_parents"] == [caller_span]
    (llm,) = llm_spans(rows)
    assert llm["root_span_id"] == trace_id
    assert parent_of(rows, llm) is root
    assert response.headers["traceparent"] == f"00-{trace_id}-{root['span_id']}-01"


def test_secrets_in_headers_query_and_bodies_appear_in_no_span(memory_logger, ollama_server, serve):
    secrets = [f"s3cr3t-{i}-value" for i in range(12)]
    app = make_app(
        ollama_server.url,
        record_bodies=True,
        record_headers=[
            "authorization",
            "cookie",
            "proxy-authorization",
            "x-api-key",
            "api-key",
            "x-auth-token",
            "x-request-id",
            "x-upstream",
        ],
    )
    headers = {
        "authorization": f"Bearer {secrets[0]}",
        "cookie": f"session={secrets[1]}",
        "proxy-authorization": f"Basic {secrets[2]}",
        "x-api-key": secrets[3],
        "api-key": secrets[4],
        "x-auth-token": secrets[5],
        "x-request-id": "req-42",
        "x-upstream": f"Bearer {secrets[9]}",  # a credential by its shape, under any name
        "user-agent": f"ci-bot/2.1 token={secrets[11]}",  # recorded as metadata, never raw
    }
    query = {
        "api_key": secrets[6],
        "token": secrets[7],
        "page": "2",
        "next": f"/callback?access_token={secrets[10]}",
    }
    with serve(app) as live:
        response = httpx.post(
            f"{live.url}/login",
            params=query,
            headers=headers,
            json={"user": "fay", "password": secrets[8]},
        )
        live.wait()
    assert response.status_code == 200
    assert secrets[8] in response.headers["set-cookie"]

    # every row as logged (the start row included), and the rows merged as the server keeps them
    as_logged = [item.get() for item in memory_logger._background.logs]
    rows = memory_logger.pop()
    dumped = json.dumps([as_logged, rows], default=str)
    for secret in secrets:
        assert secret not in dumped
    root = request_span(rows, "POST /login")
    assert root["input"]["headers"] == {"x-request-id": "req-42", "x-upstream": "[REDACTED]"}
    assert root["metadata"]["user_agent"] == "ci-bot/2.1 token=[REDACTED]"
    assert root["input"]["query"] == {
        "api_key": "[REDACTED]",
        "token": "[REDACTED]",
        "page": "2",
        "next": "/callback?access_token=[REDACTED]",
    }
    assert root["input"]["body"] == {"user": "fay", "password": "[REDACTED]"}
    assert root["output"]["body"] == {"user": "fay"}


def test_skip_paths_and_span_name_option(memory_logger, ollama_server, serve):
    app = make_app(
        ollama_server.url,
        skip_paths=["/health"],
        span_name=lambda request: f"chat for {request.path_params['user']}",
    )
    with serve(app) as live:
        with httpx.Client(base_url=live.url) as client:
            assert client.get("/health").status_code == 200
            assert "traceparent" not in client.get("/health").headers
            client.get("/chat/gus")
        live.wait(3)

    rows = memory_logger.pop()
    assert [r["span_attributes"]["name"] for r in roots(rows)] == ["chat for gus"]


def test_logger_is_flushed_at_lifespan_shutdown(memory_logger, ollama_server, serve, monkeypatch):
    events: list[str] = []
    real_flush = braintrust.flush

    def recording_flush() -> None:
        events.append("flush")
        real_flush()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        events.append("app shutdown")

    monkeypatch.setattr(braintrust, "flush", recording_flush)
    app = make_app(ollama_server.url, lifespan=lifespan)
    with serve(app) as live:
        httpx.get(f"{live.url}/health")
        live.wait()
        assert events == []
    assert events == ["app shutdown", "flush"]
