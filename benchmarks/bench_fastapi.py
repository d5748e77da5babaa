"""What ``BraintrustMiddleware`` adds to an HTTP request, against one bare Braintrust span.

Run it with ``uv run nox -s bench-fastapi`` (or ``uv run python benchmarks/bench_fastapi.py``):

- ``--quick``: a smoke run of a second or two instead of about ten;
- ``--write``: put the numbers into the FastAPI section of BENCHMARKS.md;
- ``--profile`` / ``--profile-only``: profile a traced request against a plain one (cProfile)
  and list where the added time goes;
- ``--clock wall``: time elapsed rather than the benchmark thread's CPU time.

One FastAPI app (``GET /chat/{user}?q=...``, an ``async def`` endpoint returning JSON) is
driven in-process through ASGI, no server and no sockets: every request is one coroutine run
to completion on the benchmark's thread. The variants, timed per request in the same run:
``plain`` (the app alone), ``middleware`` (the app with ``BraintrustMiddleware``), and the
floors: the plain app whose request handling also logs one bare span carrying the
middleware's own payload, started before the app runs and ended after it (``in situ``), and
the same bare spans in a tight loop with no request around them. Each round runs one block of
every variant (the order rotating between rounds); "added" is taken round by round against
the plain block of the same round. Before timing, one request of each variant is checked:
plain logs nothing, the others exactly one span, and the middleware's span has the name,
input and metadata issue 5 asks for. Spans go to Braintrust's in-memory background logger,
emptied after every block outside the timed region.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import braintrust
from braintrust.span_types import SpanTypeAttribute
from braintrust.test_helpers import init_test_logger
from braintrust_ollama_fastapi import BraintrustMiddleware
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Measure,
    MemorySink,
    Row,
    Samples,
    Variant,
    added_self_time_table,
    bench_parser,
    calibrate,
    console,
    cumulative_table,
    measure,
    measures_markdown,
    measures_table,
    print_problems,
    problems_markdown,
    profile_calls,
    publish,
    run_rounds,
    section_head,
    variant_rows,
    variants_markdown,
    variants_table,
)

TARGET = 1.1
"""Issue 5: the middleware adds at most 1.1 x one bare Braintrust span per request."""


# --- the app and its requests -------------------------------------------------------------------


def make_app(traced: bool) -> FastAPI:
    app = FastAPI()
    if traced:
        app.add_middleware(BraintrustMiddleware)

    @app.get("/chat/{user}")
    async def chat(user: str, q: str = "hi") -> dict[str, str]:
        return {"user": user, "q": q}

    return app


SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/chat/ann",
    "raw_path": b"/chat/ann",
    "root_path": "",
    "query_string": b"q=hello&api_key=s3cret",
    "headers": [
        (b"host", b"localhost:8000"),
        (b"user-agent", b"python-httpx/0.28.1"),
        (b"accept", b"application/json"),
        (b"authorization", b"Bearer s3cret"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
ROUTE = "/chat/{user}"


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: Message) -> None:
    pass


def request(app: ASGIApp, send: Send = discard) -> Callable[[], object]:
    """One request through ``app``, run to completion on this thread (nothing in it waits, so
    no event loop is needed; if the app ever suspends, that is an error, not a silent stall)."""

    def call() -> object:
        # The router writes into the scope: a fresh one per request.
        coro = cast(Coroutine[Any, Any, None], app(dict(SCOPE), receive, send))
        try:
            coro.send(None)
        except StopIteration:
            return None
        coro.close()
        raise RuntimeError("the ASGI app suspended; the benchmark drives it without a loop")

    return call


# --- the floors ---------------------------------------------------------------------------------


@dataclass
class Payload:
    """What the middleware's span holds; the floors log exactly this."""

    name: str
    input: Any
    output: Any
    metadata: dict[str, Any]


def payload_of(row: dict[str, Any]) -> Payload:
    return Payload(
        name=(row.get("span_attributes") or {}).get("name", ""),
        input=row.get("input"),
        output=row.get("output"),
        metadata=row.get("metadata") or {},
    )


def span_start_end(p: Payload) -> None:
    braintrust.start_span(name=p.name, type=SpanTypeAttribute.TASK, input=p.input).end()


def span_start_log_end(p: Payload) -> None:
    span = braintrust.start_span(name=p.name, type=SpanTypeAttribute.TASK, input=p.input)
    span.log(output=p.output, metadata=p.metadata)
    span.end()


def with_span(app: ASGIApp, p: Payload, log: bool) -> ASGIApp:
    """``app``, its request handling also logging one bare span with the payload: started
    before the app runs, (``log``: output and metadata logged and) ended after it."""

    async def app_with_span(scope: Scope, receive: Receive, send: Send) -> None:
        span = braintrust.start_span(name=p.name, type=SpanTypeAttribute.TASK, input=p.input)
        await app(scope, receive, send)
        if log:
            span.log(output=p.output, metadata=p.metadata)
        span.end()

    return app_with_span


