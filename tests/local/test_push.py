"""`braintrust-ollama traces push`: stored traces go to a Braintrust project once online, by
span id, so pushing twice never duplicates (against a fake Braintrust API on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import time

import pytest
from braintrust_ollama.local.store import LocalStore, attachment_keys
from local.test_attachments import PNG
from support.fake_braintrust import API_KEY, FakeBraintrust
from support.runner import User, report
from support.spans import stored_rows

OFFLINE_APP = f"""
import json
import braintrust, ollama
from braintrust_ollama import init_local_logger, setup_ollama

init_local_logger("offline-work")
setup_ollama()
with braintrust.start_span(name="describe") as span:
    reply = ollama.chat(
        model="llava",
        messages=[{{"role": "user", "content": "What is it?", "images": [{PNG!r}]}}],
    )
    ollama.generate(model="llama3.2:1b", prompt="Say it shorter: " + reply["message"]["content"])
    span.log(output="done")
print(json.dumps({{"root": span.root_span_id}}))
"""


def _push(user: User, api: FakeBraintrust, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"BRAINTRUST_API_KEY": API_KEY, "BRAINTRUST_APP_URL": api.url}
    return user.cli("traces", "push", *args, env=env)


def test_push_twice_sends_each_span_once(user: User) -> None:
    root = report(user.run_python(OFFLINE_APP))["root"]
    local = {r["id"]: r for r in stored_rows(user.store)}
    assert len(local) == 3
    (key,) = attachment_keys(list(local.values()))  # the image, stored once
    stored = user.store.attachment(key)
    assert stored is not None and stored.data == PNG

    pushes = [("last",), (root[:8],), ("--since", "1h")]
    results, uploads, seconds = [], [], []
    with FakeBraintrust() as api:
        for push in pushes:
            started = time.perf_counter()
            results.append(_push(user, api, *push, "--project", "from-my-laptop"))
            seconds.append(time.perf_counter() - started)
            assert results[-1].returncode == 0, results[-1].stderr
            uploads.append(dict(api.uploads))  # what this push uploaded, by key
            api.uploads.clear()

    print(f"\npushes (3 spans, 1 attachment) took {', '.join(f'{t:.2f}' for t in seconds)} s")
    (project_id,) = api.projects.values()
    expected = (
        f"pushed {root}\n"
        f"Pushed 1 traces (3 spans, 1 attachments) to Braintrust project 'from-my-laptop'"
        f" (id {project_id}).\n"
    )
    assert [r.stdout for r in results] == [expected] * 3
    assert results[0].stderr == ""
    assert len(api.rows) == 3 * 3  # each push sent each span once...
    remote = {r["id"]: r for r in api.project_rows("from-my-laptop")}
    assert remote.keys() == local.keys()  # ...and Braintrust keeps one row per span
    for row_id, row in remote.items():
        for field in ("span_id", "root_span_id", "span_parents", "input", "output", "metrics"):
            assert row.get(field) == local[row_id].get(field), field  # references included
        assert row["project_id"] == project_id and row["log_id"] == "g"
    # Every push references and uploads the image under its stored key: no new object.
    assert [attachment_keys(r) for r in api.rows] == [
        attachment_keys(r) for r in local.values()
    ] * 3
    assert uploads == [{key: PNG}] * 3
    assert [path for method, path in api.requests if method == "PUT"] == [f"/upload/{key}"] * 3
    assert api.unknown == []


def test_push_without_a_trace_or_since_is_a_usage_error(user: User) -> None:
    with FakeBraintrust() as api:
        result = _push(user, api, "--project", "p")
    assert result.returncode == 2
    assert result.stderr == "braintrust-ollama: push takes a trace (ID or last) or --since\n"


def test_a_refused_push_says_so_in_one_line_and_exits_1(user: User) -> None:
    report(user.run_python(OFFLINE_APP))
    with FakeBraintrust("logs-500") as api:  # logs in, then refuses every row
        result = _push(user, api, "last", "--project", "p")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "braintrust-ollama: Braintrust did not take every trace (HTTP 500 at push): pushed 0 of"
        " 1 traces (0 spans); push again to send the rest: nothing is duplicated"
    ]


def _backlog(store: LocalStore, traces: int, spans_each: int) -> list[str]:
    """A store holding `traces` traces of `spans_each` spans (hand-made rows shaped like
    Braintrust's: a root and its children, each a creation row then its end)."""
    roots, rows = [], []
    for t in range(traces):
        root = f"{t:08d}-root"
        roots.append(root)
        for s in range(spans_each):
            span = root if s == 0 else f"{t:08d}-{s}"
            identity = {"id": span, "span_id": span, "root_span_id": root,
                        "span_parents": None if s == 0 else [root]}  # fmt: skip
            rows.append({**identity, "created": "2026-12-06T10:00:00Z", "input": f"q {t}.{s}",
                         "metrics": {"start": 1_800_000_000.0 + t}, "_is_merge": False,
                         "span_attributes": {"name": f"span {s}", "type": "task"}})  # fmt: skip
            rows.append({**identity, "output": "a", "metrics": {"end": 1_800_000_001.0 + t},
                         "_is_merge": True})  # fmt: skip
    for start in range(0, len(rows), 5_000):
        assert store.append(rows[start : start + 5_000]).failed == []
    return roots


def test_a_backlog_larger_than_braintrusts_queue_is_pushed_whole_and_exactly_reported(
    user: User,
) -> None:
    """Braintrust's queue holds 25,000 rows and drops the oldest past that: a push sends
    batches it can hold, and says what it took."""
    roots = _backlog(user.store, traces=2_600, spans_each=10)
    with FakeBraintrust() as api:
        started = time.perf_counter()
        result = _push(user, api, "--since", "2020-01-01", "--project", "backlog")
        seconds = time.perf_counter() - started
        received = {r["id"] for r in api.rows}
    print(f"\npushed 26,000 spans in {seconds:.1f} s")
    assert result.returncode == 0, result.stderr
    *pushed, summary = result.stdout.splitlines()
    assert pushed == [f"pushed {root}" for root in roots]
    assert summary.startswith("Pushed 2600 traces (26000 spans) to Braintrust project 'backlog'")
    assert len(received) == len(api.rows) == 26_000


@pytest.mark.parametrize("fault", ["uploads never answer", "gone mid-push"])
def test_a_push_braintrust_stops_taking_ends_in_bounded_time_saying_what_it_sent(
    user: User, fault: str
) -> None:
    roots = _backlog(user.store, traces=30, spans_each=100)  # 3 batches of 1,000 spans
    with FakeBraintrust("ok") as api:
        if fault == "uploads never answer":
            api.mode = "logs-hang"
        else:  # Braintrust takes the first batch, then fails
            original = api._insert

            def insert_then_fail(rows: list[dict]) -> None:
                original(rows)
                api.mode = "logs-500"

            api._insert = insert_then_fail  # type: ignore[method-assign]
        started = time.perf_counter()
        timeout = ("--timeout", "2") if fault == "uploads never answer" else ()
        result = _push(user, api, "--since", "2020-01-01", "--project", "p", *timeout)
        elapsed = time.perf_counter() - started
        taken = len({r["id"] for r in api.rows})
        # Once it answers again, pushing again sends the rest, each span once.
        api.mode = "ok"
        api._insert = original if fault == "gone mid-push" else api._insert  # type: ignore[method-assign]
        again = _push(user, api, "--since", "2020-01-01", "--project", "p")
        kept = api.project_rows("p")
    print(f"\n{fault}: the push ended after {elapsed:.2f} s")
    assert result.returncode == 1
    pushed = result.stdout.splitlines()
    (line,) = result.stderr.splitlines()
    if fault == "uploads never answer":
        assert elapsed < 2 + 3  # the timeout, plus starting the command and its login
        assert (pushed, taken) == ([], 0)
        assert line == (
            "braintrust-ollama: Braintrust did not take every trace (no answer from Braintrust"
            " within 2 s): pushed 0 of 30 traces (0 spans); push again to send the rest:"
            " nothing is duplicated"
        )
    else:
        assert elapsed < 5 + 3  # Braintrust's 3 tries of the batch it refused (about 3 s)
        assert taken == 1_000 and pushed == [f"pushed {root}" for root in roots[:10]]
        assert line == (
            "braintrust-ollama: Braintrust did not take every trace (HTTP 500 at push): pushed 10"
            " of 30 traces (1000 spans); push again to send the rest: nothing is duplicated"
        )
    assert again.returncode == 0, again.stderr
    assert len(kept) == 3_000 == len({r["id"] for r in kept})
