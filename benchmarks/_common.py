"""Shared benchmark machinery: canned Ollama traffic, in-memory transports, timing, reporting,
profiling.

Everything here stays in-process: the SDKs talk to ``httpx.MockTransport`` handlers that return
bodies shaped like a real Ollama server's (native ``/api/chat`` NDJSON and the OpenAI-compatible
``/v1`` SSE), so a benchmark measures client-side work only and never touches the network.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import platform
import pstats
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

import braintrust
import httpx
from braintrust import logger as bt_logger
from braintrust.util import LazyValue
from rich.console import Console
from rich.markup import escape
from rich.table import Table

MODEL = "llama3.2:3b"
HOST = "http://127.0.0.1:11434"
STREAM_CHUNKS = 200
"""Chunks in every benchmarked stream, the final ``done`` / usage chunks included."""

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
    {"role": "user", "content": "Why is the sky blue?"},
]
OPTIONS: dict[str, Any] = {"temperature": 0, "seed": 42}
REPLY = (
    "The sky appears blue because molecules in Earth's atmosphere scatter the shorter blue "
    "wavelengths of sunlight much more strongly than the longer red ones."
)
# Server timings and counters as a real Ollama reports them (durations in nanoseconds).
DONE_FIELDS: dict[str, Any] = {
    "done": True,
    "done_reason": "stop",
    "total_duration": 8_313_421_042,
    "load_duration": 4_768_032_458,
    "prompt_eval_count": 31,
    "prompt_eval_duration": 65_296_000,
    "eval_count": 199,
    "eval_duration": 3_478_845_000,
}
BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"

console = Console(width=120)


def _tokens(n: int) -> list[str]:
    """``n`` stream fragments that join to a plausible answer (its words, then counting on)."""
    words = REPLY.split(" ")
    return [words[0]] + [" " + (words[i] if i < len(words) else str(i)) for i in range(1, n)]


def _created_at(i: int) -> str:
    return f"2026-08-07T06:08:{14 + i // 100:02d}.{(i % 100) * 9_999:06d}Z"


# --- native Ollama (/api/chat) -------------------------------------------------------------------


def ollama_chat_body() -> bytes:
    """A non-streaming ``/api/chat`` reply, byte for byte the shape Ollama sends."""
    return json.dumps(
        {
            "model": MODEL,
            "created_at": _created_at(0),
            "message": {"role": "assistant", "content": REPLY},
            **DONE_FIELDS,
        },
        separators=(",", ":"),
    ).encode()


def ollama_stream_lines(chunks: int = STREAM_CHUNKS) -> list[bytes]:
    """A streaming ``/api/chat`` reply: ``chunks - 1`` content lines, then the ``done`` line."""
    lines = [
        json.dumps(
            {
                "model": MODEL,
                "created_at": _created_at(i),
                "message": {"role": "assistant", "content": token},
                "done": False,
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
        for i, token in enumerate(_tokens(chunks - 1))
    ]
    final = {
        "model": MODEL,
        "created_at": _created_at(chunks),
        "message": {"role": "assistant", "content": ""},
        **DONE_FIELDS,
    }
    lines.append(json.dumps(final, separators=(",", ":")).encode() + b"\n")
    return lines


# --- OpenAI-compatible Ollama (/v1/chat/completions) ---------------------------------------------


def openai_chat_body() -> bytes:
    """A non-streaming ``/v1/chat/completions`` reply as Ollama's OpenAI layer sends it."""
    return json.dumps(
        {
            "id": "chatcmpl-417",
            "object": "chat.completion",
            "created": 1786082887,
            "model": MODEL,
            "system_fingerprint": "fp_ollama",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": DONE_FIELDS["prompt_eval_count"],
                "completion_tokens": DONE_FIELDS["eval_count"],
                "total_tokens": DONE_FIELDS["prompt_eval_count"] + DONE_FIELDS["eval_count"],
            },
        },
        separators=(",", ":"),
    ).encode()


def openai_stream_events(chunks: int = STREAM_CHUNKS) -> list[bytes]:
    """A streaming reply as SSE events: content chunks, the ``finish_reason`` chunk, the usage
    chunk (``stream_options={"include_usage": True}``), ``chunks`` events in all, then ``[DONE]``.
    """
    head = {
        "id": "chatcmpl-417",
        "object": "chat.completion.chunk",
        "created": 1786082887,
        "model": MODEL,
        "system_fingerprint": "fp_ollama",
    }

    def event(payload: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps({**head, **payload}, separators=(",", ":")).encode() + b"\n\n"

    events = [
        event(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": token},
                        "finish_reason": None,
                    }
                ]
            }
        )
        for token in _tokens(chunks - 2)
    ]
    events.append(
        event(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": "stop",
                    }
                ]
            }
        )
    )
    events.append(event({"choices": [], "usage": json.loads(openai_chat_body())["usage"]}))
    events.append(b"data: [DONE]\n\n")
    return events


