"""The store holds at most `max_store_mb` megabytes: past it, the oldest traces are dropped,
whole, and `braintrust-ollama traces` says so."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from braintrust_ollama.local.store import DEFAULT_MAX_STORE_MB, LocalStore, max_store_bytes
from support.runner import User, report

# 400 traces of one 10 KB span each: 4 MB of prompts, twice the bound the program sets.
BUSY_APP = """
import json, sys
import braintrust, braintrust_ollama
braintrust_ollama.init_local_logger(project="busy", max_store_mb=float(sys.argv[1]))
for n in range(400):
    with braintrust.start_span(name=f"request {n}") as span:
        span.log(input="x" * 10_000, output=n)
    if n % 50 == 49:
        braintrust.flush()
print(json.dumps({"done": n}))
"""


def _size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in path.parent.glob(path.name + "*"))


@pytest.mark.parametrize("via", ["argument", "environment"])
def test_a_busy_program_keeps_the_store_under_its_bound_dropping_the_oldest_traces_whole(
    user: User, via: str
) -> None:
    bound_mb = 2.0
    if via == "environment":
        app = BUSY_APP.replace("max_store_mb=float(sys.argv[1])", "")
        done = user.run_python(app, env={"BRAINTRUST_OLLAMA_MAX_STORE_MB": str(bound_mb)})
    else:
        done = user.run_python(BUSY_APP, str(bound_mb))
    assert report(done) == {"done": 399}
    assert "Traceback" not in done.stderr

    size = _size(user.store_path)  # the file and SQLite's -wal/-shm beside it
    print(f"\nstore after 400 x 10 KB spans, bound {bound_mb} MB: {size / 1e6:.2f} MB")
    assert size <= bound_mb * 1_000_000
    kept = user.store.traces(limit=1_000)
    names = [t.name for t in kept]
    # The newest traces are kept, each whole, and the oldest are gone, each whole.
    assert 50 <= len(kept) < 400
    assert names == [f"request {n}" for n in range(399, 399 - len(kept), -1)]
    assert all(t.spans == 1 and t.duration_s is not None for t in kept)
    dropped = user.store.dropped()
    assert dropped.traces == 400 - len(kept)
    assert dropped.rows == 3 * dropped.traces  # each span's start, log and end
    assert dropped.last_at is not None

    listing = user.cli("traces", "-n", "1")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[-1].startswith(
        f"{dropped.traces} older traces ({dropped.rows} rows) were dropped to keep the store"
        f" under 2 MB (BRAINTRUST_OLLAMA_MAX_STORE_MB), last at "
    )


def test_late_rows_of_a_dropped_trace_are_not_stored(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "traces.db", max_store_mb=0.2)

    def span(n: int, **fields: object) -> dict[str, object]:
        return {"id": f"s{n}", "span_id": f"s{n}", "root_span_id": f"s{n}", **fields}

    store.append([span(0, input="first", metrics={"start": 1.0})])
    for n in range(1, 40):  # 40 x 10 KB: twice the bound
        store.append([span(n, input="x" * 10_000, metrics={"start": float(n)})])
    assert store.rows("s0") == []
    result = store.append([span(0, _is_merge=True, output="late", metrics={"end": 2.0})])
    assert (result.written, result.skipped) == (0, 1)
    assert store.rows("s0") == []


def test_the_bound_defaults_to_200_mb_and_a_bad_setting_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BRAINTRUST_OLLAMA_MAX_STORE_MB", raising=False)
    assert DEFAULT_MAX_STORE_MB == 200 and max_store_bytes() == 200_000_000
    monkeypatch.setenv("BRAINTRUST_OLLAMA_MAX_STORE_MB", "50")
    assert max_store_bytes() == 50_000_000
    assert max_store_bytes(1.5) == 1_500_000  # the argument wins
    for bad in ("lots", "0", "-3"):
        monkeypatch.setenv("BRAINTRUST_OLLAMA_MAX_STORE_MB", bad)
        assert max_store_bytes() == 200_000_000
