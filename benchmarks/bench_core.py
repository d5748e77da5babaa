"""What tracing adds to an ``ollama`` SDK call, against a bare Braintrust span and ``wrap_openai``.

Run it with ``uv run nox -s bench`` (or ``uv run python benchmarks/bench_core.py``):

- ``--quick``: a smoke run of seconds instead of about a minute;
- ``--write``: put the numbers into the Core section of BENCHMARKS.md;
- ``--profile`` / ``--profile-only``: profile a traced call against a plain one (cProfile) and
  list where the added time goes, then the floor's span for comparison;
- ``--clock wall``: time elapsed rather than the benchmark thread's CPU time.

Everything runs in one process with no network: the SDKs talk to ``httpx.MockTransport``
handlers that answer with bodies shaped like a real Ollama server's. Each round runs one block
of every variant of a phase (the order rotating between rounds), so drift on a shared machine
hits plain and traced alike; "added" is taken round by round against the plain block of the
same round, then summarised as median, inter-quartile range and a bootstrap confidence interval
of the median. Before timing, one call of each variant is checked: plain calls log nothing,
traced, wrapped and floor calls log exactly one span. Spans go to Braintrust's in-memory
background logger, emptied after every block outside the timed region; what emptying costs per
call is reported beside the timings (in production that work runs on the background logger's
thread).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import braintrust
import httpx
import ollama
import openai
from braintrust.span_types import SpanTypeAttribute
from braintrust.test_helpers import init_test_logger

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DONE_FIELDS,
    HOST,
    MESSAGES,
    MODEL,
    OPTIONS,
    REPLY,
    STREAM_CHUNKS,
    Measure,
    MemorySink,
    Row,
    Samples,
    Stats,
    Variant,
    added_self_time_table,
    bench_parser,
    calibrate,
    chunked_transport,
    console,
    cumulative_table,
    json_transport,
    measure,
    measures_markdown,
    measures_table,
    ollama_chat_body,
    ollama_stream_lines,
    openai_chat_body,
    openai_stream_events,
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

try:
    from braintrust_ollama import setup_ollama, unpatch_ollama
except ImportError:  # the core package is not there yet: time everything else
    setup_ollama = unpatch_ollama = None  # type: ignore[assignment]

OPENAI_HTTP: Any = httpx
try:  # openai >= 3 speaks httpx2 (it adapts a legacy httpx client, at a cost)
    import httpx2

    OPENAI_HTTP = httpx2
except ImportError:
    pass

TRACED = setup_ollama is not None
NS = 1e-9


# --- the calls -----------------------------------------------------------------------------------


def ollama_client(transport: httpx.MockTransport) -> ollama.Client:
    return ollama.Client(host=HOST, transport=transport)


def openai_client(transport: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{HOST}/v1",
        api_key="ollama",
        max_retries=0,
        http_client=OPENAI_HTTP.Client(transport=transport),
    )


CHAT = ollama_client(json_transport(ollama_chat_body()))
STREAM = ollama_client(chunked_transport(ollama_stream_lines(), "application/x-ndjson"))


def ollama_chat() -> object:
    return CHAT.chat(model=MODEL, messages=MESSAGES, options=OPTIONS)


def ollama_stream() -> object:
    for _ in STREAM.chat(model=MODEL, messages=MESSAGES, options=OPTIONS, stream=True):
        pass
    return None


def openai_calls(wrapped: bool) -> tuple[Callable[[], object], Callable[[], object]]:
    """(plain chat, 200-chunk stream) through the openai SDK against Ollama's ``/v1``."""
    chat = openai_client(json_transport(openai_chat_body(), OPENAI_HTTP))
    stream = openai_client(
        chunked_transport(openai_stream_events(), "text/event-stream", OPENAI_HTTP)
    )
    if wrapped:
        chat, stream = braintrust.wrap_openai(chat), braintrust.wrap_openai(stream)
    messages: Any = MESSAGES

    def call() -> object:
        return chat.chat.completions.create(model=MODEL, messages=messages, temperature=0, seed=42)

    def call_stream() -> object:
        for _ in stream.chat.completions.create(
            model=MODEL,
            messages=messages,
            temperature=0,
            seed=42,
            stream=True,
            stream_options={"include_usage": True},
        ):
            pass
        return None

    return call, call_stream


