"""The local copy: every span row this process logs, written to the local store by a thread of
its own; and `init_local_logger()`, which makes it the only destination.

What the traced program pays, and when rows are written:
- `add()` (every span row, from Braintrust's background logger) only queues: a traced call never
  waits on the store.
- A daemon writer thread, started at the first row, writes what is pending every
  `WRITE_EVERY_S` seconds, or as soon as `WRITE_EVERY_ROWS` rows are pending; it resolves each
  row (no network: see `_braintrust.name_rows_by`), masks it as Braintrust would
  (`braintrust.set_masking_function`), and appends it to the store.
- `flush(timeout)` waits until every row added before it is written, at most `timeout`; at
  interpreter exit the same happens, bounded by `EXIT_TIMEOUT_S`. A `multiprocessing` child's
  rows are written when it exits, and a `Pool` worker's before each result it sends back (see
  `_in_multiprocessing_child`).
- At most `MAX_PENDING_ROWS` rows wait in memory (`BRAINTRUST_OLLAMA_MAX_PENDING_ROWS`): past
  that, new rows are dropped and counted, said once when it starts and once with the count.

A store that cannot be written (read-only, not a database, disk full, locked by another
process for more than `LOCK_WAIT_S`) is said once, in one line saying what is lost, and retried
every `RETRY_S` seconds; its rows wait in memory meanwhile, and are written when a write succeeds
again (the disk has room again). While it fails, it costs any flush or exit at most
`FAILING_WAIT_S`. A store that is not private (`UnsafeStoreError`) is refused once and for all:
nothing is written to it. A row that cannot be resolved, masked or stored is reported once and
skipped; the other rows are written.

`fork()` (multiprocessing's default on Linux, server workers) is safe: the child starts with an
empty queue (the parent writes the rows it logged), new locks and its own writer thread.
"""

from __future__ import annotations

import logging
import multiprocessing.pool
import multiprocessing.util
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import braintrust
import wrapt
from braintrust.logger import Attachment, BaseAttachment, Logger
from braintrust.util import LazyValue

from braintrust_ollama._braintrust import Masker, name_rows_by
from braintrust_ollama._command import cli_command
from braintrust_ollama._rows import copy_containers, map_attachments
from braintrust_ollama._warn import notice
from braintrust_ollama.local.store import LocalStore, StoredAttachment, UnsafeStoreError

__all__ = ["EXIT_TIMEOUT_S", "FLUSH_TIMEOUT_S", "LocalCopy", "init_local_logger"]

WRITE_EVERY_S = 0.5
WRITE_EVERY_ROWS = 50
FLUSH_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 5.0
FAILING_WAIT_S = 1.0
LOCK_WAIT_S = 1.0
RETRY_S = 1.0
MAX_PENDING_ROWS_ENV = "BRAINTRUST_OLLAMA_MAX_PENDING_ROWS"
MAX_PENDING_ROWS = 100_000
_BATCH_ROWS = 2_000
_IDLE_CHECK_S = 1.0  # how often an idle writer checks that its process goes on
# A `multiprocessing` child's exit finalizers run by decreasing priority: its unfinished streams
# (`_stream`, 101), then the local copy's close (this), then Braintrust's flush (`_delivery`, 50).
_CHILD_CLOSE_PRIORITY = 100

_log = logging.getLogger(__name__)
_copies: weakref.WeakSet[LocalCopy] = weakref.WeakSet()


