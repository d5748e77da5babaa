"""The store is written off the caller's thread: a traced program never waits on it, and what it
logs is stored on a timer, at flush and at exit, a bad row costing no other row."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import braintrust
import pytest
from braintrust.util import LazyValue
from braintrust_ollama.local import logger as local_logger
from braintrust_ollama.local.store import LocalStore
from support.runner import User, report
from support.spans import stored_rows

# Holds the store's write lock (as another process writing a big batch would) until told.
LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
"""


def _lock_the_store(user: User) -> subprocess.Popen[str]:
    """Another process, holding the store's write lock until it reads a line on its stdin."""
    locker = user.start_python(LOCKER, str(user.store_path), name="locker.py")
    assert locker.stdout is not None and locker.stdin is not None
    assert locker.stdout.readline() == "locked\n"
    return locker


# An asyncio app making traced Ollama calls while the store is locked, watching its loop's lag.
ASYNC_APP = """
import asyncio, json, sys, time
import braintrust, ollama
from braintrust_ollama import init_local_logger, setup_ollama

init_local_logger("lock-test")
setup_ollama()
client = ollama.AsyncClient()

async def lag_monitor(lags, stop):
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append(time.perf_counter() - before - 0.005)

async def calls(at_least, n_seconds):
    latencies = []
    started = time.perf_counter()
    while len(latencies) < at_least or time.perf_counter() - started < n_seconds:
        before = time.perf_counter()
        with braintrust.start_span(name="request") as span:
            reply = await client.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "hi"}])
            span.log(output=reply["message"]["content"])
        latencies.append(time.perf_counter() - before)
        await asyncio.sleep(0.02)
    return latencies

async def main():
    await calls(5, 0)  # warm up: the store exists, the writer thread runs
    braintrust.flush()
    print("ready", flush=True)
    sys.stdin.readline()  # the store is now locked by another process
    lags, stop = [], asyncio.Event()
    monitor = asyncio.create_task(lag_monitor(lags, stop))
    latencies = await calls(20, 2.5)  # past LOCK_WAIT_S: the writer waits for the lock, fails
    stop.set()
    await monitor
    print(json.dumps({"calls": len(latencies), "max_latency": max(latencies),
                      "max_lag": max(lags)}), flush=True)
    sys.stdin.readline()  # the lock is released
    before = time.perf_counter()
    braintrust.flush()
    print(json.dumps({"flush_s": time.perf_counter() - before}), flush=True)

asyncio.run(main())
"""


def test_a_locked_store_never_stalls_calls_nor_the_event_loop_and_loses_no_row(
    user: User,
) -> None:
    app = user.start_python(ASYNC_APP)
    try:
        assert app.stdout is not None and app.stdin is not None
        assert app.stdout.readline() == "ready\n", app.stderr and app.stderr.read()
        warm = len(stored_rows(user.store))
        locker = _lock_the_store(user)
        app.stdin.write("go\n")
        app.stdin.flush()
        during = json.loads(app.stdout.readline())
        stored_while_locked = len(stored_rows(user.store))  # WAL: reading needs no lock
        locker.stdin.write("release\n")
        locker.stdin.flush()
        assert locker.wait(timeout=30) == 0
        app.stdin.write("released\n")
        app.stdin.flush()
        flushed = json.loads(app.stdout.readline())
        assert app.wait(timeout=30) == 0
    finally:
        app.kill()

    print(f"\nwhile locked: {during}; flush after release: {flushed}")
    assert stored_while_locked == warm  # the lock held: nothing could be written meanwhile
    # The lock is held from before the first of these calls until after the last (the steps
    # above, in order), and the writer tries to write meanwhile: each try waits for the lock up
    # to LOCK_WAIT_S (1 s). A call, or the event loop, held up by a try would wait the rest of
    # it: with a call every 20 ms, most of it. One that is not takes milliseconds; half of
    # LOCK_WAIT_S leaves a loaded 2-core machine hundreds of them.
    blocked_s = local_logger.LOCK_WAIT_S / 2
    assert during["max_latency"] < blocked_s, during
    assert during["max_lag"] < blocked_s, during
    rows = stored_rows(user.store)
    requests = [r for r in rows if r["span_attributes"]["name"] == "request"]
    chats = [r for r in rows if r["span_attributes"]["name"] == "ollama.chat"]
    assert len(requests) == len(chats) == warm // 2 + during["calls"]
    assert all(r["output"] and r["metrics"].get("end") for r in requests + chats)