@dataclass
class Payload:
    """What one chat span holds; the floor logs exactly this."""

    input: Any
    output: Any
    metadata: dict[str, Any]
    metrics: dict[str, float]
    source: str


def contract_payload() -> Payload:
    """The chat span as issue 2's span contract describes it (used until core can be asked)."""
    return Payload(
        input=[dict(m) for m in MESSAGES],
        output={"role": "assistant", "content": REPLY},
        metadata={
            "provider": "ollama",
            "model": MODEL,
            "options": dict(OPTIONS),
            "stream": False,
            "done_reason": "stop",
            "host": HOST,
        },
        metrics={
            "prompt_tokens": DONE_FIELDS["prompt_eval_count"],
            "completion_tokens": DONE_FIELDS["eval_count"],
            "tokens": DONE_FIELDS["prompt_eval_count"] + DONE_FIELDS["eval_count"],
            "time_to_first_token": 0.0002,
            **{
                k: DONE_FIELDS[k] * NS
                for k in (
                    "total_duration",
                    "load_duration",
                    "prompt_eval_duration",
                    "eval_duration",
                )
            },
        },
        source="issue 2's span contract (hand-built)",
    )


def payload_of(row: dict[str, Any]) -> Payload:
    """The fields of a traced span as logged, minus what Braintrust itself adds."""
    metrics = {k: v for k, v in (row.get("metrics") or {}).items() if k not in ("start", "end")}
    return Payload(
        input=row.get("input"),
        output=row.get("output"),
        metadata=row.get("metadata") or {},
        metrics=metrics,
        source="the traced ollama.chat span of this run",
    )


def floor_calls(
    p: Payload,
) -> tuple[Callable[[], object], Callable[[], object], Callable[[], object]]:
    """One bare span with the payload, written three times (start, log, end), twice (start
    with everything, end), and once (start with everything and ``metrics.end``, no ``end()``:
    the least the SDK can do for one span)."""

    def start_log_end() -> object:
        span = braintrust.start_span(
            name="ollama.chat", type=SpanTypeAttribute.LLM, input=p.input, metadata=p.metadata
        )
        span.log(output=p.output, metrics=p.metrics)
        return span.end()

    def start_end() -> object:
        return braintrust.start_span(
            name="ollama.chat",
            type=SpanTypeAttribute.LLM,
            start_time=time.time(),
            input=p.input,
            output=p.output,
            metadata=p.metadata,
            metrics=p.metrics,
        ).end()

    def one_write() -> object:
        start = time.time()
        return braintrust.start_span(
            name="ollama.chat",
            type=SpanTypeAttribute.LLM,
            start_time=start,
            input=p.input,
            output=p.output,
            metadata=p.metadata,
            metrics={**p.metrics, "end": start},
        )

    return start_log_end, start_end, one_write


# --- patching ------------------------------------------------------------------------------------


def patched(on: bool) -> Callable[[], object]:
    """Patch (``on``) or unpatch the SDK process-wide; a no-op until core exists."""

    def toggle() -> None:
        if setup_ollama is None or unpatch_ollama is None:
            return
        if on:
            setup_ollama()
        else:
            unpatch_ollama()

    return toggle


# --- checks before timing ------------------------------------------------------------------------


def one_call_rows(sink: MemorySink, call: Callable[[], object], traced: bool = False) -> list[dict]:
    """The rows that one call logs (with the SDK patched when ``traced``)."""
    patched(traced)()
    sink.pop()
    try:
        call()
        return sink.pop()
    finally:
        patched(False)()


def validate_without_logger(sink: MemorySink, problems: list[str]) -> None:
    if not TRACED:
        return
    for name, call in (("chat", ollama_chat), ("stream", ollama_stream)):
        rows = one_call_rows(sink, call, traced=True)
        if rows:
            problems.append(f"no logger: a traced ollama {name} logged {len(rows)} rows")


