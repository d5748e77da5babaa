"""`braintrust-ollama traces push`: stored traces go to a Braintrust project once online, by
span id, so pushing twice never duplicates (against a fake Braintrust API on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from braintrust_ollama.local.store import attachment_keys
from local.programs import Program, all_rows, report
from local.test_attachments import PNG
from support.fake_braintrust import API_KEY, FakeBraintrust

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


def _push(program: Program, api: FakeBraintrust, *args: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("braintrust-ollama")
    env = {**program.env, "BRAINTRUST_API_KEY": API_KEY, "BRAINTRUST_APP_URL": api.url}
    return subprocess.run(
        [str(command), "traces", "push", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_push_twice_sends_each_span_once(program: Program) -> None:
    root = report(program.run(OFFLINE_APP))["root"]
    local = {r["id"]: r for r in all_rows(program.store)}
    assert len(local) == 3
    (key,) = attachment_keys(list(local.values()))  # the image, stored once
    stored = program.store.attachment(key)
    assert stored is not None and stored.data == PNG

    pushes = [("last",), (root[:8],), ("--since", "1h")]
    results, uploads, seconds = [], [], []
    with FakeBraintrust() as api:
        for push in pushes:
            started = time.perf_counter()
            results.append(_push(program, api, *push, "--project", "from-my-laptop"))
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


def test_push_without_a_trace_or_since_is_a_usage_error(program: Program) -> None:
    with FakeBraintrust() as api:
        result = _push(program, api, "--project", "p")
    assert result.returncode == 2
    assert result.stderr == "braintrust-ollama: push takes a trace (ID or last) or --since\n"


def test_a_refused_push_says_so_in_one_line_and_exits_1(program: Program) -> None:
    report(program.run(OFFLINE_APP))
    with FakeBraintrust("logs-500") as api:  # logs in, then refuses every row
        result = _push(program, api, "last", "--project", "p")
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("braintrust-ollama: error: Braintrust did not take every row (")
    assert 'Error: 500: {"error": "database unavailable"}' in line
    assert line.endswith("push again: nothing is duplicated")