IDLE_APP = """
import json, time
import braintrust, ollama
from braintrust_ollama import init_local_logger, setup_ollama
from braintrust_ollama.local.logger import WRITE_EVERY_S
from braintrust_ollama.local.store import LocalStore, default_store_path

init_local_logger("idle")
setup_ollama()
for question in ("one", "two", "three"):
    ollama.chat(model="llama3.2:1b", messages=[{"role": "user", "content": question}])
last_call = time.monotonic()
store = LocalStore(default_store_path())
stored = 0
while time.monotonic() - last_call < 5:  # the program idles; the store is polled, not flushed
    stored = sum(t.spans for t in store.traces())
    if stored == 3:
        break
    time.sleep(0.01)
print(json.dumps({"stored": stored, "after_s": time.monotonic() - last_call,
                  "period_s": WRITE_EVERY_S}))
"""


def test_an_idle_programs_spans_are_stored_within_the_write_period(user: User) -> None:
    result = report(user.run_python(IDLE_APP))
    print(f"\nidle program: {result}")
    assert result["stored"] == 3
    assert result["after_s"] < result["period_s"] + 0.25


def test_a_row_that_cannot_be_stored_costs_no_other_row(
    tmp_path: Path, restore_braintrust: None, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "traces.db")
    logger = local_logger.init_local_logger("bad-row", path=store.path)
    for i in range(10):
        with braintrust.start_span(name=f"good {i}") as span:
            span.log(output=f"answer {i}")
    with braintrust.start_span(name="lone surrogate") as span:
        span.log(output="half an emoji: \ud83d")  # not UTF-8: SQLite cannot hold it as text
    # Hand-made: a row whose resolution fails (as one whose parent cannot be resolved would).
    logger.logging_state.global_bg_logger().log(
        LazyValue(lambda: 1 / 0, use_mutex=False)  # type: ignore[arg-type,return-value]
    )
    for i in range(10, 20):
        with braintrust.start_span(name=f"good {i}") as span:
            span.log(output=f"answer {i}")
    braintrust.flush()

    rows = {r["span_attributes"]["name"]: r for r in stored_rows(store)}
    assert sorted(rows) == sorted([f"good {i}" for i in range(20)] + ["lone surrogate"])
    assert all(rows[f"good {i}"]["output"] == f"answer {i}" for i in range(20))
    assert rows["lone surrogate"]["output"] == "half an emoji: \ud83d"  # kept, as a JSON escape
    where, line = capsys.readouterr().err.splitlines()
    assert where.startswith("braintrust-ollama: traces go to the local store")
    assert line.startswith(
        f"braintrust-ollama: a trace row could not be stored in {store.path} and was skipped"
    )
    assert "ZeroDivisionError" in line


def test_rows_past_the_pending_cap_are_dropped_and_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path / "traces.db")
    copy = local_logger.LocalCopy(store, max_pending_rows=5)
    rows = [
        LazyValue(lambda i=i: {"id": f"row {i}", "root_span_id": f"row {i}"}, use_mutex=False)
        for i in range(200)  # hand-made rows
    ]
    copy.add(rows)  # one call: the writer cannot take rows in between
    copy.close()

    stored = stored_rows(store)
    assert sorted(r["id"] for r in stored) == [f"row {i}" for i in range(5)]
    assert capsys.readouterr().err.splitlines() == [
        "braintrust-ollama: more than 5 trace rows are waiting to be written to"
        f" {store.path}; new rows are not kept there (and counted) until the writer catches up",
        "braintrust-ollama: 195 trace rows were not kept in the local store (more than 5 were"
        " waiting to be written)",
    ]


def test_a_store_file_removed_while_the_program_runs_is_made_again(tmp_path: Path) -> None:
    """The writer keeps its connection between writes; one to a removed file would write rows
    nowhere. The next write after `rm traces.db` makes the file again and stores its rows."""
    path = tmp_path / "store" / "traces.db"
    store = LocalStore(path)

    def row(name: str) -> dict[str, object]:
        return {"id": name, "span_id": name, "root_span_id": name,
                "span_attributes": {"name": name}, "metrics": {"start": 1.0, "end": 2.0}}  # fmt: skip

    store.append([row("before")])
    for leftover in path.parent.iterdir():  # the file, and SQLite's -wal and -shm beside it
        leftover.unlink()
    store.append([row("after")])

    assert [r["id"] for r in LocalStore(path).rows("after")] == ["after"]
    assert LocalStore(path).rows("before") == []
    assert path.stat().st_mode & 0o777 == 0o600


# Its only rows are logged at exit (a stream the exit pass finishes: on Python 3.12+ no writer
# thread can start then, so they are written inline), and its store cannot be written.
STREAM_LEFT_ON_AN_UNWRITABLE_STORE = """
import time
import ollama
from braintrust_ollama import init_local_logger, setup_ollama

init_local_logger("unwritable")
setup_ollama()
stream = ollama.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "Hi"}], stream=True)
next(stream)
print("exiting at", time.time(), flush=True)
"""