def validate_with_logger(
    sink: MemorySink, problems: list[str], plain: dict[str, Callable[[], object]], spans: dict
) -> Payload:
    """One call of each variant: plain calls log nothing; traced, wrapped and floor calls log
    exactly one span. Returns the payload of the traced chat span, for the floor to log."""
    for name, call in plain.items():
        if rows := one_call_rows(sink, call):
            problems.append(f"{name} logged {len(rows)} rows, expected none")
    for name, call in spans.items():
        if len(rows := one_call_rows(sink, call)) != 1:
            problems.append(f"{name}: {len(rows)} spans, expected 1")
    if not TRACED:
        return contract_payload()
    chat_rows = one_call_rows(sink, ollama_chat, traced=True)
    stream_rows = one_call_rows(sink, ollama_stream, traced=True)
    for name, rows in (("chat", chat_rows), ("stream", stream_rows)):
        if len(rows) != 1:
            problems.append(f"chat.traced ({name}): {len(rows)} spans, expected 1")
    if len(chat_rows) != 1:
        return contract_payload()
    row = chat_rows[0]
    if (got := (row.get("span_attributes") or {}).get("name")) != "ollama.chat":
        problems.append(f"chat.traced: span named {got!r}, expected 'ollama.chat'")
    if (row.get("output") or {}).get("content") != REPLY:
        problems.append("chat.traced: output content is not the reply")
    if (row.get("metrics") or {}).get("tokens") != DONE_FIELDS["prompt_eval_count"] + DONE_FIELDS[
        "eval_count"
    ]:
        problems.append("chat.traced: metrics.tokens missing or wrong")
    if stream_rows:
        content = (stream_rows[0].get("output") or {}).get("content") or ""
        if len(content.split(" ")) != STREAM_CHUNKS - 1:
            problems.append("stream.traced: output is not the joined stream")
    return payload_of(row)


# --- the run -------------------------------------------------------------------------------------


@dataclass
class Run:
    with_logger: Samples
    no_logger: Samples | None
    pop_us: dict[str, list[float]]
    payload: Payload
    problems: list[str]
    rounds: int
    seconds: float
    calls: dict[str, int]
    clock: str


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(
        __doc__, "rounds with a logger (default 40; quick 5); 3x without", section="Core"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 40)
    block_ms = args.block_ms or (10.0 if args.quick else 40.0)

    sink = MemorySink()
    if args.profile_only:
        init_test_logger("braintrust-ollama-bench")
        return profile(sink)

    started = time.perf_counter()
    run = run_benchmark(sink, rounds, block_ms, args.clock)
    run.seconds = time.perf_counter() - started
    publish(Report(run), args, "core", "Core")
    if args.profile:
        profile(sink, run.payload)
    return 1 if run.problems else 0


