"""What tracing adds to an `ollama` SDK call: pyperf benchmarks, read by report.py.

    uv run nox -s bench                       # both scripts, then the report (a few minutes)
    uv run python benchmarks/bench_core.py -o core.json && uv run python benchmarks/report.py core.json

No network: the SDKs talk to `httpx.MockTransport`s answering like Ollama (one JSON chat reply,
a 200-chunk NDJSON stream), so only client-side work is timed. Spans go to Braintrust's in-memory
background logger, emptied after each call (untimed: in production a background thread
does that work). Each benchmark runs in its own pyperf worker processes, so setup (patching,
logger) is per benchmark. Times are the benchmark thread's CPU time (`time.thread_time`): on a
shared machine, waiting for a core is not the code's cost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import braintrust
import httpx
import ollama
import openai
import pyperf
from braintrust import logger as bt_logger
from braintrust.span_types import SpanTypeAttribute
from braintrust.test_helpers import init_test_logger
from braintrust.util import LazyValue
from braintrust_ollama import setup_ollama, unpatch_ollama

HOST, MODEL, CHUNKS = "http://127.0.0.1:11434", "llama3.2:3b", 200
MESSAGES = [
    {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
    {"role": "user", "content": "Why is the sky blue?"},
]
OPTIONS = {"temperature": 0, "seed": 42}
REPLY = "The sky is blue because air scatters short blue wavelengths of sunlight the most."
DONE = {"done": True, "done_reason": "stop", "total_duration": 8_313_421_042,
        "load_duration": 4_768_032_458, "prompt_eval_count": 31,
        "prompt_eval_duration": 65_296_000, "eval_count": 199, "eval_duration": 3_478_845_000}  # fmt: skip


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _message(content: str) -> dict[str, Any]:
    return {"model": MODEL, "created_at": "2026-08-07T06:08:14.1Z",
            "message": {"role": "assistant", "content": content}}  # fmt: skip


def _transport(*chunks: bytes, http: Any = httpx) -> Any:
    """Answer every request with `chunks` (one: a JSON body; more: a stream arriving chunk by
    chunk). `http` is the httpx-like module the SDK speaks (openai >= 3 speaks httpx2)."""
    kind = "application/json" if len(chunks) == 1 else "application/x-ndjson"
    return http.MockTransport(
        lambda _: http.Response(200, headers={"content-type": kind}, content=iter(chunks))
    )


CHAT = ollama.Client(HOST, transport=_transport(_json({**_message(REPLY), **DONE})))
STREAM = ollama.Client(HOST, transport=_transport(
    *(_json({**_message(f" word{i}"), "done": False}) + b"\n" for i in range(CHUNKS - 1)),
    _json({**_message(""), **DONE}) + b"\n",
))  # fmt: skip


def chat() -> None:
    CHAT.chat(model=MODEL, messages=MESSAGES, options=OPTIONS)


def stream() -> None:
    for _ in STREAM.chat(model=MODEL, messages=MESSAGES, options=OPTIONS, stream=True):
        pass


def openai_chat(wrapped: bool) -> Callable[[], object]:
    """The openai SDK's chat against Ollama's `/v1`, plain or through `braintrust.wrap_openai`."""
    try:
        import httpx2 as http  # type: ignore[import-not-found]
    except ImportError:
        http = httpx
    usage = {"prompt_tokens": 31, "completion_tokens": 199, "total_tokens": 230}
    body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY},
                         "finish_reason": "stop"}], "usage": usage}  # fmt: skip
    client = openai.OpenAI(base_url=f"{HOST}/v1", api_key="ollama", max_retries=0,
                           http_client=http.Client(transport=_transport(_json(body), http=http)))  # fmt: skip
    client = braintrust.wrap_openai(client) if wrapped else client
    return lambda: client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0)  # type: ignore[arg-type]


# --- the logger and the floor -------------------------------------------------------------------


def memory_logger() -> Any:
    """Braintrust's in-memory background logger, for this process and every thread in it."""
    background = bt_logger._internal_with_memory_background_logger().__enter__()
    bt_logger._state._global_bg_logger = LazyValue(lambda: background, use_mutex=False)
    init_test_logger("bench")  # a logger that needs no login
    return background


def traced_span_row(background: Any) -> dict[str, Any]:
    """The row one traced chat logs: the payload the floor writes."""
    setup_ollama()
    chat()
    unpatch_ollama()
    braintrust.flush()
    (row,) = background.pop()
    return row


