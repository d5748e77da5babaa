"""Several processes on one store: workers, multiprocessing children (fork and spawn, `Process`
and `Pool`) lose no row, never hang, and never clobber the parent's rows."""

from __future__ import annotations

import time

from support.runner import User, report
from support.spans import stored_rows

SPANS_PER_WORKER = 500

# A worker process of a web server: its own spans, each with input, output and an end.
WORKER = """
import sys
import braintrust
from braintrust_ollama import init_local_logger

init_local_logger("workers")
worker = sys.argv[1]
sys.stdin.readline()  # all workers start together
for i in range(int(sys.argv[2])):
    with braintrust.start_span(name=f"worker {worker} request {i}") as span:
        span.log(input={"i": i}, output={"worker": worker, "i": i})
"""


def test_four_processes_of_500_spans_on_one_store_lose_no_row(user: User) -> None:
    script = user.write(WORKER, "worker.py")
    workers = [user.start_python(script, str(w), str(SPANS_PER_WORKER)) for w in range(4)]
    started = time.perf_counter()
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    for worker in workers:
        assert worker.wait(timeout=60) == 0, worker.stderr and worker.stderr.read()
    elapsed = time.perf_counter() - started
    rows = stored_rows(user.store)
    print(f"\n4 x {SPANS_PER_WORKER} spans, logged and stored in {elapsed:.2f} s")

    assert len(rows) == 4 * SPANS_PER_WORKER
    assert sorted(r["span_attributes"]["name"] for r in rows) == sorted(
        f"worker {w} request {i}" for w in range(4) for i in range(SPANS_PER_WORKER)
    )
    for row in rows:  # each span merged: start, log and end rows in one
        assert row["input"]["i"] == row["output"]["i"]
        assert row["metrics"]["end"] >= row["metrics"]["start"]


# A parent span still pending (not written) when the children start; children make Ollama calls.
# Tracing is set up at import, so that spawned children (which import this module) have it too.
FORKED_CHILDREN = """
import json, multiprocessing, sys
import braintrust, ollama
from braintrust_ollama import init_local_logger, setup_ollama

init_local_logger("children")
setup_ollama()

def child(n):
    with braintrust.start_span(name=f"child {n}"):
        for i in range(3):
            ollama.chat(model="llama3.2:1b", messages=[{"role": "user", "content": f"{n}.{i}"}])

def pooled(n):
    with braintrust.start_span(name=f"task {n}") as span:
        reply = ollama.generate(model="llama3.2:1b", prompt=f"task {n}")
        span.log(output=reply["response"])
    return n

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    with braintrust.start_span(name="parent") as parent:
        parent.log(input="fan out")
        children = [context.Process(target=child, args=(n,)) for n in range(3)]
        for process in children:
            process.start()
        for process in children:
            process.join(timeout=60)
        with context.Pool(4) as pool:
            done = pool.map(pooled, range(12))
            pool.close()  # the workers exit (and write their rows) instead of being killed
            pool.join()
        parent.log(output={"children": [p.exitcode for p in children], "tasks": done})
    print(json.dumps({"exitcodes": [p.exitcode for p in children]}))
"""


def _check_children(user: User, method: str) -> None:
    result = user.run_python(FORKED_CHILDREN, method)
    assert report(result) == {"exitcodes": [0, 0, 0]}
    rows = stored_rows(user.store)
    names = sorted(r["span_attributes"]["name"] for r in rows)
    assert names == sorted(
        ["parent"]
        + [f"child {n}" for n in range(3)]
        + ["ollama.chat"] * 9
        + [f"task {n}" for n in range(12)]
        + ["ollama.generate"] * 12
    )
    assert len({r["id"] for r in rows}) == len(rows)
    (parent,) = [r for r in rows if r["span_attributes"]["name"] == "parent"]
    assert parent["input"] == "fan out"  # the children did not replace the parent's row
    assert parent["output"] == {"children": [0, 0, 0], "tasks": list(range(12))}
    assert parent["metrics"]["end"] >= parent["metrics"]["start"]
    for row in rows:
        assert row["metrics"].get("end"), row["span_attributes"]["name"]
    assert "Traceback" not in result.stderr


def test_forked_process_and_pool_children_store_their_spans_without_clobbering_the_parent(
    user: User,
) -> None:
    _check_children(user, "fork")


def test_spawned_process_and_pool_children_store_their_spans(user: User) -> None:
    _check_children(user, "spawn")


