"""What `BraintrustMiddleware` adds to a FastAPI request: pyperf benchmarks, read by report.py.

    uv run nox -s bench                       # both scripts, then the report (a few minutes)

One FastAPI app (`GET /chat/{user}?q=...`, an `async def` endpoint answering JSON) driven
in-process through ASGI: no server, no sockets, each request run to completion on this thread.
The floor is the plain app whose request also logs one bare Braintrust span with the
middleware's own payload (in situ), and that span alone (tight loop). Spans go to Braintrust's
in-memory logger, emptied after each request (untimed); times are thread CPU time.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import braintrust
from braintrust import logger as bt_logger
from braintrust.span_types import SpanTypeAttribute
from braintrust_ollama_fastapi import BraintrustMiddleware
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import Setup, make_runner, timed

SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": "/chat/ann", "raw_path": b"/chat/ann", "root_path": "",
    "query_string": b"q=hello&api_key=s3cret", "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "headers": [(b"host", b"localhost:8000"), (b"user-agent", b"python-httpx/0.28.1"),
                (b"accept", b"application/json"), (b"authorization", b"Bearer s3cret")],
}  # fmt: skip


def make_app(traced: bool) -> FastAPI:
    app = FastAPI()
    if traced:
        app.add_middleware(BraintrustMiddleware)

    @app.get("/chat/{user}")
    async def chat(user: str, q: str = "hi") -> dict[str, str]:
        return {"user": user, "q": q}

    return app


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    pass


def request(app: ASGIApp) -> Callable[[], object]:
    """One request, run to completion without an event loop (nothing in it waits)."""

    def call() -> object:
        coro = cast(Coroutine[Any, Any, None], app(dict(SCOPE), _receive, _discard))
        try:
            coro.send(None)
        except StopIteration:
            return None
        coro.close()
        raise RuntimeError("the ASGI app suspended; the benchmark drives it without a loop")

    return call


def middleware_row() -> dict[str, Any]:
    """The span one traced request logs: the payload the floors write."""
    request(make_app(traced=True))()
    braintrust.flush()
    (row,) = bt_logger._state.global_bg_logger().pop()
    return row


def bare_span(row: dict[str, Any], log: bool) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """(start, finish) of one bare span with the middleware's payload: started with the input;
    `log`: output and metadata logged before the end."""
    name = row["span_attributes"]["name"]

    def start() -> Any:
        return braintrust.start_span(name=name, type=SpanTypeAttribute.TASK, input=row["input"])

    def finish(span: Any) -> None:
        if log:
            span.log(output=row["output"], metadata=row["metadata"])
        span.end()

    return start, finish


def floor(log: bool, in_situ: bool) -> Setup:
    def setup() -> Callable[[], object]:
        start, finish = bare_span(middleware_row(), log)
        if not in_situ:
            return lambda: finish(start())
        plain = make_app(traced=False)

        async def app_with_span(scope: Scope, receive: Receive, send: Send) -> None:
            span = start()
            await plain(scope, receive, send)
            finish(span)

        return request(app_with_span)

    return setup


BENCHMARKS: dict[str, Setup] = {
    "plain": lambda: request(make_app(traced=False)),
    "middleware": lambda: request(make_app(traced=True)),
    "plain+start_end": floor(log=False, in_situ=True),
    "plain+start_log_end": floor(log=True, in_situ=True),
    "span.start_end": floor(log=False, in_situ=False),
    "span.start_log_end": floor(log=True, in_situ=False),
}

if __name__ == "__main__":
    runner = make_runner("braintrust-ollama-fastapi: one request, plain vs traced")
    for name, setup in BENCHMARKS.items():
        runner.bench_time_func(f"fastapi.{name}", timed(setup))
