"""The local trace store: the rows Braintrust would receive, kept in one SQLite file per user.

Where it lives: `$BRAINTRUST_OLLAMA_HOME/traces.db` when that variable is set, otherwise the
per-user data directory (`$XDG_DATA_HOME/braintrust-ollama/traces.db`, by default
`~/.local/share/braintrust-ollama/traces.db` on Linux, `~/Library/Application
Support/braintrust-ollama/traces.db` on macOS, `%LOCALAPPDATA%\\braintrust-ollama\\traces.db` on
Windows).

A span reaches Braintrust as several partial rows with the same `id` (one when it starts, more
when it logs or ends). The store merges them the way Braintrust's server does, so each span is
one row: what the Braintrust UI would show. Attachments (images) are kept beside the rows, by
their Braintrust attachment key, with their content type.

Privacy: the file (and SQLite's `-wal`/`-shm` files) is readable by its owner only (0600); a
directory the store creates, and the default per-user directory, are 0700. Looser modes found on
these are tightened when the store is opened.

Several processes share one store: SQLite's write-ahead log lets readers run beside a writer,
and each write merges its rows inside one `BEGIN IMMEDIATE` transaction (read the stored rows of
its span ids, merge in Python, write them back), so partial rows of one span written by two
processes merge instead of replacing each other, in any order: a span's start row written after a
forked child's logs on that span (the parent's writer was slower) goes under them, keeping both.
A row that cannot be stored is skipped and reported; the others are written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from braintrust.util import merge_dicts

from braintrust_ollama.local.stats import ModelSpan

__all__ = [
    "HOME_ENV",
    "LocalStore",
    "StoredAttachment",
    "TraceSummary",
    "WriteResult",
    "attachment_keys",
    "default_store_path",
    "save_trace_attachments",
]

HOME_ENV = "BRAINTRUST_OLLAMA_HOME"
APP_NAME = "braintrust-ollama"
FILE_NAME = "traces.db"
# How long a write waits for another process's write lock before failing (then retried).
BUSY_TIMEOUT_S = 30.0
_SCHEMA_VERSION = 2
_IS_MERGE = "_is_merge"
# Fields a merge never overwrites (braintrust.merge_row_batch.MERGE_ROW_SKIP_FIELDS).
_KEPT_ON_MERGE = frozenset({"created", "span_id", "root_span_id", "span_parents", "_parent_id"})
_ATTACHMENT_TYPE = "braintrust_attachment"  # Braintrust's AttachmentReference["type"]
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    id TEXT PRIMARY KEY,
    root_span_id TEXT NOT NULL,
    span_id TEXT,
    start REAL,
    row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (root_span_id);
CREATE TABLE IF NOT EXISTS attachments (
    key TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    filename TEXT NOT NULL,
    data BLOB NOT NULL
);
"""


def default_store_path() -> Path:
    """The store file: under `$BRAINTRUST_OLLAMA_HOME` if set, else the per-user data directory."""
    home = os.environ.get(HOME_ENV)
    base = Path(home).expanduser() if home else _default_directory()
    return base / FILE_NAME


def _default_directory() -> Path:
    return platformdirs.user_data_path(APP_NAME, False)


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


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment's bytes, kept under the key its Braintrust attachment reference names."""

    key: str
    content_type: str
    filename: str
    data: bytes


@dataclass
class WriteResult:
    """What one `LocalStore.write` did: rows stored, and the rows it could not store (with why)."""

    written: int = 0
    failed: list[tuple[dict[str, Any], Exception]] = field(default_factory=list)