def run_benchmark(sink: MemorySink, rounds: int, block_ms: float, clock: str) -> Run:
    problems: list[str] = []
    if not TRACED:
        problems.append("braintrust_ollama.setup_ollama is missing: traced variants skipped")

    # Phase 1, no Braintrust logger initialised. It comes first: a logger cannot be un-set.
    validate_without_logger(sink, problems)
    no_logger = None
    calls: dict[str, int] = {}
    if TRACED:
        variants = calibrate(
            [
                [Variant("chat.plain", ollama_chat), traced("chat.traced", ollama_chat)],
                [Variant("stream.plain", ollama_stream), traced("stream.traced", ollama_stream)],
            ],
            block_ms / 2,
            clock,
        )
        calls.update({f"no_logger.{v.name}": v.calls for v in variants})
        # The effect sought is ~1 %: short blocks, three times the rounds (it is only 4 blocks).
        no_logger = run_rounds(variants, 3 * rounds, clock=clock)

    # Phase 2, a logger writing to memory.
    init_test_logger("braintrust-ollama-bench")
    oa_chat, oa_stream = openai_calls(wrapped=False)
    oa_chat_w, oa_stream_w = openai_calls(wrapped=True)
    payload = validate_with_logger(
        sink,
        problems,
        plain={
            "chat.plain": ollama_chat,
            "stream.plain": ollama_stream,
            "openai.plain": oa_chat,
            "openai_stream.plain": oa_stream,
        },
        spans={"openai.wrapped": oa_chat_w, "openai_stream.wrapped": oa_stream_w},
    )
    floor_3, floor_2, floor_1 = floor_calls(payload)
    floors = (
        ("floor.start_log_end", floor_3),
        ("floor.start_end", floor_2),
        ("floor.one_write", floor_1),
    )
    for name, call in floors:
        if len(rows := one_call_rows(sink, call)) != 1:
            problems.append(f"{name}: {len(rows)} spans, expected 1")

    groups = [
        [
            Variant("chat.plain", ollama_chat),
            *([traced("chat.traced", ollama_chat)] if TRACED else []),
            *(Variant(name, call) for name, call in floors),
            Variant("chat.plain+start_log_end", lambda: (ollama_chat(), floor_3())),
            Variant("chat.plain+start_end", lambda: (ollama_chat(), floor_2())),
            Variant("chat.plain+one_write", lambda: (ollama_chat(), floor_1())),
        ],
        [
            Variant("stream.plain", ollama_stream),
            *([traced("stream.traced", ollama_stream)] if TRACED else []),
        ],
        [Variant("openai.plain", oa_chat), Variant("openai.wrapped", oa_chat_w)],
        [Variant("openai_stream.plain", oa_stream), Variant("openai_stream.wrapped", oa_stream_w)],
    ]
    variants = [sink.draining(v) for v in calibrate(groups, block_ms, clock)]
    calls.update({v.name: v.calls for v in variants})
    with_logger = run_rounds(variants, rounds, clock=clock)
    return Run(with_logger, no_logger, sink.pop_us, payload, problems, rounds, 0.0, calls, clock)


def traced(name: str, call: Callable[[], object]) -> Variant:
    """``call`` with the SDK patched by ``setup_ollama()`` for the block."""
    return Variant(name, call, before=patched(True), after=patched(False))


# --- the report ----------------------------------------------------------------------------------

ROWS = (  # (variant, the plain variant it adds to)
    ("chat.plain", None),
    ("chat.traced", "chat.plain"),
    ("floor.start_log_end", None),
    ("floor.start_end", None),
    ("floor.one_write", None),
    ("chat.plain+start_log_end", "chat.plain"),
    ("chat.plain+start_end", "chat.plain"),
    ("chat.plain+one_write", "chat.plain"),
    ("stream.plain", None),
    ("stream.traced", "stream.plain"),
    ("openai.plain", None),
    ("openai.wrapped", "openai.plain"),
    ("openai_stream.plain", None),
    ("openai_stream.wrapped", "openai_stream.plain"),
)
NO_LOGGER_ROWS = (
    ("chat.plain", None),
    ("chat.traced", "chat.plain"),
    ("stream.plain", None),
    ("stream.traced", "stream.plain"),
)


def without_logger(row: Row) -> Row:
    """A row of the phase without a logger, named so."""
    name, calls, per_call, added, pop = row
    return f"no logger: {name}", calls, per_call, added, pop


def per_chunk(s: Samples, stream: tuple[str, str], call: tuple[str, str]) -> list[float]:
    """Per round: what a stream adds beyond what a plain call adds, per chunk."""
    return [
        (a - b) / STREAM_CHUNKS for a, b in zip(s.paired(*stream), s.paired(*call), strict=True)
    ]


def percent(s: Samples, name: str, base: str) -> list[float]:
    """Per round: what ``name`` adds to ``base``, in % of ``base``."""
    return [100 * d / b for d, b in zip(s.paired(name, base), s.per_round[base], strict=True)]