# --- transports --------------------------------------------------------------------------------


def json_transport(body: bytes, http: Any = httpx) -> httpx.MockTransport:
    """Answer every request with ``body`` as ``application/json``. ``http`` is the httpx-like
    module the SDK speaks (openai 3 uses ``httpx2``)."""
    headers = {"content-type": "application/json; charset=utf-8"}
    return http.MockTransport(lambda request: http.Response(200, headers=headers, content=body))


def chunked_transport(
    chunks: Sequence[bytes], content_type: str, http: Any = httpx
) -> httpx.MockTransport:
    """Answer every request with ``chunks`` delivered one by one, as a chunked reply arrives."""
    headers = {"content-type": content_type}
    return http.MockTransport(
        lambda request: http.Response(200, headers=headers, content=iter(chunks))
    )


# --- timing --------------------------------------------------------------------------------------


@dataclass
class Variant:
    """One way of making the call: ``calls`` runs of ``call`` are timed as a block; ``before``
    and ``after`` run around the block, untimed."""

    name: str
    call: Callable[[], object]
    calls: int = 1
    before: Callable[[], object] = lambda: None
    after: Callable[[], object] = lambda: None


@dataclass
class Samples:
    """Per-round mean time per call (µs) for every variant, in round order."""

    per_round: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.per_round[name])

    def paired(self, minuend: str, subtrahend: str) -> list[float]:
        """Round-by-round differences: drift hits both variants of a round alike and cancels."""
        return [
            a - b for a, b in zip(self.per_round[minuend], self.per_round[subtrahend], strict=True)
        ]


CLOCKS: dict[str, Callable[[], int]] = {
    "thread": time.thread_time_ns,
    "wall": time.perf_counter_ns,
}
"""``thread``: CPU time of the calling thread, blind to time spent descheduled while other
processes use the (shared, 2-core) machine; every variant does all its work on the calling
thread here (the in-memory logger has no upload thread). ``wall``: elapsed time."""


def run_rounds(
    variants: Sequence[Variant], rounds: int, warmup: int = 1, clock: str = "thread"
) -> Samples:
    """Run one block of every variant per round, ``rounds`` times, rotating the order each round
    so that no variant always runs first (after a collection) or last. Warm-up rounds run the
    same schedule and are discarded.
    """
    now = CLOCKS[clock]
    # Everything alive now (modules, clients, payloads) is set aside for good: collections in
    # and between blocks then walk only what the calls allocate, not the whole heap.
    gc.collect()
    gc.freeze()
    samples = Samples({v.name: [] for v in variants})
    for r in range(warmup + rounds):
        k = r % len(variants)
        for v in (*variants[k:], *variants[:k]):
            v.before()
            gc.collect()
            call, calls = v.call, v.calls
            t0 = now()
            for _ in range(calls):
                call()
            elapsed = now() - t0
            v.after()
            if r >= warmup:
                samples.per_round[v.name].append(elapsed / calls / 1000)
    return samples


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(p25, median, p75); the inter-quartile range is the spread we report."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def median_ci(values: Sequence[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95 % bootstrap confidence interval of the median (seeded: a run reports one answer).

    Whether a target is met is judged on this interval, not on the median alone: on a shared
    machine a median can land on either side of a target by chance.
    """
    rng = random.Random(0)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def calibrate(groups: Sequence[Sequence[Variant]], block_ms: float, clock: str) -> list[Variant]:
    """Give each group of compared variants one call count, so that its slowest variant's
    block takes about ``block_ms``."""
    now = CLOCKS[clock]
    out: list[Variant] = []
    for group in groups:
        slowest = 0.0
        for v in group:
            v.before()
            v.call()
            t0 = now()
            for _ in range(3):
                v.call()
            slowest = max(slowest, (now() - t0) / 3 / 1e6)
            v.after()
        calls = max(1, math.ceil(block_ms / max(slowest, 1e-3)))
        for v in group:
            v.calls = calls
            out.append(v)
    return out


class MemorySink:
    """Braintrust's in-memory background logger for the whole run, emptied between blocks."""

    def __init__(self) -> None:
        bt_logger._state.reset_parent_state()
        self._cm = bt_logger._internal_with_memory_background_logger()
        self.background = self._cm.__enter__()
        # The override is thread-local; any thread must land here too, never on HTTP.
        bt_logger._state._global_bg_logger = LazyValue(lambda: self.background, use_mutex=False)
        self.pop_us: dict[str, list[float]] = {}

    def pop(self) -> list[dict[str, Any]]:
        """The rows logged since the last pop, one per span (its writes merged)."""
        braintrust.flush()
        rows: list[dict[str, Any]] = self.background.pop()
        return rows

    def drain(self, variant: str, calls: int) -> None:
        """Empty the logger; record what that cost per call (not part of any timing)."""
        t0 = time.perf_counter_ns()
        self.background.pop()
        self.pop_us.setdefault(variant, []).append((time.perf_counter_ns() - t0) / calls / 1000)

    def draining(self, v: Variant) -> Variant:
        """``v``, emptying the logger after each of its blocks (untimed)."""
        after = v.after

        def drain() -> None:
            after()
            self.drain(v.name, v.calls)

        v.after = drain
        return v