class LocalStore:
    """Span rows in a SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()

    # --- writing ---------------------------------------------------------------------------

    def write(
        self,
        rows: Iterable[dict[str, Any]],
        attachments: Iterable[StoredAttachment] = (),
        *,
        timeout: float = BUSY_TIMEOUT_S,
    ) -> WriteResult:
        """Merge `rows` (Braintrust log rows, possibly partial) into the store, with the
        attachments they reference, in one transaction.

        The stored rows are those writing `rows` one by one would give (several rows of one
        span merge in arrival order). A row that cannot be stored (not encodable, say) is left
        out alone and returned in `failed`. Raises only when the store itself cannot be written
        (locked past `timeout` seconds, disk full): then nothing was written.

        Cost: the merges are done in Python before the store is locked (again inside it, only
        for the spans it already holds), and SQLite is called a fixed number of times per
        chunk of span ids, not per row: each call lets the program's other threads take the
        GIL, getting it back can wait their whole switch interval, and this process's forks
        wait for the write (`_in_sqlite`).
        """
        spans, refused = _spans(rows)
        attachments = list(attachments)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with _in_sqlite:
                    merges = self._write_once(spans, attachments)
                break
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(_BUSY_RETRY_S)  # out of SQLite: a fork() may happen meanwhile
        failed = sorted([*refused, *(f for merge in merges for f in merge.failed)])
        return WriteResult(
            written=sum(merge.written for merge in merges),
            failed=[(row, error) for _, row, error in failed],
        )

    def _write_once(self, spans: list[_Span], attachments: list[StoredAttachment]) -> list[_Merged]:
        db = self._write_connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                _drop_write_connection(db)
            raise
        try:
            if attachments:
                db.executemany(
                    "INSERT OR IGNORE INTO attachments (key, content_type, filename, data)"
                    " VALUES (?, ?, ?, ?)",
                    [(a.key, a.content_type, a.filename, a.data) for a in attachments],
                )
            stored = _stored_rows(db, [span.key for span in spans])
            merges = [span.merged(stored.get(span.key)) for span in spans]
            _store_spans(db, merges)
            db.execute("COMMIT")
        except BaseException:
            _drop_write_connection(db)  # its transaction rolled back with it
            raise
        return merges

    def _write_connection(self) -> sqlite3.Connection:
        """This process's write connection to the store file, opened at its first write and kept
        (opening and closing one per write cost more than the write: each close checkpoints the
        write-ahead log). A new one when the file was replaced or removed, and after a fork
        (closed before it). Used under `_in_sqlite` only, so by one thread at a time."""
        try:
            found = os.stat(self.path)
            db = _write_connections.get((found.st_dev, found.st_ino))
            if db is not None:
                return db
        except FileNotFoundError:
            pass
        _make_private(self.path)
        found = os.stat(self.path)
        db = sqlite3.connect(
            self.path, timeout=_BUSY_RETRY_S, isolation_level=None, check_same_thread=False
        )
        _prepare_database(db)
        # In WAL mode, NORMAL keeps every write through any crash of the program (not of the
        # machine) without a disk sync per write.
        db.execute("PRAGMA synchronous = NORMAL")
        _write_connections[(found.st_dev, found.st_ino)] = db
        while len(_write_connections) > _KEPT_WRITE_CONNECTIONS:  # the oldest: a file long unused
            _drop_write_connection(next(iter(_write_connections.values())))
        return db

    # --- reading ---------------------------------------------------------------------------

    def traces(self, limit: int = 20) -> list[TraceSummary]:
        """The most recent traces first (by the start of their earliest span)."""
        with self._reading() as db:
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
        with self._reading() as db:
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

    def roots_since(self, since: float) -> list[str]:
        """Root span ids of the traces that started at or after `since` (epoch seconds),
        oldest first."""
        with self._reading() as db:
            found = db.execute(
                "SELECT root_span_id FROM spans GROUP BY root_span_id"
                " HAVING MIN(start) >= ? ORDER BY MIN(start), MIN(rowid)",
                (since,),
            ).fetchall()
        return [r[0] for r in found]

    def trace_ids(self, prefix: str = "", limit: int = 10) -> list[str]:
        """Root span ids starting with `prefix` (at most `limit`, sorted): what a prefix matches."""
        if not self.path.exists():
            return []
        with self._reading() as db:
            found = db.execute(
                "SELECT DISTINCT root_span_id FROM spans WHERE substr(root_span_id, 1, ?) = ?"
                " ORDER BY root_span_id LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()
        return [r[0] for r in found]

    def rows(self, root_span_id: str) -> list[dict[str, Any]]:
        """Every span row of one trace, earliest start first."""
        with self._reading() as db:
            found = db.execute(
                "SELECT row FROM spans WHERE root_span_id = ? ORDER BY start, rowid",
                (root_span_id,),
            ).fetchall()
        return [json.loads(r[0]) for r in found]

    def model_spans(self, since: float | None = None) -> list[ModelSpan]:
        """What `traces stats` needs of every Ollama model call in the store: the spans whose
        `metadata.provider` is `ollama` and that name a `metadata.model` (text), started at or
        after `since` (epoch seconds) when it is given.

        SQLite reads the few fields out of each row's JSON (it parses a row once for all of
        them), so Python never decodes whole rows: 100,000 spans take about a second."""
        with self._reading() as db:
            found = db.execute(_MODEL_SPANS, (since, since)).fetchall()
        return [
            ModelSpan(
                model,
                duration,
                bool(error),
                prompt,
                completion,
                speed,
                bool(cold),
                bool(truncated),
                bool(format_error),
            )
            for model, duration, error, prompt, completion, speed, cold, truncated, format_error in found
        ]

    def attachment(self, key: str) -> StoredAttachment | None:
        """The bytes and content type of the attachment a row's reference names by `key`."""
        with self._reading() as db:
            found = db.execute(
                "SELECT content_type, filename, data FROM attachments WHERE key = ?", (key,)
            ).fetchone()
        return StoredAttachment(key, found[0], found[1], bytes(found[2])) if found else None

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for one consistent read; none of the store's locks are taken (WAL)."""
        with _in_sqlite:
            if not self.path.exists():
                with closing(_empty_database()) as empty:
                    yield empty
                return
            with self._connect(timeout=BUSY_TIMEOUT_S) as db:
                db.execute("BEGIN")
                try:
                    yield db
                finally:
                    db.execute("ROLLBACK")

    @contextmanager
    def _connect(self, timeout: float) -> Iterator[sqlite3.Connection]:
        """A new connection per use, so no connection crosses a `fork()`."""
        _make_private(self.path)
        with closing(sqlite3.connect(self.path, timeout=timeout, isolation_level=None)) as db:
            _prepare_database(db)
            yield db


