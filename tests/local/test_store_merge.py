"""Each span is one row in the store, merged from its partial rows whatever order several
processes write them in: a span's creation row arriving after later logs of it never erases them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from braintrust_ollama.local.store import LocalStore
from local.programs import Program, report

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
        result = store.write(batch)
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
    program: Program,
) -> None:
    result = program.run(PENDING_PARENT)
    outcome = report(result)
    assert outcome["exitcode"] == 0
    assert '{"parent_pending": true}' in result.stdout.splitlines()
    (row,) = program.store.rows(outcome["root"])

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