class Report:
    """The numbers issue 2 asks for, from one run: a row per variant, then the targets."""

    def __init__(self, run: Run) -> None:
        self.run = run
        L = run.with_logger
        self.rows: list[Row] = variant_rows(L, ROWS, run.calls, run.pop_us)
        if run.no_logger is not None:
            calls = {name: run.calls[f"no_logger.{name}"] for name, _ in NO_LOGGER_ROWS}
            self.rows += map(
                without_logger, variant_rows(run.no_logger, NO_LOGGER_ROWS, calls, pop_us={})
            )
        self.measures = self._measures()

    def _measures(self) -> list[Measure]:
        L, N = self.run.with_logger, self.run.no_logger
        floors = {
            "start+log+end": L.per_round["floor.start_log_end"],
            "start+end": L.per_round["floor.start_end"],
            "one write": L.per_round["floor.one_write"],
            "in situ start+log+end": L.paired("chat.plain+start_log_end", "chat.plain"),
            "in situ start+end": L.paired("chat.plain+start_end", "chat.plain"),
            "in situ one write": L.paired("chat.plain+one_write", "chat.plain"),
        }
        wrap = L.paired("openai.wrapped", "openai.plain")
        out = [
            measure(f"floor ({name})", values)
            for name, values in floors.items()
            if not name.startswith("in situ")
        ]
        out += [
            measure(f"floor {name}: added by that span right after a plain call", values)
            for name, values in floors.items()
            if name.startswith("in situ")
        ]
        out += [
            measure("wrap_openai: added per plain call", wrap),
            measure(
                "wrap_openai: added per stream",
                L.paired("openai_stream.wrapped", "openai_stream.plain"),
            ),
            measure(
                "wrap_openai: added per chunk beyond a plain call",
                per_chunk(
                    L,
                    ("openai_stream.wrapped", "openai_stream.plain"),
                    ("openai.wrapped", "openai.plain"),
                ),
                digits=2,
            ),
        ]
        if "chat.traced" not in L.per_round:
            return out
        added = L.paired("chat.traced", "chat.plain")
        out.append(measure("ollama: added per plain call", added))
        for name, values in floors.items():
            ratios = [a / f for a, f in zip(added, values, strict=True)]
            limit = 1.1 if "one write" not in name else None
            out.append(
                measure(
                    f"ollama: added / floor ({name})",
                    ratios,
                    "",
                    2,
                    limit,
                    "<= 1.10" if limit else "",
                )
            )
        out += [
            measure(
                "ollama: added minus wrap_openai's, per plain call",
                [a - w for a, w in zip(added, wrap, strict=True)],
                limit=0.0,
                target="below wrap_openai (< 0)",
            ),
            measure("ollama: added per stream", L.paired("stream.traced", "stream.plain")),
            measure(
                "ollama: added per chunk beyond a plain call",
                per_chunk(L, ("stream.traced", "stream.plain"), ("chat.traced", "chat.plain")),
                digits=2,
                limit=1.0,
            ),
        ]
        if N is not None:
            for kind, label in (("chat", "plain call"), ("stream", "stream")):
                out.append(
                    measure(
                        f"no logger: added to a {label}",
                        percent(N, f"{kind}.traced", f"{kind}.plain"),
                        "%",
                        2,
                        limit=2.0,
                    )
                )
        return out

    def print(self) -> None:
        run = self.run
        console.print(
            variants_table(
                f"Core: µs per call ({run.clock} clock), median (p25..p75) over {run.rounds} "
                f"rounds ({3 * run.rounds} without a logger)",
                self.rows,
            )
        )
        console.print(
            measures_table(
                "Core: measures per round, median (p25..p75), and targets (issue 2)",
                self.measures,
            )
        )
        console.print(f"floor payload: {run.payload.source}; run took {run.seconds:.0f} s")
        print_problems(run.problems)

    def markdown(self, quick: bool) -> str:
        run = self.run
        lines = [
            *section_head(
                "Core",
                "bench_core.py",
                quick,
                f"One process, {run.seconds:.0f} s: {run.rounds} rounds with a logger, "
                f"{3 * run.rounds} without; {run.clock} clock.",
                ("braintrust-ollama", "braintrust", "ollama", "openai", "httpx"),
            ),
            "What runs: `chat` is `Client.chat(model, messages, options)`; `stream` the same "
            f"with `stream=True`, {STREAM_CHUNKS} NDJSON chunks (the last one `done`, with the "
            "counters and timings) iterated to the end. `traced`: `setup_ollama()` active and a "
            "logger writing to Braintrust's in-memory background logger. `floor`: one bare "
            "`braintrust.start_span` with the traced span's own input, output, metadata and "
            "metrics, written three times (start, `log`, `end`), twice (start with everything, "
            "`end`) or once (start with everything and `metrics.end`). `chat.plain+one_write`: a "
            "plain call, then the one-write span: the floor in situ, after the SDK's own work "
            "has taken the CPU caches. `openai`: the openai SDK's `chat.completions.create` "
            "against Ollama's `/v1` (a JSON reply; 200 SSE chunks with "
            "`stream_options.include_usage`), plain and through `braintrust.wrap_openai`. "
            "`no logger`: `setup_ollama()` active, no Braintrust logger initialised.",
            "",
            "µs per call (the `thread` clock is the CPU time of the benchmark's thread, blind to "
            "time spent waiting for a core while other processes run), median (p25..p75) over "
            "the rounds. *added*: the median of the "
            "round-by-round differences from the plain call of the same round. *pop*: what "
            "emptying the in-memory logger cost per call afterwards, untimed (in production that "
            f"work runs on Braintrust's background thread). Floor payload: {run.payload.source}.",
            "",
            *variants_markdown(self.rows),
            "",
            "Reading the floors: they run in a tight loop, with Braintrust's code and data hot "
            "in the CPU caches. `chat.plain+one_write` logs the same one-write span right after "
            "a real SDK call, as a wrapper must; what a traced call adds beyond that in-situ "
            "floor is what the wrapper itself costs.",
            "",
            "Measures are per round (added, ratios, % in the same round), then summarised; a "
            "target is *met* when the 95 % confidence interval of the median is within it, "
            "*no* when it is wholly outside, *unclear* when it straddles it.",
            "",
            *measures_markdown(self.measures),
            *problems_markdown(run.problems),
        ]
        return "\n".join(lines)