# `LocalStore.model_spans`: the fields of each Ollama model call, in `ModelSpan`'s order.
_MODEL_SPANS = """
SELECT json_extract(row, '$.metadata.model'),
       json_extract(row, '$.metrics.end') - json_extract(row, '$.metrics.start'),
       coalesce(json_type(row, '$.error'), 'null') != 'null',
       json_extract(row, '$.metrics.prompt_tokens'),
       json_extract(row, '$.metrics.completion_tokens'),
       json_extract(row, '$.metrics.completion_tokens_per_second'),
       json_type(row, '$.metadata.cold_start') = 'true',
       json_type(row, '$.metadata.prompt_truncated') = 'true',
       coalesce(json_type(row, '$.metadata.format_error'), 'null') != 'null'
FROM spans
WHERE (? IS NULL OR start >= ?)
  AND json_extract(row, '$.metadata.provider') = 'ollama'
  AND json_type(row, '$.metadata.model') = 'text'
"""


def _prepare_database(db: sqlite3.Connection) -> None:
    if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


def _empty_database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(_SCHEMA)
    return db


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


# Held while this process runs SQLite code. `fork()` waits for it, so a child never inherits one
# of SQLite's own mutexes held by a thread that does not exist there (the child would hang on
# its first SQLite call). Writes wait for another process's lock outside of it, in short steps.
_in_sqlite = threading.Lock()
_BUSY_RETRY_S = 0.05