# --- the command line ----------------------------------------------------------------------------


def bench_parser(doc: str | None, rounds_help: str, section: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes; ``section`` names its section of BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, help=rounds_help)
    parser.add_argument("--block-ms", type=float, help="ms per timed block (default 40; quick 10)")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="thread",
        help="thread: CPU time of the benchmark thread (default; robust on a busy machine); "
        "wall: elapsed time",
    )
    parser.add_argument("--profile", action="store_true", help="then profile traced vs plain")
    parser.add_argument("--profile-only", action="store_true", help="only profile")
    parser.add_argument(
        "--write", action="store_true", help=f"write the {section} section of BENCHMARKS.md"
    )
    return parser


# --- reporting -----------------------------------------------------------------------------------


def package_versions(*names: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine_summary() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def replace_section(name: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Write ``text`` between ``<!-- bench:NAME:start -->`` and ``<!-- bench:NAME:end -->`` in
    BENCHMARKS.md, appending the section if the markers are missing, so each benchmark owns its
    own section and leaves the others alone.
    """
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{text.strip()}\n{end}"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: block, doc)
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(doc)


def section_head(
    title: str, script: str, quick: bool, run: str, packages: Sequence[str]
) -> list[str]:
    """A BENCHMARKS.md section's heading, the command that wrote it and how it ran (``run``),
    then the machine and the versions of ``packages``."""
    versions = package_versions(*packages)
    return [
        f"## {title}",
        "",
        "Command: `uv run nox -s bench"
        + (" -- --quick" if quick else "")
        + f"` (this section: `uv run python benchmarks/{script} --write`). {run}",
        "",
        f"Machine: {machine_summary()}.  ",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
    ]


def fmt(q: tuple[float, float, float], digits: int = 1) -> str:
    """``median (p25..p75)``"""
    lo, mid, hi = q
    return f"{mid:.{digits}f} ({lo:.{digits}f}..{hi:.{digits}f})"


@dataclass(frozen=True)
class Measure:
    what: str
    value: str  # median (p25..p75)
    ci: str = ""  # 95 % confidence interval of the median
    target: str = ""
    met: str = ""  # yes / no / unclear (the interval straddles the target); "" without a target


def measure(
    what: str,
    values: Sequence[float],
    unit: str = "µs",
    digits: int = 1,
    limit: float | None = None,
    target: str = "",
) -> Measure:
    """A per-round series summarised; with ``limit``, *met* when the 95 % confidence interval
    of the median is at most it, *no* when wholly above, *unclear* when it straddles it."""
    lo, hi = median_ci(values)
    met = ""
    if limit is not None:
        met = "yes" if hi <= limit else "no" if lo > limit else "unclear"
    return Measure(
        what,
        f"{fmt(quartiles(values), digits)} {unit}".rstrip(),
        f"{lo:.{digits}f}..{hi:.{digits}f}",
        target or (f"<= {limit:g} {unit}".rstrip() if limit is not None else ""),
        met,
    )


def measures_markdown(measures: Sequence[Measure]) -> list[str]:
    """The measures as a Markdown table (a missed target in bold)."""
    return [
        "| measure | median (p25..p75) | 95 % CI of median | target | met |",
        "|---|---|---|---|---|",
        *(
            f"| {m.what} | {m.value} | {m.ci} | {m.target} | "
            f"{'**no**' if m.met == 'no' else m.met} |"
            for m in measures
        ),
    ]


class Report(Protocol):
    def print(self) -> None: ...

    def markdown(self, quick: bool) -> str: ...


def publish(report: Report, args: argparse.Namespace, section: str, title: str) -> None:
    """Print ``report``; with ``--write``, also put it into its section of BENCHMARKS.md."""
    report.print()
    if args.write:
        replace_section(section, report.markdown(quick=args.quick))
        console.print(f"BENCHMARKS.md: {title} section written")


def problems_markdown(problems: Sequence[str]) -> list[str]:
    """The run's problems as a Markdown list after a blank line; nothing when there are none."""
    return ["", *(f"- problem: {p}" for p in problems)] if problems else []


Row = tuple[str, str, str, str, str]
"""A variant's row: name, calls/block, per call, added (paired), pop µs/call."""

VARIANT_COLUMNS = ("variant", "calls/block", "per call", "added (paired)", "pop µs/call")
VERDICT_COLOURS = {"yes": "green", "no": "red", "unclear": "yellow"}


def variant_rows(
    samples: Samples,
    rows: Sequence[tuple[str, str | None]],
    calls: Mapping[str, int],
    pop_us: Mapping[str, Sequence[float]],
) -> list[Row]:
    """A row per (variant, the plain variant it adds to) that ran: its time per call, what it
    adds round by round to its plain variant, and what emptying the logger cost per call."""
    return [
        (
            name,
            str(calls[name]),
            fmt(quartiles(samples.per_round[name])),
            fmt(quartiles(samples.paired(name, base))) if base else "",
            f"{statistics.median(pop):.1f}" if (pop := pop_us.get(name)) else "",
        )
        for name, base in rows
        if name in samples.per_round
    ]


def variants_table(title: str, rows: Sequence[Row]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in VARIANT_COLUMNS:
        table.add_column(col, justify="left" if col == "variant" else "right")
    for row in rows:
        table.add_row(*map(escape, row))
    return table


def variants_markdown(rows: Sequence[Row]) -> list[str]:
    return [
        "| variant | calls/block | per call | added | pop |",
        "|---|---:|---:|---:|---:|",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]


def measures_table(title: str, measures: Sequence[Measure]) -> Table:
    """The measures, each verdict in its colour."""
    table = Table(title=title, title_justify="left")
    for col in ("measure", "value", "95% CI of median", "target", "met"):
        table.add_column(col)
    for m in measures:
        verdict = f"[{VERDICT_COLOURS[m.met]}]{m.met}[/]" if m.met else ""
        table.add_row(escape(m.what), escape(m.value), escape(m.ci), escape(m.target), verdict)
    return table


def print_problems(problems: Sequence[str]) -> None:
    for p in problems:
        console.print(f"[red]problem:[/] {escape(p)}")


# --- profiling -----------------------------------------------------------------------------------

FunctionKey = tuple[str, int, str]
"""cProfile's name for a function: (file, line, function)."""
Stats = dict[FunctionKey, tuple[int, int, float, float, dict[Any, Any]]]
"""cProfile's raw statistics: per function (primitive calls, calls, self time, cumulative time,
callers)."""


def profile_calls(sink: MemorySink, call: Callable[[], object], calls: int, warmup: int) -> Stats:
    """cProfile ``calls`` runs of ``call`` after ``warmup`` unprofiled ones, the logger emptied
    before and after."""
    # CPU time of this thread: other processes on the machine do not show up as our time.
    prof = cProfile.Profile(time.thread_time_ns, 1e-9)
    try:
        for _ in range(warmup):
            call()
        sink.pop()
        prof.enable()
        for _ in range(calls):
            call()
        prof.disable()
    finally:
        sink.pop()
    stats: Stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    return stats


def function_label(key: FunctionKey) -> str:
    """``package/module.py:line(function)``, the path cut below site-packages, src or lib."""
    file, line, func = key
    if file == "~":
        return func
    parts = Path(file).parts
    for anchor in ("site-packages", "src", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    return f"{'/'.join(parts[-3:])}:{line}({func})"


def _total_us(stats: Stats, calls: int) -> float:
    return sum(v[2] for v in stats.values()) / calls * 1e6


def added_self_time_table(title: str, plain: Stats, traced: Stats, calls: int, top: int) -> Table:
    """Per function, the self time and calls that ``traced`` adds to ``plain``, µs per call,
    most first; the title ends with both totals and their difference."""
    added = []
    for key, (_, nc, tt, ct, _) in traced.items():
        p = plain.get(key)
        self_added = (tt - (p[2] if p else 0.0)) / calls * 1e6
        calls_added = (nc - (p[1] if p else 0)) / calls
        added.append((self_added, calls_added, ct / calls * 1e6, key))
    added.sort(reverse=True)
    total_plain, total_traced = _total_us(plain, calls), _total_us(traced, calls)
    table = Table(
        title=f"{title} (plain {total_plain:.0f}, traced {total_traced:.0f}, "
        f"added {total_traced - total_plain:.0f})",
        title_justify="left",
    )
    for col in ("function", "added self µs", "added calls", "cumulative µs"):
        table.add_column(col, justify="left" if col == "function" else "right")
    for self_added, calls_added, cum, key in added[:top]:
        table.add_row(function_label(key), f"{self_added:.2f}", f"{calls_added:.1f}", f"{cum:.1f}")
    return table


def cumulative_table(
    title: str,
    stats: Stats,
    calls: int,
    top: int,
    path_contains: str,
    skip: Collection[FunctionKey] = (),
) -> Table:
    """The functions whose file path contains ``path_contains`` by cumulative time per call,
    leaving out those in ``skip``."""
    rows = sorted(
        (
            (ct / calls * 1e6, tt / calls * 1e6, nc / calls, key)
            for key, (_, nc, tt, ct, _) in stats.items()
            if path_contains in key[0] and key not in skip
        ),
        reverse=True,
    )
    table = Table(title=title, title_justify="left")
    for col in ("function", "cumulative µs", "self µs", "calls"):
        table.add_column(col, justify="left" if col == "function" else "right")
    for cum, tt, nc, key in rows[:top]:
        table.add_row(function_label(key), f"{cum:.1f}", f"{tt:.2f}", f"{nc:.1f}")
    return table


# --- instruction counts (callgrind) ---------------------------------------------------------------


def callgrind_count(script: str, variant: str, calls: int) -> int:
    """Instructions callgrind collects for `python script --run variant calls`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                script,
                "--run",
                variant,
                str(calls),
            ],
            capture_output=True,
            text=True,
            check=True,
            # A fixed hash seed: the same dict and set layouts in both runs, so start-up
            # instructions cancel exactly in the subtraction.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    match = re.search(r"Collected : (\d+)", out.stderr)
    if match is None:
        raise RuntimeError(f"callgrind printed no count for {variant}:\n{out.stderr[-2000:]}")
    return int(match.group(1))


def callgrind_per_call(script: str, variant: str, calls: int) -> float:
    """Instructions one call of `variant` executes: runs with 0 and `calls` calls, subtracted,
    so start-up, imports and warm-up cancel out."""
    return (callgrind_count(script, variant, calls) - callgrind_count(script, variant, 0)) / calls


@dataclass
class InstructionCount:
    """One callgrind benchmark script: its variants, how one runs, and how counts are reported.

    The script calls `instructions_main(spec)` from `main()`. Run without arguments it counts
    every variant (the script re-runs itself under callgrind with `--run VARIANT CALLS`) and
    prints `report(counts)`; with `--write` it also fills `section` of BENCHMARKS.md.
    """

    script: str
    doc: str
    variants: Mapping[str, str]
    run_variant: Callable[[str, int], None]
    report: Callable[[dict[str, float]], str]
    section: str
    heading: str
    method: str  # how the counts were taken, for the BENCHMARKS.md section
    calls: int
    unit: str = "call"


def instructions_main(spec: InstructionCount) -> int:
    parser = argparse.ArgumentParser(description=spec.doc.splitlines()[0])
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "CALLS"), help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = parser.parse_args()
    if args.run:
        spec.run_variant(args.run[0], int(args.run[1]))
        return 0
    counts = {}
    for name in spec.variants:
        counts[name] = callgrind_per_call(spec.script, name, spec.calls)
        print(f"{name:28s} {counts[name]:>12,.0f} instructions per {spec.unit}", flush=True)
    text = spec.report(counts)
    print(text)
    if args.write:
        replace_section(
            spec.section,
            f"## {spec.heading}\n\n"
            f"Command: `uv run python benchmarks/{Path(spec.script).name} --write`. "
            f"{spec.method} Each run is counted twice (0 and N {spec.unit}s) and subtracted, so "
            "start-up and imports cancel out. Instruction counts repeat exactly from run to run; "
            "they leave out cache effects, which the timed tables include.\n\n" + text + "\n",
        )
    return 0
