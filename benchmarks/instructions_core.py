"""Instructions per call, counted by valgrind's callgrind: a measure that does not drift.

Time on a shared 2-core virtual machine moves by several microseconds from one run to the next,
which is as much as the smallest differences the core benchmark looks for (the no-logger path,
per-chunk costs). Callgrind counts the instructions a run executes, the same every time for the
same code and inputs. Each variant runs twice under callgrind, with 0 and with N measured calls
after the same warm-up; the difference divided by N is what one call executes. Cache effects,
which the timed benchmark does see, are not in these counts.

    uv run python benchmarks/instructions_core.py            # all variants (a few minutes)
    uv run python benchmarks/instructions_core.py --write    # and the BENCHMARKS.md section
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
    "chat.plain": "the SDK's chat over a mock transport, not traced",
    "chat.traced_no_logger": "the same with setup_ollama() and no Braintrust logger",
    "chat.traced": "the same with setup_ollama() and a logger",
    "chat.plain+start_log_end": "a plain chat, then a bare span: start, log, end",
    "chat.plain+start_end": "a plain chat, then a bare span: start with everything, end",
    "chat.plain+one_write": "a plain chat, then a bare span written once",
    "stream.plain": "a 200-chunk chat stream, not traced",
    "stream.traced": "the same stream traced, with a logger",
}


def run_variant(name: str, calls: int) -> None:
    """Inside callgrind: warm up, then `calls` calls of one variant."""
    import braintrust
    from bench_core import floor_calls, ollama_chat, ollama_stream, payload_of
    from braintrust import logger as bt_logger
    from braintrust.test_helpers import init_test_logger
    from braintrust_ollama import setup_ollama

    call = ollama_stream if name.startswith("stream") else ollama_chat
    with bt_logger._internal_with_memory_background_logger() as background:
        if name != "chat.traced_no_logger":
            init_test_logger("instructions")
        if "traced" in name:
            setup_ollama()
        else:  # the floor's payload: the span a traced call logs
            setup_ollama()
            with braintrust.start_span(name="probe"):
                ollama_chat()
            from braintrust_ollama import unpatch_ollama

            unpatch_ollama()
            braintrust.flush()
            rows = [r for r in background.pop() if r["span_attributes"]["name"] == "ollama.chat"]
            start_log_end, start_end, one_write = floor_calls(payload_of(rows[0]))
            floor = {
                "chat.plain+start_log_end": start_log_end,
                "chat.plain+start_end": start_end,
                "chat.plain+one_write": one_write,
            }.get(name)
            if floor is not None:
                plain = call

                def call() -> object:
                    plain()
                    return floor()

        for _ in range(WARMUP):
            call()
        # As in the timed benchmarks: what is alive now is never collected, so a full
        # collection does not land in one variant's runs and not another's.
        gc.freeze()
        for _ in range(calls):
            call()


def report(counts: dict[str, float]) -> str:
    plain, stream = counts["chat.plain"], counts["stream.plain"]
    added = counts["chat.traced"] - plain
    lines = [
        "| variant | what runs | instructions per call | added to the plain call |",
        "|---|---|---:|---:|",
    ]
    for name, what in VARIANTS.items():
        base = stream if name.startswith("stream") else plain
        delta = counts[name] - base
        lines.append(f"| `{name}` | {what} | {counts[name]:,.0f} | {delta:+,.0f} |")
    floors = {
        "start+log+end": counts["chat.plain+start_log_end"] - plain,
        "start+end": counts["chat.plain+start_end"] - plain,
        "one write": counts["chat.plain+one_write"] - plain,
    }
    no_logger = counts["chat.traced_no_logger"] - plain
    per_chunk = (counts["stream.traced"] - stream - added) / 200
    lines += [
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        *(
            f"| traced chat: added / floor ({floor}) | {added / cost:.2f} | <= 1.10 |"
            for floor, cost in floors.items()
        ),
        f"| no logger: added to a plain call | {no_logger / plain:.2%} | <= 2 % |",
        f"| stream: added per chunk beyond a plain call | {per_chunk:,.0f} instructions | |",
    ]
    return "\n".join(lines)


def main() -> int:
    return instructions_main(
        InstructionCount(
            script=__file__,
            doc=__doc__ or "",
            variants=VARIANTS,
            run_variant=run_variant,
            report=report,
            section="instructions",
            heading="Core, in instructions (callgrind)",
            method=f"{CALLS} calls per variant after {WARMUP} warm-up calls.",
            calls=CALLS,
            unit="call",
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