def _before_fork() -> None:
    _in_sqlite.acquire()
    # SQLite forbids a connection to cross a fork (the child would share its lock bookkeeping
    # without holding the locks): the kept ones are closed, and opened again at the next write.
    for db in _write_connections.values():
        with contextlib.suppress(sqlite3.Error):
            db.close()
    _write_connections.clear()


def _after_fork_in_parent() -> None:
    _in_sqlite.release()


def _after_fork_in_child() -> None:
    global _in_sqlite
    _in_sqlite = threading.Lock()


def _drop_write_connection(db: sqlite3.Connection) -> None:
    for key, kept in list(_write_connections.items()):
        if kept is db:
            del _write_connections[key]
    db.close()


# This process's write connection per store file, by (device, inode), oldest first. (An open
# connection keeps its file's inode: no other file can take its number while it is kept.)
_KEPT_WRITE_CONNECTIONS = 4
_write_connections: dict[tuple[int, int], sqlite3.Connection] = {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


# Span ids per SQLite statement of a write (a `SELECT ... WHERE id IN (...)`, a multi-row
# `INSERT` of 5 parameters a span): within SQLite's limit on a statement's parameters, 999
# before SQLite 3.32 and 32766 since.
_CHUNK_IDS = 500 if sqlite3.sqlite_version_info >= (3, 32, 0) else 199
# SQLite's default longest string (SQLITE_MAX_LENGTH), in bytes: a longer row cannot be stored.
_MAX_TEXT_BYTES = 1_000_000_000
# What merging or encoding one row can raise: that row is left out, the others are stored.
_ROW_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, sqlite3.DataError)
_SpanRecord = tuple[str, Any, Any, "float | None", str]  # id, root_span_id, span_id, start, row
_Failure = tuple[int, dict[str, Any], Exception]  # the row's position in the write, the row, why


@dataclass(frozen=True)
class _Merged:
    """What a span's rows of one write merge into: its record for the spans table (None when
    no row of it could be stored), and which rows could not."""

    record: _SpanRecord | None
    last: int  # position in the write of the last row stored (orders the INSERT, as rowids)
    written: int
    failed: tuple[_Failure, ...]


@dataclass(frozen=True)
class _Span:
    """One span's rows of a write, in arrival order with their positions, and `fresh`: what
    they merge into when the store holds nothing of the span yet, merged before the store is
    locked when the span starts in this write (None when its first row is a merge: the store
    most likely holds it already, and the merge is done with the stored row)."""

    key: str
    rows: tuple[tuple[int, dict[str, Any]], ...]
    fresh: _Merged | None

    def merged(self, stored: str | None) -> _Merged:
        """The span's rows merged into its `stored` row text (None: nothing stored)."""
        if stored is None and self.fresh is not None:
            return self.fresh
        return _merge_span_rows(self.key, self.rows, stored)


def _spans(rows: Iterable[dict[str, Any]]) -> tuple[list[_Span], list[_Failure]]:
    """The rows of a write by span, in order of first arrival; and the rows refused for their
    id. Rows without an id are skipped."""
    by_key: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    refused: list[_Failure] = []
    for position, row in enumerate(rows):
        if not row.get("id"):
            continue
        try:
            key = _span_key(row["id"])
        except _ROW_ERRORS as error:
            refused.append((position, row, error))
        else:
            by_key.setdefault(key, []).append((position, row))
    spans = []
    for key, span_rows in by_key.items():
        starts_here = not span_rows[0][1].get(_IS_MERGE)
        fresh = _merge_span_rows(key, span_rows, None) if starts_here else None
        spans.append(_Span(key, tuple(span_rows), fresh))
    return spans, refused


def _merge_span_rows(
    key: str, rows: Iterable[tuple[int, dict[str, Any]]], stored: str | None
) -> _Merged:
    """Merge one span's rows in order into its `stored` row text (None: nothing stored), each
    row against what the rows before it left, as writing them one by one does. A row that
    cannot be merged or encoded leaves the span as it was, and is returned as failed."""
    record: _SpanRecord | None = None
    last, written, failed = -1, 0, []
    for position, row in rows:
        try:
            record = _span_record(key, row, record[4] if record is not None else stored)
        except _ROW_ERRORS as error:
            failed.append((position, row, error))
        else:
            last, written = position, written + 1
    return _Merged(record, last, written, tuple(failed))