# Children forked while a thread of the parent keeps the writer busy.
FORK_WHILE_WRITING = """
import json, os, threading
import braintrust
from braintrust_ollama import init_local_logger

init_local_logger("fork-while-writing")
stop = threading.Event()

def busy():
    i = 0
    while not stop.is_set():
        with braintrust.start_span(name="busy") as span:
            span.log(output="x" * 2000)
        i += 1
        if i % 200 == 0:
            braintrust.flush()

thread = threading.Thread(target=busy)
thread.start()
children = []
for n in range(8):
    pid = os.fork()
    if pid == 0:
        with braintrust.start_span(name=f"forked {n}"):
            pass
        braintrust.flush()
        os._exit(0)
    children.append(pid)
statuses = [os.waitpid(pid, 0)[1] for pid in children]
stop.set()
thread.join()
print(json.dumps({"statuses": statuses}))
"""


def test_children_forked_while_the_parent_writes_never_hang(user: User) -> None:
    result = report(user.run_python(FORK_WHILE_WRITING))
    assert result == {"statuses": [0] * 8}
    names = [r["span_attributes"]["name"] for r in stored_rows(user.store)]
    assert sorted(n for n in names if n != "busy") == [f"forked {n}" for n in range(8)]
    assert names.count("busy") > 0


# Leaving `with Pool()` terminates the workers (SIGTERM) while the parent holds their task lock;
# so does `pool.terminate()`. A worker's rows are stored before its results reach the parent, so
# none is lost however the pool is left, and every worker still ends by SIGTERM, as untraced.
TERMINATED_POOLS = """
import json, multiprocessing, sys
import braintrust, ollama
from braintrust_ollama import init_local_logger, setup_ollama

init_local_logger("terminated")
setup_ollama()

def task(n):
    with braintrust.start_span(name=f"task {n}"):
        ollama.generate(model="llama3.2:1b", prompt=f"task {n}")
        return n

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    done = []
    for round in range(int(sys.argv[2])):
        tasks = range(8 * round, 8 * round + 8)
        if round % 3 == 0:
            with context.Pool(4) as pool:
                done.append(sum(pool.map(task, tasks)))
        elif round % 3 == 1:
            with context.Pool(4) as pool:
                done.append(sum(pool.imap_unordered(task, tasks)))
        else:
            pool = context.Pool(4)
            done.append(sum(r.get(60) for r in [pool.apply_async(task, (n,)) for n in tasks]))
            pool.terminate()
    print(json.dumps({"done": done}))
"""


def _check_terminated_pools(user: User, method: str, rounds: int) -> None:
    started = time.perf_counter()
    result = report(user.run_python(TERMINATED_POOLS, method, str(rounds)))
    elapsed = time.perf_counter() - started
    print(f"\n{rounds} terminated pools of 4 ({method}): {elapsed:.2f} s")
    assert result == {"done": [sum(range(8 * r, 8 * r + 8)) for r in range(rounds)]}
    rows = stored_rows(user.store)
    names = [r["span_attributes"]["name"] for r in rows]
    assert sorted(n for n in names if n != "ollama.generate") == sorted(
        f"task {n}" for n in range(8 * rounds)
    )
    assert names.count("ollama.generate") == 8 * rounds
    for row in rows:
        assert row["metrics"].get("end"), row["span_attributes"]["name"]


def test_terminated_pools_lose_no_row_and_never_hang_fork(user: User) -> None:
    _check_terminated_pools(user, "fork", rounds=12)


def test_terminated_pools_lose_no_row_and_never_hang_spawn(user: User) -> None:
    _check_terminated_pools(user, "spawn", rounds=3)


# A child forked from a thread, whose thread then returns: untraced, the child ends there (its
# last thread ended, with no exit code run). Traced, the store's writer must not keep it alive.
FORKED_FROM_A_THREAD = """
import json, os, threading, time
import braintrust
from braintrust_ollama import init_local_logger

init_local_logger("forked-from-a-thread")
statuses = []

def work(n):
    pid = os.fork()
    if pid == 0:
        with braintrust.start_span(name=f"child {n}"):
            pass
        return  # the child's only thread ends here
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            statuses.append(status)
            return
        time.sleep(0.05)  # polling a child with a deadline: no hang if it never ends
    os.kill(pid, 9)
    statuses.append("hung")

threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"statuses": statuses}))
"""


def test_children_forked_from_a_thread_end_when_their_thread_does(user: User) -> None:
    assert report(user.run_python(FORKED_FROM_A_THREAD)) == {"statuses": [0, 0]}
    names = sorted(r["span_attributes"]["name"] for r in stored_rows(user.store))
    assert names == ["child 0", "child 1"]
