"""Each span reads as one row, merged from the partial rows appended for it, whatever order
several processes append them in: a span's creation row arriving after later logs of it never
erases them."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from braintrust_ollama.local.store import LocalStore
from support.runner import User, report

CREATED = "2026-11-25T23:00:00.000000+00:00"
IDENTITY = {"id": "s", "span_id": "s", "root_span_id": "s", "span_parents": None}

# The rows Braintrust's `SpanImpl` logs for one span: its creation row (`created`, not a merge),
# then merges (`span.log(...)`, `span.end()`), here as a forked child and the parent log them.
START = {
    **IDENTITY,
    "created": CREATED,
    "input": "question",
    "metadata": {"model": "llama3.2:1b"},
    "metrics": {"start": 100.0},
    "span_attributes": {"name": "request", "type": "task"},
    "_is_merge": False,
}
CHILD_LOG = {**IDENTITY, "metadata": {"worker": "child"}, "_is_merge": True}
PARENT_END = {**IDENTITY, "output": "answer", "metrics": {"end": 101.0}, "_is_merge": True}
MERGED = {
    **IDENTITY,
    "created": CREATED,
    "input": "question",
    "output": "answer",
    "metadata": {"model": "llama3.2:1b", "worker": "child"},
    "metrics": {"start": 100.0, "end": 101.0},
    "span_attributes": {"name": "request", "type": "task"},
}


def _stored(tmp_path: Path, *batches: list[dict[str, Any]]) -> dict[str, Any]:
    store = LocalStore(tmp_path / "traces.db")
    for batch in batches:
        result = store.append(batch)
        assert result.failed == []
    (row,) = store.rows("s")
    return row


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([[START], [CHILD_LOG], [PARENT_END]], id="in order"),
        pytest.param([[CHILD_LOG], [START], [PARENT_END]], id="child before the start row"),
        pytest.param([[CHILD_LOG], [PARENT_END], [START]], id="start row last"),
        pytest.param([[CHILD_LOG], [START, PARENT_END]], id="start row batched with its end"),
        pytest.param([[START], [CHILD_LOG], [START], [PARENT_END]], id="start row again"),
        pytest.param([[START], [CHILD_LOG], [PARENT_END], [START]], id="everything, then again"),
        pytest.param([[CHILD_LOG], [START], [CHILD_LOG], [PARENT_END]], id="a log again"),
    ],
)
def test_a_span_is_merged_whatever_order_its_rows_arrive_in(
    tmp_path: Path, batches: list[list[dict[str, Any]]]
) -> None:
    assert _stored(tmp_path, *batches) == MERGED


def test_a_later_log_wins_over_the_creation_rows_field_and_its_identity_stays(
    tmp_path: Path,
) -> None:
    renamed = {**CHILD_LOG, "input": "rewritten", "span_parents": ["other"], "created": None}
    row = _stored(tmp_path, [renamed], [START])
    assert row["input"] == "rewritten"  # logged after the span started
    assert row["span_parents"] is None and row["created"] == CREATED  # the creation row's


def test_another_row_with_the_span_id_still_replaces_it(tmp_path: Path) -> None:
    """Braintrust's rule for a new row under an existing id (a new `created`): it replaces."""
    again = {**START, "created": "2026-11-25T23:05:00.000000+00:00", "input": "new question"}
    row = _stored(tmp_path, [START], [CHILD_LOG], [again])
    assert row == {k: v for k, v in again.items() if k != "_is_merge"}


# A parent span whose rows are still waiting for the writer while a forked child logs on it
# (a busy writer, made certain here by a long write interval).
PENDING_PARENT = """
import json, multiprocessing
import braintrust
from braintrust_ollama import init_local_logger
from braintrust_ollama.local import logger as local_logger
from braintrust_ollama.local.store import LocalStore

local_logger.WRITE_EVERY_S = 60.0  # the parent's rows stay pending until it exits
init_local_logger("pending-parent")


def child(span):
    pending = LocalStore().rows(span.root_span_id) == []  # the parent's start row not written yet
    span.log(metadata={"child": "span.log"})
    braintrust.current_span().log(metadata={"current": "current_span().log"})
    print(json.dumps({"parent_pending": pending}), flush=True)


if __name__ == "__main__":
    with braintrust.start_span(name="request") as span:
        span.log(input="question", metadata={"parent": "before fork"})
        process = multiprocessing.get_context("fork").Process(target=child, args=(span,))
        process.start()
        process.join(timeout=60)
        span.log(output="answer")
    print(json.dumps({"root": span.root_span_id, "exitcode": process.exitcode}))
"""