# --- where the added time goes -------------------------------------------------------------------


def _profiled(sink: MemorySink, call: Callable[[], object], calls: int, traced: bool) -> Stats:
    """``profile_calls`` with the SDK patched (``traced``) or not."""
    patched(traced)()
    try:
        return profile_calls(sink, call, calls, warmup=max(3, calls // 20))
    finally:
        patched(False)()


def profile(sink: MemorySink, payload: Payload | None = None, top: int = 25) -> int:
    """cProfile a traced call against a plain one (a logger writing to memory) and list, per
    function, the self time the traced call adds; then the tracing code, and the floor's span,
    by cumulative time. cProfile inflates everything: read shares, not absolute numbers."""
    if not TRACED:
        console.print("[red]profile: braintrust_ollama.setup_ollama is missing[/]")
        return 1
    for kind, call, calls in (("chat", ollama_chat, 1000), ("stream", ollama_stream, 60)):
        plain = _profiled(sink, call, calls, traced=False)
        traced = _profiled(sink, call, calls, traced=True)
        title = f"profile, {kind}: self time added by tracing, µs per call under cProfile"
        console.print(added_self_time_table(title, plain, traced, calls, top))
        # Braintrust and braintrust_ollama functions the plain call does not run.
        title = f"profile, {kind}: tracing code by cumulative time, µs per call"
        console.print(cumulative_table(title, traced, calls, top, "braintrust", skip=plain))

    if payload is None:
        rows = one_call_rows(sink, ollama_chat, traced=True)
        payload = payload_of(rows[0]) if len(rows) == 1 else contract_payload()
    for name, call in zip(
        ("start_log_end", "start_end", "one_write"), floor_calls(payload), strict=True
    ):
        stats = _profiled(sink, call, 1000, traced=False)
        title = f"profile, floor.{name}: by cumulative time, µs per call"
        console.print(cumulative_table(title, stats, 1000, 12, "braintrust"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
