"""The local trace store: the rows Braintrust would receive, kept in one SQLite file per user.

Where it lives: `$BRAINTRUST_OLLAMA_HOME/traces.db` when that variable is set, otherwise the
per-user data directory (`$XDG_DATA_HOME/braintrust-ollama/traces.db`, by default
`~/.local/share/braintrust-ollama/traces.db` on Linux, `~/Library/Application
Support/braintrust-ollama/traces.db` on macOS, `%LOCALAPPDATA%\\braintrust-ollama\\traces.db` on
Windows).

Writing is appending. A span reaches Braintrust as several partial rows with the same `id` (one
when it starts, more when it logs or ends); each is appended as it comes, with nothing read
back, and the reads merge them the way Braintrust's server does, so each span reads as one row:
what the Braintrust UI would show. Several processes may append to one store (SQLite's
write-ahead log lets readers run beside a writer), in any order: a span's creation row written
after a forked child's logs on that span still goes under them. Attachments (images) are kept
beside the rows, by their Braintrust attachment key, with their content type.

Bounded: at most `max_store_mb` megabytes (`BRAINTRUST_OLLAMA_MAX_STORE_MB`, default
`DEFAULT_MAX_STORE_MB`). Past it, the oldest traces are dropped, whole (their rows and
attachments; rows of a dropped trace arriving later are not kept either), and the store keeps
count of what it dropped and when (`LocalStore.dropped()`).

Private: the store writes only to a file and a directory its user owns and nobody else can read
or write. A missing directory is created 0700 (each level it creates, whatever the umask), a
missing file 0600; SQLite gives its `-wal`/`-shm` files the file's mode. A store file, or its
directory, owned by another user or open to group or others is refused (`UnsafeStoreError`):
nothing is written to it.
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
from braintrust.merge_row_batch import MERGE_ROW_SKIP_FIELDS
from braintrust.util import merge_dicts

from braintrust_ollama._rows import ATTACHMENT_TYPE
from braintrust_ollama.local.stats import ModelSpan

__all__ = [
    "DEFAULT_MAX_STORE_MB",
    "HOME_ENV",
    "MAX_STORE_MB_ENV",
    "Dropped",
    "LocalStore",
    "StoredAttachment",
    "TraceSummary",
    "UnsafeStoreError",
    "WriteResult",
    "attachment_keys",
    "default_store_path",
    "max_store_bytes",
    "save_trace_attachments",
]

HOME_ENV = "BRAINTRUST_OLLAMA_HOME"
MAX_STORE_MB_ENV = "BRAINTRUST_OLLAMA_MAX_STORE_MB"
DEFAULT_MAX_STORE_MB = 200.0
APP_NAME = "braintrust-ollama"
FILE_NAME = "traces.db"
# How long a write waits for another process's write lock before failing (then retried).
BUSY_TIMEOUT_S = 30.0
_MB = 1_000_000
_SCHEMA_VERSION = 3
_IS_MERGE = "_is_merge"
_KEPT_ON_MERGE = frozenset([*MERGE_ROW_SKIP_FIELDS, _IS_MERGE])
_PRIVATE_FILE = 0o600
_PRIVATE_DIR = 0o700
# Past this share of the bound on disk after a write, the store is trimmed and compacted.
_CHECK_SHARE = 0.9
_GROWTH = 4  # what a row's text may cost on disk at most, pages and write-ahead log included
# The pages in use may take this share of the bound; the rest is for the write-ahead log (and
# SQLite's -shm file). A trim takes them down to `_TRIM_TO` of that, so that trims are rare.
_LIVE_SHARE = 0.8
_TRIM_TO = 0.9
_TRIM_STEP = 20  # traces dropped at a time, oldest first
# Ids of dropped traces kept, so that their late rows are not stored either.
_DROPPED_IDS_KEPT = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    root_span_id TEXT NOT NULL,
    row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_by_trace ON rows (root_span_id, seq);
CREATE TABLE IF NOT EXISTS traces (
    root_span_id TEXT PRIMARY KEY,
    start REAL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_start ON traces (start, last_seq);
CREATE INDEX IF NOT EXISTS traces_by_age ON traces (first_seq);
CREATE TABLE IF NOT EXISTS attachments (
    key TEXT PRIMARY KEY,
    root_span_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    filename TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS attachments_by_trace ON attachments (root_span_id);
CREATE TABLE IF NOT EXISTS dropped_traces (root_span_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""


class UnsafeStoreError(Exception):
    """The store's file or directory is another user's, or open to others: nothing is written."""


def default_store_path() -> Path:
    """The store file: under `$BRAINTRUST_OLLAMA_HOME` if set, else the per-user data directory."""
    home = os.environ.get(HOME_ENV)
    base = Path(home).expanduser() if home else _default_directory()
    return base / FILE_NAME


def _default_directory() -> Path:
    return platformdirs.user_data_path(APP_NAME, False)


def max_store_bytes(max_store_mb: float | None = None) -> int:
    """The store's bound in bytes: `max_store_mb`, else `BRAINTRUST_OLLAMA_MAX_STORE_MB`, else
    `DEFAULT_MAX_STORE_MB` (a value that is not a positive number counts as not set)."""
    for value in (max_store_mb, os.environ.get(MAX_STORE_MB_ENV)):
        try:
            megabytes = float(value) if value is not None else 0.0
        except ValueError:
            continue
        if megabytes > 0:
            return int(megabytes * _MB)
    return int(DEFAULT_MAX_STORE_MB * _MB)


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
class Dropped:
    """What the store dropped to stay under its bound: traces and rows, the last time, and the
    bound (in bytes) it was kept under then."""

    traces: int
    rows: int
    last_at: float | None
    bound_bytes: int | None


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment's bytes, kept under the key its Braintrust attachment reference names (and
    dropped with the trace `root_span_id`)."""

    key: str
    content_type: str
    filename: str
    data: bytes
    root_span_id: str = ""