# The stored rows of some span ids as one text, `<len(id)>:<len(row)>:<id><row>` after another:
# one SQLite step, where a plain SELECT steps (and lets go of the GIL) once per row it returns.
# (SQLite's `length` of text counts characters, as Python's `len` does.)
_STORED_ROWS_AS_ONE = (
    "SELECT group_concat(length(id) || ':' || length(row) || ':' || id || row, '')"
    " FROM spans WHERE id IN ({})"
)


def _stored_rows(db: sqlite3.Connection, keys: list[str]) -> dict[str, str]:
    """The stored row text of those of `keys` the store holds, by id."""
    stored: dict[str, str] = {}
    for start in range(0, len(keys), _CHUNK_IDS):
        chunk = keys[start : start + _CHUNK_IDS]
        marks = ", ".join("?" * len(chunk))
        try:
            if any("\0" in key for key in chunk):  # SQLite's `length` stops at a NUL
                raise sqlite3.DataError("an id holds a NUL character")
            (text,) = db.execute(_STORED_ROWS_AS_ONE.format(marks), chunk).fetchone()
        except sqlite3.DataError:  # together longer than SQLite's longest text: row by row
            found = db.execute(f"SELECT id, row FROM spans WHERE id IN ({marks})", chunk)
            stored.update(found)
        else:
            stored.update(_unpack_rows(text or ""))
    return stored


def _unpack_rows(text: str) -> Iterator[tuple[str, str]]:
    """The (id, row) pairs of a `_STORED_ROWS_AS_ONE` text."""
    at = 0
    while at < len(text):
        id_at = text.index(":", text.index(":", at) + 1) + 1
        id_length, row_length = (int(n) for n in text[at : id_at - 1].split(":"))
        row_at = id_at + id_length
        yield text[id_at:row_at], text[row_at : row_at + row_length]
        at = row_at + row_length


def _store_spans(db: sqlite3.Connection, merges: list[_Merged]) -> None:
    """Write the merged spans, each under a new rowid in the order of its last row stored (as
    writing the rows one by one does), in one statement per chunk: `executemany` would call
    SQLite once per row."""
    records = [m.record for m in sorted(merges, key=lambda m: m.last) if m.record is not None]
    for start in range(0, len(records), _CHUNK_IDS):
        chunk = records[start : start + _CHUNK_IDS]
        db.execute(
            "INSERT OR REPLACE INTO spans (id, root_span_id, span_id, start, row) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk)),
            [value for record in chunk for value in record],
        )


def _span_key(row_id: Any) -> str:
    """A row's `id` as the spans table keeps it (text: an integer id is its digits)."""
    if isinstance(row_id, int) and not isinstance(row_id, bool):
        return str(_bindable(row_id))
    if not isinstance(row_id, str):
        raise TypeError(f"a span id must be a string, not {type(row_id).__name__}")
    return str(_bindable(row_id))


def _span_record(key: str, row: dict[str, Any], stored: str | None) -> _SpanRecord:
    """The spans table's record of `row` merged into the `stored` row text of its span; every
    value checked to bind, so writing the record cannot fail for this row alone."""
    merged = _merge(json.loads(stored), row) if stored is not None else dict(row)
    merged.pop(_IS_MERGE, None)
    text = _encode(merged)
    if len(text) * 4 > _MAX_TEXT_BYTES and len(text.encode("utf-8")) > _MAX_TEXT_BYTES:
        raise sqlite3.DataError("string or blob too big")
    return (
        key,
        _bindable(merged.get("root_span_id") or row["id"]),
        _bindable(merged.get("span_id")),
        _metric(merged, "start"),
        text,
    )


