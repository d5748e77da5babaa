"""The targets of BENCHMARKS.md, measured: ratios of pyperf medians from one run, as Markdown.

    uv run python benchmarks/report.py .bench/bench_core.json .bench/bench_fastapi.json

Two results are compared benchmark by benchmark with `uv run python -m pyperf compare_to A B`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pyperf

CHUNKS = 200  # in bench_core.py's stream


def medians(paths: list[str]) -> dict[str, float]:
    """Each benchmark's median, in microseconds."""
    found = {}
    for path in paths:
        for bench in pyperf.BenchmarkSuite.load(path).get_benchmarks():
            found[bench.get_name()] = bench.median() * 1e6
    return found


def _against_floors(added: float, floors: dict[str, float]) -> Iterator[tuple[str, str, str, bool]]:
    """A row per floor: the added time as a multiple of that bare span's (target 1.1)."""
    for name, us in floors.items():
        ratio = added / us
        yield f"added / floor ({name}: {us:.1f} µs)", f"{ratio:.2f}", "<= 1.10", ratio <= 1.1


def core(m: dict[str, float]) -> Iterator[tuple[str, str, str, bool]]:
    """(measure, value, target, met) rows for the core package."""
    added = m["chat.traced"] - m["chat.plain"]
    yield "added per traced chat", f"{added:.1f} µs", "", True
    ours = m["chat.traced.unwritten"] - m["chat.plain"]
    yield "of which our own code (the span write a no-op)", f"{ours:.1f} µs", "", True
    floors = {
        "in situ, one write": m["chat.plain+one_write"] - m["chat.plain"],
        "in situ, start+log+end": m["chat.plain+start_log_end"] - m["chat.plain"],
        "tight loop, one write": m["floor.one_write"],
        "tight loop, start+log+end": m["floor.start_log_end"],
    }
    yield from _against_floors(added, floors)
    openai = m["openai.wrapped"] - m["openai.plain"]
    yield "added vs wrap_openai's added", f"{added:.1f} vs {openai:.1f} µs", "below", added < openai
    per_chunk = (m["stream.traced"] - m["stream.plain"] - added) / CHUNKS
    yield "stream: added per chunk beyond a chat", f"{per_chunk:.2f} µs", "<= 1 µs", per_chunk <= 1
    for call in ("chat", "stream"):
        share = (m[f"no_logger.{call}.traced"] / m[f"no_logger.{call}.plain"] - 1) * 100
        yield f"no logger: added to a {call}", f"{share:.1f} %", "<= 2 %", share <= 2


def fastapi(m: dict[str, float]) -> Iterator[tuple[str, str, str, bool]]:
    """(measure, value, target, met) rows for the FastAPI middleware."""
    added = m["fastapi.middleware"] - m["fastapi.plain"]
    yield "added per request", f"{added:.1f} µs", "", True
    floors = {
        "in situ, start+log+end": m["fastapi.plain+start_log_end"] - m["fastapi.plain"],
        "in situ, start+end": m["fastapi.plain+start_end"] - m["fastapi.plain"],
        "tight loop, start+log+end": m["fastapi.span.start_log_end"],
        "tight loop, start+end": m["fastapi.span.start_end"],
    }
    yield from _against_floors(added, floors)


def main(paths: list[str]) -> None:
    m = medians(paths)
    print("| benchmark | median µs |\n|---|---:|")
    for name, us in m.items():
        print(f"| {name} | {us:.1f} |")
    for title, rows in (("core", core), ("fastapi", fastapi)):
        if not any(name.startswith("fastapi.") == (title == "fastapi") for name in m):
            continue
        print(f"\n| {title} | value | target | met |\n|---|---|---|---|")
        for measure, value, target, met in rows(m):
            print(f"| {measure} | {value} | {target} | {('yes' if met else '**no**') if target else ''} |")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
