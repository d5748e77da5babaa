"""Per-request overhead of BraintrustMiddleware.

The same FastAPI app is driven in-process through ASGI (no sockets), plain and wrapped in the
middleware, in alternating batches in the same run; one bare Braintrust span
(`with start_span(): pass`) is timed alongside as the floor. Spans go to Braintrust's in-memory
background logger, so nothing is sent anywhere and both sides pay the same logging cost.

    uv run python benchmarks/bench_fastapi.py [--rounds 30] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import braintrust
from braintrust import logger as bt_logger
from braintrust.test_helpers import init_test_logger
from braintrust.util import LazyValue
from braintrust_ollama_fastapi import BraintrustMiddleware
from fastapi import FastAPI
from starlette.types import ASGIApp, Message


def make_app(traced: bool) -> FastAPI:
    app = FastAPI()
    if traced:
        app.add_middleware(BraintrustMiddleware)

    @app.get("/chat/{user}")
    async def chat(user: str, q: str = "hi") -> dict[str, str]:
        return {"user": user, "q": q}

    return app


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/chat/ann",
        "raw_path": b"/chat/ann",
        "root_path": "",
        "query_string": b"q=hello",
        "headers": [
            (b"host", b"localhost"),
            (b"user-agent", b"bench"),
            (b"accept", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Message) -> None:
    pass


async def requests(app: ASGIApp, count: int) -> float:
    """Seconds per request, averaged over `count` sequential requests."""
    start = time.perf_counter()
    for _ in range(count):
        await app(scope(), receive, send)
    return (time.perf_counter() - start) / count


async def bare_spans(count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        with braintrust.start_span(name="GET /chat/{user}"):
            pass
    return (time.perf_counter() - start) / count


async def run(rounds: int, batch: int) -> dict[str, list[float]]:
    plain, traced = make_app(traced=False), make_app(traced=True)
    contenders: dict[str, Callable[[], Coroutine[Any, Any, float]]] = {
        "plain app": lambda: requests(plain, batch),
        "with middleware": lambda: requests(traced, batch),
        "bare span": lambda: bare_spans(batch),
    }
    for measure in contenders.values():  # warm up
        await measure()
    timings: dict[str, list[float]] = {name: [] for name in contenders}
    background = bt_logger._state.global_bg_logger()
    for _ in range(rounds):
        for name, measure in contenders.items():
            background.logs.clear()  # type: ignore[attr-defined]
            gc.collect()
            timings[name].append(await measure())
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    with bt_logger._internal_with_memory_background_logger() as background:
        bt_logger._state._global_bg_logger = LazyValue(lambda: background, use_mutex=False)
        init_test_logger("bench-fastapi")
        timings = asyncio.run(run(args.rounds, args.batch))

    median = {name: statistics.median(values) * 1e6 for name, values in timings.items()}
    spread = {name: statistics.quantiles(v, n=4) for name, v in timings.items()}
    print(f"{args.rounds} rounds x {args.batch} requests, alternating; µs per request (median)")
    print(f"{'':18}{'median':>10}{'p25':>10}{'p75':>10}")
    for name, value in median.items():
        p25, _, p75 = (q * 1e6 for q in spread[name])
        print(f"{name:18}{value:10.1f}{p25:10.1f}{p75:10.1f}")
    added = median["with middleware"] - median["plain app"]
    print(f"\nadded by the middleware: {added:.1f} µs per request")
    print(f"ratio to one bare Braintrust span: {added / median['bare span']:.2f}x")


if __name__ == "__main__":
    main()
