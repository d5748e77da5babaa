"""What a `Pool` worker pays for its spans to be stored before its results go back.

    uv run python benchmarks/pool_workers.py    (also run by `uv run nox -s bench`)

Each task opens one span (input and a 200-character output) and returns; `with Pool(4)` maps 400
such tasks, one per result (chunksize 1: a result per task, the worst case), and leaves the
block (SIGTERM to the workers). Median of 7 rounds, wall time, in one run:
- untraced: no logger (Braintrust's spans are no-ops);
- floor: each task writes its one finished row to the store itself, before returning;
- traced: the local store's logger (`init_local_logger`), rows written before each result.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import braintrust
from braintrust_ollama.local.store import LocalStore

TASKS, ROUNDS = 400, 7
STORE = Path(tempfile.mkdtemp()) / "traces.db"


def traced(n: int) -> int:
    with braintrust.start_span(name=f"task {n}") as span:
        span.log(input={"n": n}, output="x" * 200)
    return n


def floor(n: int) -> int:
    row = {"id": str(uuid.uuid4()), "span_id": str(n), "root_span_id": str(n),
           "span_attributes": {"name": f"task {n}"}, "input": {"n": n}, "output": "x" * 200,
           "metrics": {"start": time.time(), "end": time.time()}}  # fmt: skip
    LocalStore(STORE).append([row])
    return n


def median_ms(task: Callable[[int], int]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(4) as pool:
            pool.map(task, range(TASKS), chunksize=1)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


if __name__ == "__main__":
    untraced = median_ms(traced)
    floored = median_ms(floor)
    from braintrust_ollama import init_local_logger

    init_local_logger("bench-pool", path=STORE.with_name("traced.db"))
    result = median_ms(traced)
    per = (result - untraced) / TASKS * 4  # four workers share the tasks
    print(f"untraced {untraced:.0f} ms, floor {floored:.0f} ms, traced {result:.0f} ms "
          f"for {TASKS} results: {result / floored:.2f} x the floor, "
          f"+{per:.1f} ms per result and worker")  # fmt: skip