# --- checks before timing -----------------------------------------------------------------------


def validate(sink: MemorySink, plain: ASGIApp, traced: ASGIApp, problems: list[str]) -> Payload:
    """One request each: the plain app logs nothing and answers 200; the traced app logs one
    span shaped as issue 5 says and answers the same with a ``traceparent``. Returns the
    traced span's payload, for the floors."""
    sent: list[Message] = []

    async def keep(message: Message) -> None:
        sent.append(message)

    sink.pop()
    request(plain, keep)()
    if rows := sink.pop():
        problems.append(f"plain: {len(rows)} rows logged, expected none")
    plain_sent, sent[:] = list(sent), []
    request(traced, keep)()
    rows = sink.pop()
    if plain_sent[-1] != sent[-1] or plain_sent[0]["status"] != 200:
        problems.append("middleware: the response differs from the plain app's")
    if b"traceparent" not in dict(sent[0]["headers"]):
        problems.append("middleware: no traceparent on the response")
    if len(rows) != 1:
        problems.append(f"middleware: {len(rows)} spans, expected 1")
        return Payload(f"GET {ROUTE}", {}, {}, {})
    p = payload_of(rows[0])
    expected_input = {
        "method": "GET",
        "path": "/chat/ann",
        "route": ROUTE,
        "query": {"q": "hello", "api_key": "[REDACTED]"},
    }
    checks = {
        "name": (p.name, f"GET {ROUTE}"),
        "input": (p.input, expected_input),
        "output.status_code": ((p.output or {}).get("status_code"), 200),
        "metadata.status_code": (p.metadata.get("status_code"), 200),
        "metadata.route": (p.metadata.get("route"), ROUTE),
        "metadata.http_version": (p.metadata.get("http_version"), "1.1"),
        "metadata.client": (p.metadata.get("client"), "127.0.0.1:50000"),
        "metadata.user_agent": (p.metadata.get("user_agent"), "python-httpx/0.28.1"),
    }
    for field, (got, want) in checks.items():
        if got != want:
            problems.append(f"middleware span: {field} is {got!r}, expected {want!r}")
    if "s3cret" in repr(rows[0]):
        problems.append("middleware span: a secret was logged")
    if (rows[0].get("metrics") or {}).get("end") is None:
        problems.append("middleware span: not ended")
    return p


def check_floors(sink: MemorySink, floors: dict[str, Callable[[], object]], p: Payload) -> list:
    problems = []
    for name, call in floors.items():
        sink.pop()
        call()
        rows = sink.pop()
        if len(rows) != 1 or payload_of(rows[0]).input != p.input:
            problems.append(f"{name}: {len(rows)} spans or another input, expected 1 like it")
    return problems


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Run:
    samples: Samples
    pop_us: dict[str, list[float]]
    payload: Payload
    problems: list[str]
    rounds: int
    seconds: float
    calls: dict[str, int]
    clock: str


ROWS = (  # (variant, the plain variant it adds to)
    ("plain", None),
    ("middleware", "plain"),
    ("plain+start_end", "plain"),
    ("plain+start_log_end", "plain"),
    ("span.start_end", None),
    ("span.start_log_end", None),
)


def run_benchmark(sink: MemorySink, rounds: int, block_ms: float, clock: str) -> Run:
    problems: list[str] = []
    plain_app, traced_app = make_app(traced=False), make_app(traced=True)
    p = validate(sink, plain_app, traced_app, problems)
    variants = {
        "plain": request(plain_app),
        "middleware": request(traced_app),
        "plain+start_end": request(with_span(plain_app, p, log=False)),
        "plain+start_log_end": request(with_span(plain_app, p, log=True)),
        "span.start_end": lambda: span_start_end(p),
        "span.start_log_end": lambda: span_start_log_end(p),
    }
    problems += check_floors(sink, {k: v for k, v in variants.items() if "start" in k}, p)
    for call in variants.values():  # warm, so that calibration sees steady-state costs
        for _ in range(20):
            call()
    sink.pop()
    group = [Variant(name, call) for name, call in variants.items()]
    timed = [sink.draining(v) for v in calibrate([group], block_ms, clock)]
    samples = run_rounds(timed, rounds, clock=clock)
    calls = {v.name: v.calls for v in timed}
    return Run(samples, sink.pop_us, p, problems, rounds, 0.0, calls, clock)


# --- the report ---------------------------------------------------------------------------------