def _bindable(value: Any) -> Any:
    """`value`, when SQLite can take it as a statement parameter; else raises, as binding would."""
    if value is None or isinstance(value, (float, bytes)):
        return value
    if isinstance(value, str):
        if not value.isascii():
            value.encode("utf-8")  # a lone surrogate cannot be bound: UnicodeEncodeError
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        return value
    raise TypeError(f"type {type(value).__name__!r} cannot be stored in a column")


def _encode(row: dict[str, Any]) -> str:
    """The row as JSON text. Unknown objects become their `str()`; a string SQLite cannot hold
    as UTF-8 (a lone surrogate) is kept as a JSON escape, losing nothing."""
    text = json.dumps(row, default=str, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(row, default=str)
    return text


def _make_private(path: Path) -> None:
    """Create the store's file 0600 (and its directory 0700), or tighten them if looser.

    A directory the user chose and we did not create (`BRAINTRUST_OLLAMA_HOME=.`, say) keeps
    its mode; the file and SQLite's `-wal`/`-shm` files in it are still 0600.
    """
    directory = path.parent
    if not directory.exists():
        directory.mkdir(parents=True, mode=_PRIVATE_DIR, exist_ok=True)
        _tighten(directory, _PRIVATE_DIR)
    elif directory == _default_directory():
        _tighten(directory, _PRIVATE_DIR)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, _PRIVATE_FILE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        _tighten(file, _PRIVATE_FILE)


def _tighten(path: Path, mode: int) -> None:
    """Remove group and other permissions from `path` when it has any (owner's files only)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
        if current & 0o077:
            path.chmod(mode)
    except OSError:
        pass  # not ours, or gone: the file's own mode still protects the rows


def _merge(stored: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Braintrust's rule, for rows that several processes write in any order.

    A row marked `_is_merge` (a span's later logs and its end) is deep-merged into the stored
    row, whose identity fields win. Any other row replaces the stored row, except a span's
    creation row (the one with `created`) arriving after rows of its own span: the stored row
    holds only later logs of it (written first by another process, a forked child logging on a
    span its parent had not written yet), or this same creation row already (written again).
    Then the creation row goes under what is stored: each stored field wins (deep), the creation
    row's identity fields and the fields nothing logged later are kept, and writing it again
    changes nothing.
    """
    if row.get(_IS_MERGE):
        update = {k: v for k, v in row.items() if k not in _KEPT_ON_MERGE}
        return merge_dicts(stored, update)
    if _is_creation_of(row, stored):
        later = {k: v for k, v in stored.items() if k not in _KEPT_ON_MERGE}
        return merge_dicts(json.loads(_encode(row)), later)  # a copy: `row` is the caller's
    return dict(row)


def _is_creation_of(row: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Whether `row` is the creation row of the span `stored` holds logs of (or holds already).

    Braintrust writes `created` in a span's first row only; merges never change it."""
    created = row.get("created")
    return created is not None and stored.get("created") in (None, created)


def attachment_keys(value: Any) -> list[str]:
    """The keys of the Braintrust attachment references in `value` (rows, say), in order."""
    keys: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == _ATTACHMENT_TYPE and isinstance(item.get("key"), str):
                keys.append(item["key"])
            else:
                stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return list(dict.fromkeys(keys))


def save_trace_attachments(
    store: LocalStore, rows: Sequence[dict[str, Any]], directory: Path
) -> list[Path]:
    """Write the attachments `rows` reference into `directory` as `<key>-<filename>` files;
    returns the paths written (attachments whose bytes are not stored are skipped)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for key in attachment_keys(list(rows)):
        attachment = store.attachment(key)
        if attachment is None:
            continue
        path = directory / f"{_safe_name(key)}-{_safe_name(attachment.filename)}"
        path.write_bytes(attachment.data)
        written.append(path)
    return written


def _safe_name(name: str) -> str:
    """A file name without directories or characters a file system may refuse."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in Path(name).name)
    return cleaned.lstrip(".") or "attachment"


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