def test_an_unwritable_store_at_exit_costs_the_exit_bound_at_most(user: User) -> None:
    not_a_directory = user.home / "store-home"
    not_a_directory.parent.mkdir(parents=True, exist_ok=True)
    not_a_directory.write_text("a file where the store's directory should be")
    done = user.run_python(
        STREAM_LEFT_ON_AN_UNWRITABLE_STORE, env={"BRAINTRUST_OLLAMA_HOME": str(not_a_directory)}
    )
    ended = time.time()
    assert done.returncode == 0, done.stderr
    (last_line,) = done.stdout.splitlines()
    exit_wait = ended - float(last_line.removeprefix("exiting at "))
    print(f"\nexit with an unwritable store: {exit_wait:.2f} s")
    # At most 1 s for the local copy while it fails (not the exit's 5 s), plus the interpreter's
    # teardown and a loaded machine's scheduling: 1 s.
    assert exit_wait < local_logger.FAILING_WAIT_S + 1.0
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[1].startswith(f"braintrust-ollama: the local store {not_a_directory / 'traces.db'}"
                               " cannot be written (NotADirectoryError: ")  # fmt: skip
    assert lines[2].startswith(
        "braintrust-ollama: 1 trace rows were not written to the local store"
    )
    assert len(lines) == 3


# A Pool run while another process holds the store's write lock: past 1 s the store counts as
# failing, and a worker waits for its rows before each result at most 1 s.
POOL_ON_A_LOCKED_STORE = """
import json, multiprocessing, time
import braintrust
from braintrust_ollama import init_local_logger
from braintrust_ollama.local import logger as local_logger
from braintrust_ollama.local.store import LocalStore, default_store_path

init_local_logger("locked-pool")

def task(n):
    with braintrust.start_span(name=f"task {n}"):
        return n

if __name__ == "__main__":
    LocalStore(default_store_path()).append([])  # the file exists, for the locker
    print("ready", flush=True)
    input()  # locked
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        done = pool.map(task, range(8), chunksize=1)
    print(json.dumps({"done": sum(done), "map_s": time.perf_counter() - started}), flush=True)
"""


def test_a_pool_on_a_locked_store_waits_once_per_worker_and_says_so(user: User) -> None:
    app = user.start_python(POOL_ON_A_LOCKED_STORE)
    locker = None
    try:
        assert app.stdout is not None and app.stdin is not None
        assert app.stdout.readline() == "ready\n", app.stderr and app.stderr.read()
        locker = _lock_the_store(user)
        app.stdin.write("go\n")
        app.stdin.flush()
        result = json.loads(app.stdout.readline())
        assert app.wait(timeout=30) == 0
        stderr = app.stderr.read() if app.stderr else ""
    finally:
        app.kill()
        if locker is not None:
            locker.kill()

    print(f"\nPool of 2 on a locked store: {result}")
    assert result["done"] == sum(range(8))
    # Each worker waits once (1 s), at the same time as the other, not once per result nor
    # holding the pool's result lock: before, 8 results took 8 waits one after the other.
    assert 1.0 <= result["map_s"] < 2.5
    assert stderr.count("took no rows in time") == 2  # one line per worker
    assert "Traceback" not in stderr


# Daemon threads that never stop logging, still running when the program ends.
DAEMONS_LOGGING_AT_EXIT = """
import threading, time
import braintrust
from braintrust_ollama import init_local_logger

init_local_logger("daemons-at-exit")

def busy():
    while True:
        with braintrust.start_span(name="busy") as span:
            span.log(input="x")

for _ in range(2):
    threading.Thread(target=busy, daemon=True).start()
time.sleep(1.0)
print(time.time(), flush=True)
"""


def test_threads_still_logging_at_exit_cost_the_exit_bound_at_most(user: User) -> None:
    done = user.run_python(DAEMONS_LOGGING_AT_EXIT)
    ended = time.time()
    exit_wait = ended - float(done.stdout.split()[0])
    print(f"\nexit wait with two threads logging: {exit_wait:.2f} s")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    # The exit's bound, plus the interpreter's own teardown; before, rows the threads logged
    # after the exit flush each waited again, and exit took 5 - 9 s.
    assert exit_wait < local_logger.EXIT_TIMEOUT_S + 1.0
    with sqlite3.connect(user.store_path) as db:
        assert db.execute("SELECT count(*) FROM rows").fetchone()[0] > 0