class LocalCopy:
    """Rows queued by the traced program, written to `store` by a thread of its own.

    `for_braintrust`: whether Braintrust gets the rows too (what the failure lines say is lost).
    """

    def __init__(
        self,
        store: LocalStore,
        *,
        for_braintrust: bool = False,
        max_pending_rows: int | None = None,
    ) -> None:
        self.store = store
        self.for_braintrust = for_braintrust
        self.max_pending_rows = max_pending_rows or _max_pending_rows()
        self.maskers: tuple[Masker, ...] = ()
        self._reset()
        _copies.add(self)
        # Runs in a child `multiprocessing` starts, at its start, before its target.
        multiprocessing.util.register_after_fork(self, _in_multiprocessing_child)

    def _reset(self) -> None:
        """Fresh state: at creation, and in a forked child (whose copy of the parent's locks may
        be held by a thread that does not exist there)."""
        self._cond = threading.Condition(threading.RLock())
        self._queue: deque[Any] = deque()
        self._oldest_at = 0.0  # when the oldest pending row was queued
        self._queued = 0  # rows accepted since start
        self._done = 0  # of them, rows written or given up on
        self._flush_upto = 0  # a flush waits for rows up to here
        self._dropped = 0
        self._given_up = 0  # rows not written within an exit's bound
        self._unstorable = 0
        self._failing: str | None = None  # why the store cannot be written now
        self._failing_said = False
        self._refused: str | None = None  # why the store is not used at all
        self._exiting = False
        self._exit_deadline = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._child_hooks_pid = 0

    # --- what Braintrust's background logger hands over -------------------------------------

    def add(self, rows: Sequence[LazyValue[dict[str, Any]]]) -> None:
        """Queue rows for the writer thread; never waits on the store (but at exit, bounded)."""
        dropped_now = 0
        with self._cond:
            if self._pid != os.getpid():  # forked without the at-fork hook (os.fork in C code)
                self._reset_in_child()
            if self._refused is not None or (
                self._exiting and time.monotonic() >= self._exit_deadline
            ):
                return  # refused: said once; exit's bound is over: said by close()
            was_empty = not self._queue
            if was_empty:
                self._oldest_at = time.monotonic()
            for row in rows:
                if len(self._queue) >= self.max_pending_rows:
                    dropped_now += 1
                    continue
                self._queue.append(row)
                self._queued += 1
            if was_empty or len(self._queue) >= WRITE_EVERY_ROWS:
                self._cond.notify_all()
            exiting = self._exiting
        self._start_writer()
        if dropped_now:
            self._count_dropped(dropped_now)
        if exiting:  # logged after the exit flush (a stream closed at teardown): written now,
            # within what is left of the exit's bound
            self.flush(max(0.0, self._exit_deadline - time.monotonic()))

    def flush(self, timeout: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until every row added so far is written: at most `timeout`, and at most
        `FAILING_WAIT_S` while the store cannot be written. Returns whether they were."""
        start = time.monotonic()
        with self._cond:
            target = self._queued
            if self._done >= target:
                return True
            if self._thread is threading.current_thread():
                return False  # a flush from inside a row's resolution: never wait on ourselves
            self._flush_upto = max(self._flush_upto, target)
            self._cond.notify_all()
        if not self._start_writer():  # no thread can start (the interpreter is exiting)
            self._write_inline(start, timeout)
        with self._cond:
            while self._done < target:
                remaining = self._limit(start, timeout) - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _limit(self, start: float, timeout: float) -> float:
        """When a wait begun at `start` ends: after `timeout`, or `FAILING_WAIT_S` while the
        store cannot be written."""
        if self._failing is not None:
            timeout = min(timeout, FAILING_WAIT_S)
        return start + timeout

    def close(self, timeout: float = EXIT_TIMEOUT_S) -> bool:
        """At exit: write what is pending (see `flush`) and stop the writer thread. Rows added
        after it (by threads still running) are written within the same bound. Says how many
        rows were not written, if any."""
        self._exit_deadline = time.monotonic() + timeout
        with self._cond:
            self._exiting = True
        written = self.flush(timeout)
        with self._cond:
            self._closed = True
            pending = self._queued - self._done + self._given_up
            if not written:  # exit's bound is over: not kept for a writer that stops now
                self._queue.clear()
            self._cond.notify_all()
        if pending and self._refused is None:
            notice(
                f"{pending} trace rows were not written to the local store {self.store.path}"
                f"{' (Braintrust got them)' if self.for_braintrust else ''}"
            )
        if self._dropped:
            notice(
                f"{self._dropped} trace rows were not kept in the local store (more than"
                f" {self.max_pending_rows} were waiting to be written)"
            )
        if self._unstorable > 1:
            notice(f"{self._unstorable} trace rows could not be stored")
        return written

    # --- the writer thread -----------------------------------------------------------------

    def _start_writer(self) -> bool:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return True
            if self._closed and not self._queue:
                return True
            if multiprocessing.parent_process() is not None:
                _in_multiprocessing_child(self)
            thread = threading.Thread(
                target=self._run, name="braintrust-ollama-store-writer", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return False
            self._thread = thread
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if not self._queue and (self._closed or _main_thread_gone_for_good()):
                        return
                    self._cond.wait(self._wait_s())
                batch = self._take_batch()
            try:
                self._write_batch(batch)
            except BaseException as error:  # the writer must outlive any failure
                self._report_row_failure(None, error)
                self._mark_done(len(batch))

    def _write_inline(self, start: float, timeout: float) -> None:
        """Write in the calling thread (none can start at interpreter exit), within the bound of
        a wait begun at `start` (see `_limit`)."""
        while time.monotonic() < self._limit(start, timeout):
            with self._cond:
                batch = self._take_batch()
            if not batch:
                return
            self._write_batch(batch, (start, timeout))

    def _due(self) -> bool:
        if not self._queue:
            return False
        return (
            self._exiting
            or self._flush_upto > self._done
            or len(self._queue) >= WRITE_EVERY_ROWS
            or time.monotonic() - self._oldest_at >= WRITE_EVERY_S
        )

    def _wait_s(self) -> float:
        if not self._queue:
            return _IDLE_CHECK_S
        return max(0.0, WRITE_EVERY_S - (time.monotonic() - self._oldest_at))

    def _take_batch(self) -> list[Any]:
        count = min(len(self._queue), _BATCH_ROWS)
        batch = [self._queue.popleft() for _ in range(count)]
        self._oldest_at = time.monotonic()
        return batch

    def _write_batch(self, batch: list[Any], bound: tuple[float, float] | None = None) -> None:
        """Resolve, mask and append one batch; while the store cannot be written, retried every
        `RETRY_S` (sooner when a flush asks), within the `bound` (start, timeout) of a wait if
        given."""
        rows, attachments = self._prepare(batch)
        while True:
            try:
                result = self.store.append(rows, attachments, timeout=LOCK_WAIT_S)
            except UnsafeStoreError as error:
                self._refuse(str(error))
                break
            except Exception as error:
                self._fail(error)
                with self._cond:
                    if self._closed or (
                        bound is not None and time.monotonic() >= self._limit(*bound)
                    ):
                        self._given_up += len(rows)  # exit's bound is over: said by close()
                        break
                    self._cond.wait(RETRY_S)
                continue
            self._recover()
            for row, reason in result.failed:
                self._report_row_failure(row, reason)
            break
        self._mark_done(len(batch))

    def _prepare(self, batch: list[Any]) -> tuple[list[dict[str, Any]], list[StoredAttachment]]:
        """Each lazy row resolved (no network), masked as Braintrust masks, its attachments
        replaced by their references and their bytes kept aside."""
        rows: list[dict[str, Any]] = []
        attachments: list[StoredAttachment] = []
        for lazy in batch:
            try:
                # A copy of its containers: masking may change a row in place, and Braintrust's
                # logger reads (and rewrites) the same row.
                row = copy_containers(lazy.get())
                for mask in self.maskers:
                    row = mask(row)
                row, found = _with_references(row)
            except Exception as error:
                self._report_row_failure(None, error)
            else:
                rows.append(row)
                attachments.extend(found)
        return rows, attachments

    def _mark_done(self, count: int) -> None:
        with self._cond:
            self._done += count
            self._cond.notify_all()

    # --- saying what happens ---------------------------------------------------------------

    def _lost(self) -> str:
        return "Braintrust still gets them" if self.for_braintrust else "they are not kept"

    def _refuse(self, reason: str) -> None:
        with self._cond:
            self._refused = reason
            self._queue.clear()
            self._done = self._queued
            self._cond.notify_all()
        notice(f"not writing traces to the local store: {reason}; {self._lost()}")

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            failing = self._failing is None
            if failing:
                self._failing = f"{type(error).__name__}: {error}"
            say = not self._failing_said
            self._failing_said = True
        if say:  # said before waiting flushes return: a daemon thread never writes at exit
            notice(
                f"the local store {self.store.path} cannot be written ({self._failing}):"
                f" new traces wait in memory (at most {self.max_pending_rows} rows) and are"
                f" written when it can be; those still waiting at exit are lost from it"
                f" ({self._lost()})"
            )
        if failing:
            with self._cond:
                self._cond.notify_all()  # flushes waiting now wait at most FAILING_WAIT_S
        _log.debug("braintrust-ollama: could not write to %s", self.store.path, exc_info=True)

    def _recover(self) -> None:
        if self._failing is not None:
            self._failing = None
            _log.info("braintrust-ollama: the local store %s is written again", self.store.path)

    def _report_row_failure(self, row: dict[str, Any] | None, error: BaseException) -> None:
        self._unstorable += 1
        if self._unstorable == 1:
            notice(
                f"a trace row could not be stored in {self.store.path} and was skipped"
                f" (span {_row_name(row)}): {type(error).__name__}: {error}"
            )

    def _count_dropped(self, count: int) -> None:
        first = self._dropped == 0
        self._dropped += count
        if first:
            notice(
                f"more than {self.max_pending_rows} trace rows are waiting to be written to"
                f" {self.store.path}; new rows are not kept there (and counted) until the"
                " writer catches up"
            )

    # --- processes -------------------------------------------------------------------------

    def _reset_in_child(self) -> None:
        """Called with `_cond` held in a child forked without our hook: start afresh."""
        self._queue.clear()
        self._thread = None
        self._pid = os.getpid()
        self._queued = self._done = self._flush_upto = 0


def _main_thread_gone_for_good() -> bool:
    """The program's main thread ended and the interpreter is not shutting down: a child forked
    from another thread, whose thread returned. Such a process ends when its last thread does,
    running no exit code: the writer, having written everything, must not keep it alive."""
    return not threading.main_thread().is_alive() and not getattr(threading, "_SHUTTING_DOWN", True)


def _with_references(row: dict[str, Any]) -> tuple[dict[str, Any], list[StoredAttachment]]:
    """`row` with each attachment replaced by its Braintrust reference, as Braintrust's loggers
    do before upload, and the bytes of those whose content is local (not an
    `ExternalAttachment`, whose bytes are a URL away)."""
    found: list[StoredAttachment] = []
    root = str(row.get("root_span_id") or row.get("id") or "")

    def to_reference(attachment: Any) -> Any:
        if not isinstance(attachment, BaseAttachment):
            return None  # a reference already
        reference: dict[str, Any] = dict(attachment.reference)
        if isinstance(attachment, Attachment):
            found.append(
                StoredAttachment(
                    key=reference["key"],
                    content_type=reference.get("content_type") or "application/octet-stream",
                    filename=reference.get("filename") or reference["key"],
                    data=attachment.data,
                    root_span_id=root,
                )
            )
        return reference

    return map_attachments(row, to_reference), found


def _row_name(row: dict[str, Any] | None) -> str:
    if not row:
        return "?"
    attributes = row.get("span_attributes") or {}
    return f"{attributes.get('name') or '?'} {row.get('id', '')}".strip()


def _max_pending_rows() -> int:
    try:
        return max(1, int(os.environ.get(MAX_PENDING_ROWS_ENV, MAX_PENDING_ROWS)))
    except ValueError:
        return MAX_PENDING_ROWS


# --- process lifecycle -----------------------------------------------------------------------


def _after_fork_in_child() -> None:
    """The child drops the parent's pending rows (the parent writes them) and gets new locks."""
    for copy in list(_copies):
        refused, maskers = copy._refused, copy.maskers
        copy._reset()
        copy._refused = refused  # said by the parent; nothing to say again
        copy.maskers = maskers


def _in_multiprocessing_child(copy: LocalCopy) -> None:
    """In a `multiprocessing` child (fork or spawn), once: its rows are written when it exits,
    and a `Pool` worker's before each of its results goes back.

    A child leaves through `os._exit()`, which skips `atexit`: multiprocessing's own finalizers
    run instead. A `Pool` worker is not let exit: as soon as the parent has its results, leaving
    a `with Pool()` block (or `pool.terminate()`) ends it by SIGTERM, which runs nothing, so it
    must not hold a row by then. (A SIGTERM handler cannot do it safely: Python runs handlers
    only between bytecodes, and a worker blocked on the pool's task lock may sleep through the
    signal and then never end.)
    """
    if copy._child_hooks_pid == os.getpid():
        return
    copy._child_hooks_pid = os.getpid()
    multiprocessing.util.Finalize(copy, copy.close, exitpriority=_CHILD_CLOSE_PRIORITY)
    process: Any = multiprocessing.current_process()
    pool_worker = getattr(multiprocessing.pool, "worker", None)  # its task loop
    if pool_worker is not None and getattr(process, "_target", None) is pool_worker:
        try:
            results = process._args[1]  # worker(inqueue, outqueue, ...)
            # Its lock, taken around each send (so the wait is not spent holding it), or the
            # pipe itself where sends need no lock (Windows).
            if results._wlock is not None:
                results._wlock = _RowsBeforeResults(results._wlock, copy)
            else:
                results._writer = _RowsBeforeResults(results._writer, copy)
        except Exception:  # another Python's pool: rows are written at exit only
            _log.debug("braintrust-ollama: could not hook a pool worker", exc_info=True)


class _RowsBeforeResults(wrapt.ObjectProxy):
    """A `Pool` worker's result lock (or pipe): the rows it logged are written before a result
    is sent, since the parent may end the worker as soon as it has them.

    Each wait lasts at most `EXIT_TIMEOUT_S` (`FAILING_WAIT_S` while the store fails). When one
    runs out, one line says so and results go on without waiting until the store has taken
    those rows."""

    def __init__(self, wrapped: Any, copy: LocalCopy) -> None:
        super().__init__(wrapped)
        self._self_copy = copy
        self._self_stuck_until = 0  # rows logged when a wait ran out: none until they are written
        self._self_warned = False

    def __enter__(self) -> Any:
        self._self_write_rows()
        return self.__wrapped__.__enter__()

    def send_bytes(self, *args: Any, **kwargs: Any) -> None:
        self._self_write_rows()
        self.__wrapped__.send_bytes(*args, **kwargs)

    def _self_write_rows(self) -> None:
        copy = self._self_copy
        try:
            if copy._done < self._self_stuck_until:
                return
            self._self_stuck_until = 0
            if not copy.flush(EXIT_TIMEOUT_S) and copy._refused is None:
                self._self_stuck_until = copy._queued
                if not self._self_warned:
                    self._self_warned = True
                    notice(
                        f"{copy.store.path} took no rows in time ({copy._failing or 'another'}"
                        " process holds its write lock?): this Pool worker's results go back"
                        " without waiting for their rows, which are lost from it if the pool"
                        " ends the worker first"
                    )
        except Exception:  # never costs the task its result
            _log.debug("braintrust-ollama: could not write rows before a result", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- the local store as the only destination -------------------------------------------------


def init_local_logger(
    project: str = "braintrust-ollama",
    *,
    path: Path | str | None = None,
    max_store_mb: float | None = None,
) -> Logger:
    """A Braintrust `Logger` for `project` whose spans go to the local store instead of Braintrust.

    It becomes the current logger, so `braintrust.traced`, `braintrust.start_span` and the
    Ollama spans of `setup_ollama()` land in it. Needs no API key and makes no network calls.
    Prints one line to stderr saying where the traces go; view them with
    `braintrust-ollama traces show last`. The store holds at most `max_store_mb` megabytes
    (`BRAINTRUST_OLLAMA_MAX_STORE_MB`, default 200): past it, the oldest traces are dropped.
    """
    from braintrust_ollama.destinations import install

    store = LocalStore(path, max_store_mb=max_store_mb)
    logger = braintrust.init_logger(project=project, set_current=True)
    name_rows_by(logger, project)
    install(logger, local=LocalCopy(store), braintrust=None)
    notice(
        f"traces go to the local store {store.path} (view them: {cli_command()} traces show last)"
    )
    return logger