def test_a_forked_childs_logs_on_a_pending_parent_span_survive_its_start_row(
    user: User,
) -> None:
    result = user.run_python(PENDING_PARENT)
    outcome = report(result)
    assert outcome["exitcode"] == 0
    assert '{"parent_pending": true}' in result.stdout.splitlines()
    (row,) = user.store.rows(outcome["root"])

    assert row["span_attributes"]["name"] == "request"
    assert row["input"] == "question"  # the parent's start...
    assert row["metadata"] == {  # ...the child's logs, merged with the parent's...
        "parent": "before fork",
        "child": "span.log",
        "current": "current_span().log",
    }
    assert row["output"] == "answer"  # ...and the parent's output and end
    assert row["metrics"]["end"] >= row["metrics"]["start"]
    assert row["span_parents"] in (None, []) and row["root_span_id"] == outcome["root"]
    assert "Traceback" not in result.stderr


# --- Appending: batches change nothing, and cost a fixed number of SQLite calls ---------------


def _span(name: str, **fields: Any) -> dict[str, Any]:
    return {"id": name, "span_id": name, "root_span_id": "trace", **fields}


def _mixed_batch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows already stored, then one batch of every kind of row a write meets (hand-made rows
    shaped like Braintrust's)."""
    start = {"created": CREATED, "span_parents": None, "_is_merge": False}
    earlier = [
        _span("old", **start, input="q 🦙 ¿", metrics={"start": 1.0}),
        _span("logged early", metadata={"worker": "child"}, _is_merge=True),
        _span("id: 2 é", **start, input="an id with a colon and an accent"),
        _span("replaced", **start, input="first"),
    ]
    circular: dict[str, Any] = {"note": "refers to itself"}
    circular["self"] = circular  # not encodable as JSON: this row alone cannot be stored
    batch = [
        _span("new", **start, input="q", metrics={"start": 2.0}),
        _span("old", output="a", metrics={"end": 3.0}, _is_merge=True),  # into a stored span
        _span("repeated", **start, input="q", metrics={"start": 4.0}),
        _span("repeated", metadata={"step": 1}, _is_merge=True),
        _span("repeated", metadata=circular, _is_merge=True),  # fails; the next merges anyway
        _span("repeated", metadata={"step": 2}, output="a", _is_merge=True),
        _span("logged early", **start, input="q", metadata={"model": "m"}),  # its start, late
        _span("logged late", metadata={"worker": "child"}, _is_merge=True),
        _span("logged late", **start, input="q"),  # after its logs, in the same batch
        _span("logged late", **start, input="q"),  # the same start row again: no change
        {"input": "a row without an id is refused"},
        _span("surrogate", **start, output="half an emoji: \ud83d"),  # kept as a JSON escape
        {**_span("replaced", **start, input="second"), "created": "2026-11-25T23:05:00+00:00"},
        _span("new", output="a", metrics={"end": 5.0}, _is_merge=True),
        {"id": 7, "root_span_id": "trace", "input": "an integer id"},
        {"id": "7", "root_span_id": "trace", "output": "merged into it", "_is_merge": True},
        _span("old", metadata={"last": True}, _is_merge=True),
        _span("id: 2 é", output="merged 🦙", _is_merge=True),
    ]
    return earlier, batch


def test_a_batch_stores_what_appending_its_rows_one_by_one_stores(tmp_path: Path) -> None:
    earlier, batch = _mixed_batch()
    one_by_one = LocalStore(tmp_path / "one-by-one.db")
    for row in earlier + batch:
        one_by_one.append([row])

    store = LocalStore(tmp_path / "traces.db")
    assert store.append(earlier).failed == []
    result = store.append(batch)

    assert store.rows("trace") == one_by_one.rows("trace")
    assert [(batch.index(row), type(e).__name__) for row, e in result.failed] == [
        (4, "ValueError"),  # the circular row, alone
        (10, "TypeError"),  # the row without an id
    ]
    assert result.written == len(batch) - 2
    spans = {r["id"]: r for r in store.rows("trace")}
    assert spans["repeated"]["metadata"] == {"step": 2} and spans["repeated"]["output"] == "a"
    assert spans["logged late"]["metadata"] == {"worker": "child"}
    assert spans["replaced"]["input"] == "second"
    assert spans["7"]["output"] == "merged into it"
    assert spans["surrogate"]["output"] == "half an emoji: \ud83d"
    assert spans["old"]["metadata"] == {"last": True} and spans["old"]["output"] == "a"


def _statements(store: LocalStore, rows: list[dict[str, Any]]) -> list[str]:
    statements: list[str] = []
    store._write_connection().set_trace_callback(statements.append)
    try:
        assert store.append(rows).failed == []
    finally:
        store._write_connection().set_trace_callback(None)
    return [s.split()[0] for s in statements]


def test_an_append_calls_sqlite_a_fixed_number_of_times_whatever_its_rows(tmp_path: Path) -> None:
    """Each SQLite call lets the program's other threads take the GIL, and getting it back can
    wait their whole switch interval while the store's process lock holds up any fork: an
    append makes a few calls per 500 rows, none per row, and reads no stored row."""
    store = LocalStore(tmp_path / "traces.db")
    store.append([_span("first", created=CREATED, input="q")])
    few = _statements(store, [_span(f"span {i}", output="a", _is_merge=True) for i in range(3)])
    many = _statements(store, [_span(f"more {i}", output="a", _is_merge=True) for i in range(450)])
    assert few == many
    assert few.count("INSERT") == 2  # the rows, and their traces
    assert len(store.rows("trace")) == 454


def test_a_span_id_holding_a_nul_character_still_merges(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "traces.db")
    span = {"id": "a\x00b:1", "span_id": "s", "root_span_id": "r"}
    store.append([{**span, "input": "question", "metrics": {"start": 1.0}}])
    store.append([{**span, "_is_merge": True, "output": "answer", "metrics": {"end": 2.0}}])
    (row,) = store.rows("r")
    assert (row["input"], row["output"], row["metrics"]) == (
        "question",
        "answer",
        {"start": 1.0, "end": 2.0},
    )


def test_a_store_an_earlier_version_wrote_is_read_and_appended_to(tmp_path: Path) -> None:
    """Version 2 kept one merged row per span (`spans`); its rows are kept as appended rows."""
    path = tmp_path / "traces.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(
            "PRAGMA journal_mode = WAL;"
            "CREATE TABLE spans (id TEXT PRIMARY KEY, root_span_id TEXT NOT NULL, span_id TEXT,"
            " start REAL, row TEXT NOT NULL);"
            "CREATE TABLE attachments (key TEXT PRIMARY KEY, content_type TEXT NOT NULL,"
            " filename TEXT NOT NULL, data BLOB NOT NULL);"
            "PRAGMA user_version = 2;"
        )
        db.execute(
            "INSERT INTO spans VALUES (?, ?, ?, ?, ?)",
            ("s", "s", "s", 100.0, json.dumps({k: v for k, v in MERGED.items()})),
        )
        db.execute("INSERT INTO attachments VALUES ('k', 'image/png', 'a.png', x'89')")
    path.chmod(0o600)
    store = LocalStore(path)
    assert store.rows("s") == [MERGED]
    assert store.attachment("k") is not None
    store.append([{**IDENTITY, "_is_merge": True, "metadata": {"later": True}}])
    assert store.rows("s")[0]["metadata"] == {**MERGED["metadata"], "later": True}
    assert [t.name for t in store.traces()] == ["request"]
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # incremental, as new stores
