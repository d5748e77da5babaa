"""The local trace store: the rows Braintrust would receive, kept in one SQLite file per user.

Where it lives: `$BRAINTRUST_OLLAMA_HOME/traces.db` when that variable is set, otherwise the
per-user data directory (`$XDG_DATA_HOME/braintrust-ollama/traces.db`, by default
`~/.local/share/braintrust-ollama/traces.db` on Linux, `~/Library/Application
Support/braintrust-ollama/traces.db` on macOS, `%LOCALAPPDATA%\\braintrust-ollama\\traces.db` on
Windows).

A span reaches Braintrust as several partial rows with the same `id` (one when it starts, more
when it logs or ends). The store merges them the way Braintrust's server does, so each span is
one row: what the Braintrust UI would show.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from braintrust.util import merge_dicts

__all__ = ["HOME_ENV", "LocalStore", "TraceSummary", "default_store_path"]

HOME_ENV = "BRAINTRUST_OLLAMA_HOME"
APP_NAME = "braintrust-ollama"
FILE_NAME = "traces.db"
_SCHEMA_VERSION = 1
_IS_MERGE = "_is_merge"
# Fields a merge never overwrites (braintrust.merge_row_batch.MERGE_ROW_SKIP_FIELDS).
_KEPT_ON_MERGE = frozenset({"created", "span_id", "root_span_id", "span_parents", "_parent_id"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id TEXT PRIMARY KEY,
    root_span_id TEXT NOT NULL,
    span_id TEXT,
    start REAL,
    row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (root_span_id);
"""


def default_store_path() -> Path:
    """The store file: under `$BRAINTRUST_OLLAMA_HOME` if set, else the per-user data directory."""
    home = os.environ.get(HOME_ENV)
    base = Path(home).expanduser() if home else platformdirs.user_data_path(APP_NAME, False)
    return base / FILE_NAME


@dataclass(frozen=True)
class TraceSummary:
    """One trace, as `braintrust-ollama traces` lists it."""

    root_span_id: str
    name: str
    start: float | None
    duration_s: float | None
    spans: int
    tokens: int
    errors: int


class LocalStore:
    """Span rows in a SQLite file; safe to share between processes."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()

    # --- writing ---------------------------------------------------------------------------

    def write(self, rows: Iterable[dict[str, Any]]) -> int:
        """Merge `rows` (Braintrust log rows, possibly partial) into the store; returns how many."""
        written = 0
        with self._transaction() as db:
            for row in rows:
                row_id = row.get("id")
                if not row_id:
                    continue
                found = db.execute("SELECT row FROM spans WHERE id = ?", (row_id,)).fetchone()
                merged = _merge(json.loads(found[0]), row) if found is not None else dict(row)
                merged.pop(_IS_MERGE, None)
                db.execute(
                    "INSERT OR REPLACE INTO spans (id, root_span_id, span_id, start, row)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        row_id,
                        merged.get("root_span_id") or row_id,
                        merged.get("span_id"),
                        _metric(merged, "start"),
                        json.dumps(merged, default=str, ensure_ascii=False),
                    ),
                )
                written += 1
        return written

    # --- reading ---------------------------------------------------------------------------

    def traces(self, limit: int = 20) -> list[TraceSummary]:
        """The most recent traces first (by the start of their earliest span)."""
        if not self.path.exists():
            return []
        with self._transaction() as db:
            roots = [
                r[0]
                for r in db.execute(
                    "SELECT root_span_id FROM spans GROUP BY root_span_id"
                    " ORDER BY MIN(start) DESC, MAX(rowid) DESC LIMIT ?",
                    (limit,),
                )
            ]
        return [summarize(root, self.rows(root)) for root in roots]

    def resolve(self, trace: str) -> str | None:
        """A trace's root span id from `last`, a full id, or an unambiguous prefix of one."""
        if not self.path.exists():
            return None
        with self._transaction() as db:
            if trace == "last":
                found = db.execute(
                    "SELECT root_span_id FROM spans GROUP BY root_span_id"
                    " ORDER BY MIN(start) DESC, MAX(rowid) DESC LIMIT 1"
                ).fetchall()
            else:
                found = db.execute(
                    "SELECT DISTINCT root_span_id FROM spans WHERE substr(root_span_id, 1, ?) = ?"
                    " LIMIT 2",
                    (len(trace), trace),
                ).fetchall()
        return found[0][0] if len(found) == 1 else None

    def trace_ids(self, prefix: str = "", limit: int = 10) -> list[str]:
        """Root span ids starting with `prefix` (at most `limit`, sorted): what a prefix matches."""
        if not self.path.exists():
            return []
        with self._transaction() as db:
            found = db.execute(
                "SELECT DISTINCT root_span_id FROM spans WHERE substr(root_span_id, 1, ?) = ?"
                " ORDER BY root_span_id LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()
        return [r[0] for r in found]

    def rows(self, root_span_id: str) -> list[dict[str, Any]]:
        """Every span row of one trace, earliest start first."""
        if not self.path.exists():
            return []
        with self._transaction() as db:
            found = db.execute(
                "SELECT row FROM spans WHERE root_span_id = ? ORDER BY start, rowid",
                (root_span_id,),
            ).fetchall()
        return [json.loads(r[0]) for r in found]

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
                db.executescript(_SCHEMA)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _merge(stored: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Braintrust's rule: a row marked `_is_merge` is deep-merged into the stored row (whose
    identity fields win), any other row replaces it."""
    if not row.get(_IS_MERGE):
        return dict(row)
    update = {k: v for k, v in row.items() if k not in _KEPT_ON_MERGE}
    return merge_dicts(stored, update)


def summarize(root_span_id: str, rows: Sequence[dict[str, Any]]) -> TraceSummary:
    """Name, duration, span count, tokens and errors of one trace's rows."""
    root = next((r for r in rows if not r.get("span_parents")), rows[0] if rows else {})
    starts = [s for s in (_metric(r, "start") for r in rows) if s is not None]
    ends = [e for e in (_metric(r, "end") for r in rows) if e is not None]
    return TraceSummary(
        root_span_id=root_span_id,
        name=span_name(root),
        start=min(starts) if starts else None,
        duration_s=max(ends) - min(starts) if starts and ends else None,
        spans=len(rows),
        tokens=int(sum(_metric(r, "tokens") or 0 for r in rows)),
        errors=sum(1 for r in rows if r.get("error")),
    )


def span_name(row: dict[str, Any]) -> str:
    attributes = row.get("span_attributes") or {}
    return str(attributes.get("name") or "(unnamed span)")


def _metric(row: dict[str, Any], name: str) -> float | None:
    value = (row.get("metrics") or {}).get(name)
    return float(value) if isinstance(value, (int, float)) else None
