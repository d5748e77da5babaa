"""How fast `LocalStore.append` stores rows, and how long it holds the store's process lock
(`_in_sqlite`, which `os.fork()` waits for) while other threads keep the GIL busy.

    uv run python benchmarks/store_write.py [REVISION]

With a git REVISION (say `main`), that revision's `local/store.py` is loaded beside the current
one and every measurement alternates between the two in this one process, so load from other
processes on the machine falls on both alike. Measured:
- rows/s of 2,000-row batches, single-threaded: each batch 1,000 new spans (their start rows)
  and 1,000 merges (the ends of the previous batch's spans), as a burst of short spans gives;
  median of 20 batches, and the median time `_in_sqlite` was held per batch;
- the time `_in_sqlite` is held per 100-row batch (50 new, 50 merges) while other threads run:
  2 threads spinning in pure Python (never waiting: each SQLite call of the write lets them
  take the GIL, and getting it back can take their switch intervals), and 4 threads doing
  short Python work between 0.2 ms sleeps; median, 90th percentile and max of 60 batches.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from braintrust_ollama.local import store as current_store

STORE_SOURCE = "packages/core/src/braintrust_ollama/local/store.py"
Row = dict[str, Any]


def start_row(i: int) -> Row:
    span_id = uuid.uuid4().hex
    return {
        "id": span_id,
        "span_id": span_id,
        "root_span_id": span_id,
        "span_parents": None,
        "created": "2026-11-25T23:00:00+00:00",
        "input": f"question {i} " * 5,
        "metadata": {"model": "llama3.2:1b"},
        "metrics": {"start": time.time()},
        "span_attributes": {"name": "chat", "type": "llm"},
        "_is_merge": False,
    }


def end_row(start: Row) -> Row:
    return {
        "id": start["id"],
        "span_id": start["id"],
        "root_span_id": start["id"],
        "output": "answer " * 10,
        "metrics": {"end": time.time(), "tokens": 42},
        "_is_merge": True,
    }


class Feed:
    """Batches of `size` rows: `size / 2` new spans, and the ends of the previous batch's."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pending = [start_row(i) for i in range(size // 2)]

    def first(self) -> list[Row]:
        return list(self.pending)

    def next(self) -> list[Row]:
        fresh = [start_row(i) for i in range(self.size // 2)]
        batch = fresh + [end_row(r) for r in self.pending]
        self.pending = fresh
        return batch


def _write(store: Any, rows: list[Row]) -> Any:
    """`append` (now), or `write` (revisions before the store appended)."""
    return (getattr(store, "append", None) or store.write)(rows)


class TimedLock:
    """A module's `_in_sqlite`, timing how long each hold lasts."""

    def __init__(self, module: ModuleType) -> None:
        self.module, self.lock, self.held = module, module._in_sqlite, []
        self.since = 0.0
        module._in_sqlite = self

    def __enter__(self) -> None:
        self.lock.acquire()
        self.since = time.perf_counter()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.held.append(time.perf_counter() - self.since)
        self.lock.release()

    def restore(self) -> list[float]:
        self.module._in_sqlite = self.lock
        return sorted(self.held)


def load_revision(revision: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{revision}:{STORE_SOURCE}"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "store_at_revision.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("braintrust_ollama.local._store_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def throughput(modules: dict[str, ModuleType], directory: Path) -> None:
    stores = {name: m.LocalStore(directory / f"{name}-2000.db") for name, m in modules.items()}
    feeds = {name: Feed(2000) for name in modules}
    for name, store in stores.items():
        _write(store, feeds[name].first())
    locks = {name: TimedLock(m) for name, m in modules.items()}
    rates: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(20):
        for name, store in stores.items():
            batch = feeds[name].next()
            began = time.perf_counter()
            result = _write(store, batch)
            rates[name].append(len(batch) / (time.perf_counter() - began))
            assert result.written == len(batch) and not result.failed
    for name in modules:
        held = locks[name].restore()
        print(
            f"{name}: 2,000-row batches (1,000 new spans, 1,000 merges): "
            f"{statistics.median(rates[name]):,.0f} rows/s, "
            f"_in_sqlite held {statistics.median(held) * 1000:.1f} ms a batch"
        )


def spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i


def work_and_sleep(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(300):
            x += i
        time.sleep(0.0002)


def contention(
    modules: dict[str, ModuleType],
    directory: Path,
    label: str,
    target: Callable[[threading.Event], None],
    threads: int,
) -> None:
    stores = {
        name: m.LocalStore(directory / f"{name}-{label[:8]}.db") for name, m in modules.items()
    }
    feeds = {name: Feed(100) for name in modules}
    for name, store in stores.items():
        _write(store, feeds[name].first())
    locks = {name: TimedLock(m) for name, m in modules.items()}
    stop = threading.Event()
    running = [threading.Thread(target=target, args=(stop,)) for _ in range(threads)]
    for thread in running:
        thread.start()
    try:
        for _ in range(60):
            for name, store in stores.items():
                _write(store, feeds[name].next())
    finally:
        stop.set()
        for thread in running:
            thread.join()
    for name in modules:
        held = locks[name].restore()
        print(
            f"{name}: 100-row batch, {label}: _in_sqlite held median "
            f"{statistics.median(held) * 1000:.1f} ms, p90 {held[len(held) * 9 // 10] * 1000:.1f}"
            f" ms, max {held[-1] * 1000:.1f} ms"
        )


def main() -> None:
    modules = {"now": current_store}
    if len(sys.argv) > 1:
        modules[sys.argv[1]] = load_revision(sys.argv[1])
    print(f"Python {sys.version.split()[0]}, SQLite {current_store.sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory() as directory:
        throughput(modules, Path(directory))
        contention(modules, Path(directory), "2 threads spinning in pure Python", spin, 2)
        contention(
            modules, Path(directory), "4 threads working between 0.2 ms sleeps", work_and_sleep, 4
        )


if __name__ == "__main__":
    main()