@dataclass
class WriteResult:
    """What one `LocalStore.append` did: rows stored, rows it could not store (with why), and
    rows of traces dropped earlier, which are not stored."""

    written: int = 0
    failed: list[tuple[dict[str, Any], Exception]] = field(default_factory=list)
    skipped: int = 0


class LocalStore:
    """Span rows in a SQLite file, at most `max_store_mb` megabytes; safe to share between
    threads and processes."""

    def __init__(self, path: Path | str | None = None, *, max_store_mb: float | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self.max_bytes = max_store_bytes(max_store_mb)
        self._measured = self.max_bytes  # its size when last looked at (unknown: the bound)
        self._unmeasured = 0  # bytes of rows appended by this process since then

    # --- writing ---------------------------------------------------------------------------

    def append(
        self,
        rows: Iterable[dict[str, Any]],
        attachments: Iterable[StoredAttachment] = (),
        *,
        timeout: float = BUSY_TIMEOUT_S,
    ) -> WriteResult:
        """Append `rows` (Braintrust log rows, possibly partial) and the attachments they
        reference, in one transaction, then drop the oldest traces if the store is over its
        bound.

        A row that cannot be stored (no id, not encodable) is left out alone and returned in
        `failed`. Raises `UnsafeStoreError` for a store that is not private, and
        `sqlite3.Error` or `OSError` when the store cannot be written (locked past `timeout`
        seconds, disk full, not a database): then nothing was written.
        """
        records, failed = _records(rows)
        attachments = list(attachments)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with _in_sqlite:
                    skipped = self._append_once(records, attachments)
                break
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(_BUSY_RETRY_S)  # out of SQLite: a fork() may happen meanwhile
        return WriteResult(len(records) - skipped, failed, skipped)

    def _append_once(self, records: list[_Record], attachments: list[StoredAttachment]) -> int:
        db = self._write_connection()
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                _drop_write_connection(db)
            raise
        try:
            dropped = _dropped_among(db, {r.root_span_id for r in records})
            kept = [r for r in records if r.root_span_id not in dropped]
            _insert_rows(db, kept)
            if attachments:
                db.executemany(
                    "INSERT OR IGNORE INTO attachments"
                    " (key, root_span_id, content_type, filename, data) VALUES (?, ?, ?, ?, ?)",
                    [
                        (a.key, a.root_span_id, a.content_type, a.filename, a.data)
                        for a in attachments
                    ],
                )
            db.execute("COMMIT")
        except BaseException:
            _drop_write_connection(db)  # its transaction rolled back with it
            raise
        # The size is looked at when what was appended since it was last looked at could take
        # the store past its threshold (rows cost up to `_GROWTH` times their text on disk,
        # indexes and the write-ahead log included): four system calls a write would double
        # the cost of a one-row write far from the bound.
        self._unmeasured += sum(len(r.text) for r in kept)
        if self._measured + self._unmeasured * _GROWTH > self.max_bytes * _CHECK_SHARE:
            self._unmeasured = 0
            self._measured = self._disk_bytes(db)
            if self._measured > self.max_bytes * _CHECK_SHARE:
                # The rows are stored; if the store is busy, the bound is kept at the next write.
                with contextlib.suppress(sqlite3.Error):
                    self._keep_bound(db)
                self._measured = self._disk_bytes(db)
        return len(records) - len(kept)

    def _disk_bytes(self, db: sqlite3.Connection) -> int:
        """The store's size on disk: its pages, and SQLite's -wal and -shm files."""
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
        total = int(pages * size)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += os.path.getsize(_sibling(self.path, suffix))
        return total

    def _keep_bound(self, db: sqlite3.Connection) -> None:
        """Drop the oldest traces if their pages pass their share of the bound, give freed pages
        back to the file system, and fold the write-ahead log in and empty it (unless a reader
        holds it: then at the next write)."""
        db.execute("BEGIN IMMEDIATE")
        try:
            self._trim(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA incremental_vacuum").fetchall()  # a step a page freed
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _trim(self, db: sqlite3.Connection) -> bool:
        """When the pages in use pass their share of the bound, drop the oldest traces, whole,
        until they take at most `_TRIM_TO` of it (so that trims are rare). The dropped ids are
        kept, so that late rows of those traces are not stored either. True if it dropped."""
        if _live_bytes(db) <= self.max_bytes * _LIVE_SHARE:
            return False
        target = self.max_bytes * _LIVE_SHARE * _TRIM_TO
        now = time.time()
        while _live_bytes(db) > target:
            oldest = [
                r[0]
                for r in db.execute(
                    "SELECT root_span_id FROM traces ORDER BY first_seq LIMIT ?", (_TRIM_STEP,)
                )
            ]
            if not oldest:
                break
            marks = ", ".join("?" * len(oldest))
            (rows,) = db.execute(
                f"SELECT count(*) FROM rows WHERE root_span_id IN ({marks})", oldest
            ).fetchone()
            for table in ("rows", "attachments", "traces"):
                db.execute(f"DELETE FROM {table} WHERE root_span_id IN ({marks})", oldest)
            db.executemany(
                "INSERT OR REPLACE INTO dropped_traces (root_span_id, at) VALUES (?, ?)",
                [(root, now) for root in oldest],
            )
            _count(db, dropped_traces=len(oldest), dropped_rows=rows)
        db.executemany(
            "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)",
            [("last_drop_at", now), ("bound_bytes", self.max_bytes)],
        )
        db.execute(
            "DELETE FROM dropped_traces WHERE root_span_id NOT IN"
            " (SELECT root_span_id FROM dropped_traces ORDER BY at DESC LIMIT ?)",
            (_DROPPED_IDS_KEPT,),
        )
        return True

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
        try:
            _prepare_database(db)
            # In WAL mode, NORMAL keeps every write through any crash of the program (not of
            # the machine) without a disk sync per write.
            db.execute("PRAGMA synchronous = NORMAL")
            # The write-ahead log is folded into the file every this many pages (SQLite's
            # default is 1000, 4 MB), and left no longer than a tenth of the bound.
            pages = max(16, min(1000, self.max_bytes // 4096 // 10))
            db.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            db.execute(f"PRAGMA journal_size_limit = {self.max_bytes // 10}")
        except BaseException:
            db.close()
            raise
        _check_private(self.path)  # SQLite made its -wal/-shm files: the file's mode, or not
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
                    "SELECT root_span_id FROM traces ORDER BY start DESC, last_seq DESC LIMIT ?",
                    (limit,),
                )
            ]
            return [summarize(root, _trace_rows(db, root)) for root in roots]

    def resolve(self, trace: str) -> str | None:
        """A trace's root span id from `last`, a full id, or an unambiguous prefix of one."""
        with self._reading() as db:
            if trace == "last":
                found = db.execute(
                    "SELECT root_span_id FROM traces ORDER BY start DESC, last_seq DESC LIMIT 1"
                ).fetchall()
            else:
                found = db.execute(
                    "SELECT root_span_id FROM traces WHERE substr(root_span_id, 1, ?) = ? LIMIT 2",
                    (len(trace), trace),
                ).fetchall()
        return found[0][0] if len(found) == 1 else None

    def roots_since(self, since: float) -> list[str]:
        """Root span ids of the traces that started at or after `since` (epoch seconds),
        oldest first."""
        with self._reading() as db:
            found = db.execute(
                "SELECT root_span_id FROM traces WHERE start >= ? ORDER BY start, first_seq",
                (since,),
            ).fetchall()
        return [r[0] for r in found]

    def trace_ids(self, prefix: str = "", limit: int = 10) -> list[str]:
        """Root span ids starting with `prefix` (at most `limit`, sorted): what a prefix matches."""
        with self._reading() as db:
            found = db.execute(
                "SELECT root_span_id FROM traces WHERE substr(root_span_id, 1, ?) = ?"
                " ORDER BY root_span_id LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()
        return [r[0] for r in found]

    def rows(self, root_span_id: str) -> list[dict[str, Any]]:
        """Every span of one trace, each as one row (its rows merged), earliest start first."""
        with self._reading() as db:
            return _trace_rows(db, root_span_id)

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

    def dropped(self) -> Dropped:
        """What was dropped to keep the store under its bound, since it was made."""
        with self._reading() as db:
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        return Dropped(
            traces=int(counters.get("dropped_traces", 0)),
            rows=int(counters.get("dropped_rows", 0)),
            last_at=counters.get("last_drop_at"),
            bound_bytes=int(counters["bound_bytes"]) if "bound_bytes" in counters else None,
        )

    # --- plumbing --------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A connection for one consistent read; none of the store's locks are taken (WAL)."""
        with _in_sqlite:
            if not self.path.exists():
                with closing(_empty_database()) as empty:
                    yield empty
                return
            with closing(
                sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            ) as db:
                _prepare_database(db)
                db.execute("BEGIN")
                try:
                    yield db
                finally:
                    db.execute("ROLLBACK")


# --- what a write stores ---------------------------------------------------------------------

# SQLite's default longest string (SQLITE_MAX_LENGTH), in bytes: a longer row cannot be stored.
_MAX_TEXT_BYTES = 1_000_000_000
# What encoding one row can raise: that row is left out, the others are stored.
_ROW_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, sqlite3.DataError)
# Rows per SQLite statement of a write (a multi-row INSERT of 5 parameters a row), within
# SQLite's limit on a statement's parameters: 999 before SQLite 3.32, 32766 since.
_CHUNK_IDS = 500 if sqlite3.sqlite_version_info >= (3, 32, 0) else 190


@dataclass(frozen=True)
class _Record:
    key: str  # the row's id, as text
    root_span_id: str
    start: float | None
    text: str


def _records(rows: Iterable[dict[str, Any]]) -> tuple[list[_Record], list[tuple[Any, Exception]]]:
    """Each row as the rows table stores it, every value checked to bind (so that the insert
    cannot fail for one row alone); and the rows refused, with why."""
    records: list[_Record] = []
    failed: list[tuple[Any, Exception]] = []
    for row in rows:
        try:
            key = _text_id(row.get("id"))
            root = _text_id(row.get("root_span_id") or row.get("id"))
            text = _encode(row)
            if len(text) * 4 > _MAX_TEXT_BYTES and len(text.encode("utf-8")) > _MAX_TEXT_BYTES:
                raise sqlite3.DataError("string or blob too big")
            start = _metric(row, "start") if not row.get(_IS_MERGE) else None
        except _ROW_ERRORS as error:
            failed.append((row, error))
        else:
            records.append(_Record(key, root, start, text))
    return records, failed


def _text_id(value: Any) -> str:
    """An id as the store keeps it: text (an integer id is its digits) that SQLite can bind."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise TypeError(f"a row id must be a non-empty string, not {value!r:.40}")
    if not value.isascii():
        value.encode("utf-8")  # a lone surrogate cannot be bound: UnicodeEncodeError
    return value


def _encode(row: dict[str, Any]) -> str:
    """The row as JSON text. Unknown objects become their `str()`; a string SQLite cannot hold
    as UTF-8 (a lone surrogate) is kept as a JSON escape, losing nothing."""
    text = json.dumps(row, default=str, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(row, default=str)
    return text


def _insert_rows(db: sqlite3.Connection, records: list[_Record]) -> None:
    """Append the rows, and each trace's start, span of arrival and size, in one statement per
    chunk (`executemany` would call SQLite once per row: each call lets go of the GIL)."""
    if not records:
        return
    (first,) = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM rows").fetchone()
    traces: dict[str, list[Any]] = {}  # root -> [start, first_seq, last_seq, bytes]
    values: list[Any] = []
    for seq, record in enumerate(records, start=first):
        values += (seq, record.key, record.root_span_id, record.text)
        trace = traces.setdefault(record.root_span_id, [None, seq, seq, 0])
        if record.start is not None and (trace[0] is None or record.start < trace[0]):
            trace[0] = record.start
        trace[2] = seq
        trace[3] += len(record.text)
    for start in range(0, len(values), _CHUNK_IDS * 4):
        chunk = values[start : start + _CHUNK_IDS * 4]
        db.execute(
            "INSERT INTO rows (seq, id, root_span_id, row) VALUES "
            + ", ".join(["(?, ?, ?, ?)"] * (len(chunk) // 4)),
            chunk,
        )
    items = [(root, *trace) for root, trace in traces.items()]
    for start in range(0, len(items), _CHUNK_IDS):
        chunk = items[start : start + _CHUNK_IDS]
        db.execute(
            "INSERT INTO traces (root_span_id, start, first_seq, last_seq, bytes) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?)"] * len(chunk))
            + " ON CONFLICT (root_span_id) DO UPDATE SET"
            " start = CASE WHEN traces.start IS NULL OR excluded.start < traces.start"
            " THEN coalesce(excluded.start, traces.start) ELSE traces.start END,"
            " last_seq = excluded.last_seq, bytes = traces.bytes + excluded.bytes",
            [value for item in chunk for value in item],
        )


def _dropped_among(db: sqlite3.Connection, roots: set[str]) -> set[str]:
    found: set[str] = set()
    listed = list(roots)
    for start in range(0, len(listed), _CHUNK_IDS):
        chunk = listed[start : start + _CHUNK_IDS]
        marks = ", ".join("?" * len(chunk))
        found.update(
            r[0]
            for r in db.execute(
                f"SELECT root_span_id FROM dropped_traces WHERE root_span_id IN ({marks})", chunk
            )
        )
    return found


def _count(db: sqlite3.Connection, **amounts: float) -> None:
    for name, amount in amounts.items():
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (name, amount),
        )


def _live_bytes(db: sqlite3.Connection) -> int:
    """The bytes of the database's pages in use (free pages are reused, or returned to the file
    system by `PRAGMA incremental_vacuum`)."""
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    (size,) = db.execute("PRAGMA page_size").fetchone()
    return int((pages - free) * size)


# --- reading: a trace's rows merged per span ---------------------------------------------------


def _trace_rows(db: sqlite3.Connection, root_span_id: str) -> list[dict[str, Any]]:
    """One trace's spans, each its rows merged in arrival order; earliest start first."""
    spans: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    for seq, key, text in db.execute(
        "SELECT seq, id, row FROM rows WHERE root_span_id = ? ORDER BY seq", (root_span_id,)
    ):
        row = json.loads(text)
        stored = spans.get(key)
        if stored is None:
            row.pop(_IS_MERGE, None)
            spans[key] = row
            first_seen[key] = seq
        else:
            spans[key] = _merge(stored, row)
    order = sorted(spans, key=lambda k: (_metric(spans[k], "start") or 0.0, first_seen[k]))
    return [spans[key] for key in order]


def _merge(stored: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Braintrust's rule, for rows that several processes append in any order.

    A row marked `_is_merge` (a span's later logs and its end) is deep-merged into the span,
    whose identity fields win. Any other row replaces the span, except a span's creation row
    (the one with `created`) arriving after rows of its own span: the span holds only later logs
    of it (appended first by another process, a forked child logging on a span its parent had
    not written yet), or this same creation row already (appended again). Then the creation row
    goes under what is there: each field there wins (deep), the creation row's identity fields
    and the fields nothing logged later are kept, and appending it again changes nothing.
    """
    if row.get(_IS_MERGE):
        return merge_dicts(stored, {k: v for k, v in row.items() if k not in _KEPT_ON_MERGE})
    row.pop(_IS_MERGE, None)
    created = row.get("created")
    if created is not None and stored.get("created") in (None, created):
        return merge_dicts(row, {k: v for k, v in stored.items() if k not in _KEPT_ON_MERGE})
    return row


# --- opening the file ------------------------------------------------------------------------


# `LocalStore.model_spans`: the fields of each Ollama model call, in `ModelSpan`'s order. An SDK
# span is written once, whole (`_call.py`): its one row holds them all.
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
FROM rows
WHERE json_extract(row, '$.metadata.provider') = 'ollama'
  AND json_type(row, '$.metadata.model') = 'text'
  AND (? IS NULL OR json_extract(row, '$.metrics.start') >= ?)
"""


def _prepare_database(db: sqlite3.Connection) -> None:
    """The schema, made once (or brought up from version 2: one merged row per span)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == _SCHEMA_VERSION:
        return
    if db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # a new file: freed pages can be returned
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()  # another process may have
        if version == 2:
            db.execute("ALTER TABLE attachments ADD COLUMN root_span_id TEXT NOT NULL DEFAULT ''")
        if version != _SCHEMA_VERSION:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        if version == 2:
            _from_version_2(db)
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    if version == 2:  # once: rebuilt so that freed pages can be returned to the file system
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            db.execute("VACUUM")


def _from_version_2(db: sqlite3.Connection) -> None:
    """A version-2 store's spans (one merged row each, in `spans`) as appended rows."""
    old = db.execute("SELECT id, root_span_id, row FROM spans ORDER BY rowid").fetchall()
    _insert_rows(db, [_Record(k, r, _metric(json.loads(t), "start"), t) for k, r, t in old])
    db.execute("DROP TABLE spans")


def _empty_database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(_SCHEMA)
    return db


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _make_private(path: Path) -> None:
    """Make the store's missing directories (each 0700) and file (0600), whatever the umask;
    refuse (`UnsafeStoreError`) a file or directory another user owns or others can open."""
    directory = path.parent
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            level.mkdir(mode=_PRIVATE_DIR)
            os.chmod(level, _PRIVATE_DIR)  # mkdir's mode is cut by the umask; never widened
    _check_owned(path.parent, 0o066, "directory")
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, _PRIVATE_FILE)
            try:
                os.fchmod(descriptor, _PRIVATE_FILE)
            finally:
                os.close(descriptor)
    _check_private(path)


def _check_private(path: Path) -> None:
    """Raise `UnsafeStoreError` unless the store's directory and files are this user's and
    closed to others (a directory may let others through, not list or write it)."""
    _check_owned(path.parent, 0o066, "directory")
    for file in (path, _sibling(path, "-wal"), _sibling(path, "-shm")):
        _check_owned(file, 0o077, "file")


def _check_owned(path: Path, others: int, kind: str) -> None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return
    if hasattr(os, "geteuid") and found.st_uid != os.geteuid():
        raise UnsafeStoreError(f"the {kind} {path} belongs to another user (uid {found.st_uid})")
    mode = stat.S_IMODE(found.st_mode)
    if mode & others and os.name != "nt":
        raise UnsafeStoreError(
            f"the {kind} {path} is open to other users (mode {mode:04o}; chmod"
            f" {_PRIVATE_DIR if kind == 'directory' else _PRIVATE_FILE:o} {path} to use it)"
        )


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


# --- what the views use ----------------------------------------------------------------------


def attachment_keys(value: Any) -> list[str]:
    """The keys of the Braintrust attachment references in `value` (rows, say), in order. A walk
    with no recursion (not `_rows.map_attachments`): a view never fails on a row, however deep."""
    keys: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == ATTACHMENT_TYPE and isinstance(item.get("key"), str):
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
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