def one_bare_span(row: dict[str, Any]) -> Callable[[], object]:
    """The floor: one bare Braintrust span with the traced span's input, output, metadata and
    metrics, written once (started with everything, `metrics.end` set, no `end()` call)."""
    metrics = {k: v for k, v in row["metrics"].items() if k not in ("start", "end")}

    def span() -> object:
        start = time.time()
        return braintrust.start_span(
            name="ollama.chat", type=SpanTypeAttribute.LLM, start_time=start, input=row["input"],
            output=row["output"], metadata=row["metadata"], metrics={**metrics, "end": start},
        )  # fmt: skip

    return span


def start_log_end(row: dict[str, Any]) -> Callable[[], object]:
    """The floor as a user writes a span: start with the input, log the rest, end."""
    metrics = {k: v for k, v in row["metrics"].items() if k not in ("start", "end")}

    def span() -> object:
        span = braintrust.start_span(name="ollama.chat", type=SpanTypeAttribute.LLM,
                                     input=row["input"], metadata=row["metadata"])  # fmt: skip
        span.log(output=row["output"], metrics=metrics)
        return span.end()

    return span


# --- the benchmarks -----------------------------------------------------------------------------


Setup = Callable[[], Callable[[], object]]  # run once per worker process; returns the call


def timed(setup: Setup, logger: bool = True) -> Callable[[int], float]:
    """A pyperf time function: each of `loops` calls is timed on the thread clock; the in-memory
    logger (`logger`: one is initialised first) is emptied after each call, untimed."""
    state: dict[str, Any] = {}

    def run(loops: int) -> float:
        if "call" not in state:
            state["logger"] = memory_logger() if logger else None
            state["call"] = setup()
        call, background, spent = state["call"], state["logger"], 0.0
        for _ in range(loops):
            t0 = time.thread_time()
            call()
            spent += time.thread_time() - t0
            if background is not None:  # untimed; rows left to pile up make the GC slow
                background.pop()
        if background is not None:
            braintrust.flush()
            background.pop()
        return spent

    return run


def traced(call: Callable[[], None]) -> Setup:
    return lambda: (setup_ollama(), call)[1]


def unwritten(call: Callable[[], None]) -> Setup:
    """Traced, with Braintrust's span write made a no-op: what our own code adds in situ."""

    def setup() -> Callable[[], object]:
        braintrust.Logger.start_span = lambda *_, **__: None  # type: ignore[method-assign,assignment]
        return traced(call)()

    return setup


def floor(span: Callable[[dict[str, Any]], Callable[[], object]], in_situ: bool) -> Setup:
    """The bare span alone (tight loop), or right after a plain chat (in situ, as a wrapper's)."""

    def setup() -> Callable[[], object]:
        write = span(traced_span_row(bt_logger._state.global_bg_logger()))
        return (lambda: (chat(), write())) if in_situ else write

    return setup


BENCHMARKS: dict[str, Setup] = {  # compared pairs side by side: run close together in time
    "chat.plain": lambda: chat,
    "chat.traced": traced(chat),
    "chat.traced.unwritten": unwritten(chat),
    "chat.plain+one_write": floor(one_bare_span, in_situ=True),
    "chat.plain+start_log_end": floor(start_log_end, in_situ=True),
    "floor.one_write": floor(one_bare_span, in_situ=False),
    "floor.start_log_end": floor(start_log_end, in_situ=False),
    "stream.plain": lambda: stream,
    "stream.traced": traced(stream),
    "openai.plain": lambda: openai_chat(wrapped=False),
    "openai.wrapped": lambda: openai_chat(wrapped=True),
}
NO_LOGGER: dict[str, Setup] = {  # no Braintrust logger initialised; traced: setup_ollama() active
    "no_logger.chat.plain": lambda: chat,
    "no_logger.chat.traced": traced(chat),
    "no_logger.stream.plain": lambda: stream,
    "no_logger.stream.traced": traced(stream),
}


def make_runner(description: str) -> pyperf.Runner:
    """pyperf's runner, sized for a shared 2-core machine: 4 worker processes x 3 values of at
    least 50 ms each per benchmark (pyperf's own flags override: `--rigorous`, `-p 20`)."""
    runner = pyperf.Runner(processes=4, values=3, min_time=0.05)
    runner.metadata["description"] = description
    return runner


if __name__ == "__main__":
    runner = make_runner("braintrust-ollama core: chat, stream, floors, wrap_openai")
    for name, setup in BENCHMARKS.items():
        runner.bench_time_func(name, timed(setup))
    for name, setup in NO_LOGGER.items():
        runner.bench_time_func(name, timed(setup, logger=False))