class Report:
    """The numbers issue 5 asks for, from one run: a row per variant, then the target."""

    def __init__(self, run: Run) -> None:
        self.run = run
        s = run.samples
        self.rows: list[Row] = variant_rows(s, ROWS, run.calls, run.pop_us)
        added = s.paired("middleware", "plain")
        floors = {
            "in situ start+end": s.paired("plain+start_end", "plain"),
            "in situ start+log+end": s.paired("plain+start_log_end", "plain"),
            "tight loop start+end": s.per_round["span.start_end"],
            "tight loop start+log+end": s.per_round["span.start_log_end"],
        }
        self.measures: list[Measure] = [measure("middleware: added per request", added)]
        self.measures += [measure(f"floor, {name}", values) for name, values in floors.items()]
        self.measures += [
            measure(
                f"middleware: added / floor ({name})",
                [a / f for a, f in zip(added, values, strict=True)],
                "",
                2,
                TARGET,
                f"<= {TARGET:.2f}",
            )
            for name, values in floors.items()
        ]

    def print(self) -> None:
        run = self.run
        console.print(
            variants_table(
                f"FastAPI: µs per request ({run.clock} clock), median (p25..p75) over "
                f"{run.rounds} rounds",
                self.rows,
            )
        )
        console.print(
            measures_table("FastAPI: measures per round and the target (issue 5)", self.measures)
        )
        console.print(f"run took {run.seconds:.0f} s")
        print_problems(run.problems)

    def markdown(self, quick: bool) -> str:
        run = self.run
        lines = [
            *section_head(
                "FastAPI",
                "bench_fastapi.py",
                quick,
                f"One process, {run.seconds:.0f} s: {run.rounds} rounds; {run.clock} clock.",
                ("braintrust-ollama-fastapi", "braintrust", "fastapi", "starlette"),
            ),
            "What runs: one FastAPI app, `GET /chat/{user}?q=hello&api_key=...` to an `async def` "
            "endpoint answering JSON, driven in-process through ASGI (no server, no sockets; "
            "each request runs to completion on the benchmark's thread). `plain`: the app "
            "alone. `middleware`: the app with `BraintrustMiddleware` (defaults) and a logger "
            "writing to Braintrust's in-memory background logger. `plain+start_end`: the plain "
            "app whose request handling also logs one bare span carrying the middleware's own "
            "payload: `start_span(name, type=task, input=...)` before the app runs, `end()` "
            "after it; `plain+start_log_end` the same with `log(output, metadata)` before "
            "`end()`. These are the floors in situ: the span is logged among the request's "
            "own work, as the middleware must. `span.*`: the same two bare spans in a tight "
            "loop, with Braintrust's code and data hot in the CPU caches.",
            "",
            "µs per request (the `thread` clock is the CPU time of the benchmark's thread, "
            "blind to time spent waiting for a core while other processes run), median "
            "(p25..p75) over the rounds. *added*: the median of the round-by-round differences "
            "from the plain app in the same round. *pop*: what emptying the in-memory logger "
            "cost per request afterwards, untimed (in production that work runs on Braintrust's "
            "background thread).",
            "",
            *variants_markdown(self.rows),
            "",
            "Reading it: the middleware writes its span twice (the start row with the input "
            "and what the request says about the client; one closing row with status, route, "
            "the route-based name and the end time), where the `start_log_end` floor writes "
            "three times and `start_end` twice with less in it. What it adds beyond the floor "
            "is its own per-request work: making the span current, reading the headers and "
            "the query string (with redaction), the `traceparent` response header, watching "
            "the ASGI messages for the last body byte or a disconnect. The tight-loop floors "
            "run with Braintrust's code and data hot in the CPU caches; the same spans cost "
            "more among a request's own work, as every middleware's must.",
            "",
            "Measures are per round (added and ratios in the same round), then summarised; the "
            f"target (issue 5: at most {TARGET} x one bare Braintrust span) is *met* when the "
            "95 % confidence interval of the median is within it, *no* when it is wholly "
            "outside, *unclear* when it straddles it.",
            "",
            *measures_markdown(self.measures),
            *problems_markdown(run.problems),
        ]
        return "\n".join(lines)


# --- where the added time goes ------------------------------------------------------------------


def profile(sink: MemorySink, calls: int = 2000, top: int = 30) -> int:
    """cProfile a request through the middleware against a plain one and list the self time
    the middleware adds per function, then its own code by cumulative time. cProfile inflates
    everything: read shares, not absolute numbers."""
    plain = profile_calls(sink, request(make_app(traced=False)), calls, warmup=50)
    traced = profile_calls(sink, request(make_app(traced=True)), calls, warmup=50)
    title = "profile: self time added by the middleware, µs per request under cProfile"
    console.print(added_self_time_table(title, plain, traced, calls, top))
    title = "profile: the middleware's code by cumulative time, µs per request"
    console.print(cumulative_table(title, traced, calls, top, "braintrust_ollama_fastapi"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(__doc__, "rounds (default 80; quick 5)", section="FastAPI")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 80)
    block_ms = args.block_ms or (10.0 if args.quick else 40.0)

    sink = MemorySink()
    init_test_logger("braintrust-ollama-bench-fastapi")
    if args.profile_only:
        return profile(sink)
    started = time.perf_counter()
    run = run_benchmark(sink, rounds, block_ms, args.clock)
    run.seconds = time.perf_counter() - started
    publish(Report(run), args, "fastapi", "FastAPI")
    if args.profile:
        profile(sink)
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
