"""Instructions per request added by `BraintrustMiddleware`, counted by valgrind's callgrind.

The timed FastAPI benchmark (bench_fastapi.py) drifts by microseconds between runs on this
machine; instruction counts repeat exactly. Each variant runs twice under callgrind, with 0 and
with N measured requests after the same warm-up, and the difference divided by N is what one
request executes. Cache effects, which the timed benchmark includes, are not in these counts.

    uv run python benchmarks/instructions_fastapi.py            # all variants (several minutes)
    uv run python benchmarks/instructions_fastapi.py --write    # and the BENCHMARKS.md section
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import InstructionCount, instructions_main

CALLS = 300
WARMUP = 60
VARIANTS = {
    "plain": "the app, not traced",
    "middleware": "the app with BraintrustMiddleware",
    "plain+start_end": "the app, its request also logging a bare span: start, end",
    "plain+start_log_end": "the same with start, log (output, metadata), end",
}
TARGET = 1.1


def run_variant(name: str, calls: int) -> None:
    """Inside callgrind: warm up, then `calls` requests of one variant."""
    from bench_fastapi import make_app, payload_of, request, with_span
    from braintrust import logger as bt_logger
    from braintrust.test_helpers import init_test_logger
    from starlette.types import ASGIApp

    with bt_logger._internal_with_memory_background_logger() as background:
        init_test_logger("instructions")
        request(make_app(traced=True))()
        import braintrust

        braintrust.flush()
        payload = payload_of(background.pop()[0])
        plain = make_app(traced=False)
        apps: dict[str, ASGIApp] = {
            "plain": plain,
            "middleware": make_app(traced=True),
            "plain+start_end": with_span(plain, payload, log=False),
            "plain+start_log_end": with_span(plain, payload, log=True),
        }
        call = request(apps[name])
        for _ in range(WARMUP):
            call()
        # As in the timed benchmarks: what is alive now is never collected, so a full
        # collection does not land in one variant's runs and not another's.
        gc.freeze()
        for _ in range(calls):
            call()


def report(counts: dict[str, float]) -> str:
    plain = counts["plain"]
    added = counts["middleware"] - plain
    lines = [
        "| variant | what runs | instructions per request | added to the plain app |",
        "|---|---|---:|---:|",
        *(
            f"| `{name}` | {what} | {counts[name]:,.0f} | {counts[name] - plain:+,.0f} |"
            for name, what in VARIANTS.items()
        ),
        "",
        "| measure | value | target |",
        "|---|---:|---|",
    ]
    for floor in ("plain+start_end", "plain+start_log_end"):
        ratio = added / (counts[floor] - plain)
        met = "**yes**" if ratio <= TARGET else "**no**"
        lines.append(f"| middleware: added / floor (`{floor}`) | {ratio:.2f} | <= 1.10: {met} |")
    return "\n".join(lines)


def main() -> int:
    return instructions_main(
        InstructionCount(
            script=__file__,
            doc=__doc__ or "",
            variants=VARIANTS,
            run_variant=run_variant,
            report=report,
            section="instructions-fastapi",
            heading="FastAPI, in instructions (callgrind)",
            method=f"{CALLS} requests per variant after {WARMUP} warm-up requests, driven in-process as in the timed benchmark.",
            calls=CALLS,
            unit="request",
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
