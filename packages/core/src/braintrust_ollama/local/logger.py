"""`init_local_logger()`: Braintrust logging into the local store, with no account and no network.

The hook is Braintrust's own: every span row goes through the process's background logger
(`BraintrustState.global_bg_logger()`), the object Braintrust's test helpers swap for an in-memory
one. We install `LocalBackgroundLogger`, which merges and masks rows the way Braintrust's
in-memory logger does and writes them to a `LocalStore` from a thread of its own.

When rows are written, and what the traced program pays:
- `log()` (called by Braintrust for every span row) only appends to a queue: a traced call never
  waits on the store, even while another process holds its write lock.
- A daemon writer thread, started at the first row, writes what is pending every
  `WRITE_EVERY_S` seconds, or as soon as `WRITE_EVERY_ROWS` rows are pending.
- `braintrust.flush()` waits until every row logged before it is written, at most
  `FLUSH_TIMEOUT_S` seconds. At interpreter exit the same happens, bounded by
  `EXIT_FLUSH_TIMEOUT_S`; a `multiprocessing` child's rows are written when it exits, and a
  `Pool` worker's before each result it sends back (see `_in_multiprocessing_child`).
- At most `MAX_PENDING_ROWS` rows wait in memory (`BRAINTRUST_OLLAMA_MAX_PENDING_ROWS`): past
  that, new rows are dropped and counted, said once when it starts and once with the count.

Failures never reach the traced code: they are logged through `logging` (logger
`braintrust_ollama.local`). A row that cannot be resolved, masked, or stored is reported once and
skipped; the other rows are written. A store that cannot be written (locked for longer than its
busy timeout, disk full) is reported once and retried.

`fork()` (multiprocessing's default on Linux, uvicorn/gunicorn workers) is safe: the child starts
with an empty queue (the parent writes the rows it logged), a new lock and its own writer
thread, so it never re-writes nor replaces the parent's rows.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.pool
import multiprocessing.util
import os
import sys
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import braintrust
import wrapt
from braintrust.logger import (
    Attachment,
    BaseAttachment,
    Logger,
    ObjectMetadata,
    OrgProjectMetadata,
    _internal_get_global_state,
    _MemoryBackgroundLogger,
)
from braintrust.util import LazyValue

from braintrust_ollama._command import cli_command
from braintrust_ollama.local.store import BUSY_TIMEOUT_S, LocalStore, StoredAttachment
from braintrust_ollama.local.uplink import carry_masking

__all__ = ["LocalBackgroundLogger", "init_local_logger", "install_local_store"]

LOCAL_ORG_ID = "local"
WRITE_EVERY_S = 0.5
WRITE_EVERY_ROWS = 50
FLUSH_TIMEOUT_S = 30.0
EXIT_FLUSH_TIMEOUT_S = 5.0
MAX_PENDING_ROWS_ENV = "BRAINTRUST_OLLAMA_MAX_PENDING_ROWS"
MAX_PENDING_ROWS = 100_000
_BATCH_ROWS = 2_000
_IDLE_CHECK_S = 1.0  # how often an idle writer checks that its process goes on
_RETRY_S = 1.0
# A `multiprocessing` child's exit finalizers run by decreasing priority: its unfinished streams
# (`_stream`, 101), then the store's close (this), then the uplink's flush (`uplink`, 50).
_CHILD_CLOSE_PRIORITY = 100

_log = logging.getLogger(__name__)
_install_lock = threading.Lock()
_installed: LocalBackgroundLogger | None = None
_instances: weakref.WeakSet[LocalBackgroundLogger] = weakref.WeakSet()


class _Forward(Protocol):
    """Where a copy of the stored rows goes (`BraintrustUplink`)."""

    def send(self, rows: list[dict[str, Any]]) -> None: ...
    def flush(self, batch_size: int | None = None) -> None: ...


class LocalBackgroundLogger(_MemoryBackgroundLogger):
    """Braintrust's background logger for the local store: rows are merged and masked as
    Braintrust's in-memory logger does, and written to `store` by a thread of its own.

    With `forward`, the rows written (resolved, merged and masked here, with no login) are also
    handed to it, so Braintrust receives what the local copy holds, and the local copy never
    waits on Braintrust.
    """

    def __init__(
        self,
        store: LocalStore,
        forward: _Forward | None = None,
        *,
        max_pending_rows: int | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.forward = forward
        self.max_pending_rows = max_pending_rows or _max_pending_rows()
        self._reset()
        _instances.add(self)
        # Runs in a child `multiprocessing` starts, at its start, before its target.
        multiprocessing.util.register_after_fork(self, _in_multiprocessing_child)

    def _reset(self) -> None:
        """Fresh state: at creation, and in a forked child (whose copy of the parent's locks may
        be held by a thread that does not exist there)."""
        self.lock = threading.Lock()  # Braintrust's in-memory logger's own
        self.logs = []
        self._cond = threading.Condition(threading.RLock())
        self._queue: deque[Any] = deque()
        self._oldest_at = 0.0  # when the oldest pending row was queued
        self._queued = 0  # rows accepted since start
        self._done = 0  # of them, rows written or given up on
        self._flush_upto = 0  # a flush waits for rows up to here
        self._dropped = 0
        self._unstorable = 0
        self._store_failing = False
        self._exiting = False
        self._exit_deadline = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._child_hooks_pid = 0

    # --- Braintrust's background-logger interface ------------------------------------------

    def log(self, *args: Any) -> None:
        """Queue rows for the writer thread; never waits on the store (but at exit, see below)."""
        dropped_now = 0
        with self._cond:
            if self._pid != os.getpid():  # forked without the at-fork hook (os.fork in C code)
                self._reset_locked_state()
            if self._exiting and time.monotonic() >= self._exit_deadline:
                return  # threads still logging once exit's bound is over: said by close()
            for row in args:
                if len(self._queue) >= self.max_pending_rows:
                    dropped_now += 1
                    continue
                if not self._queue:
                    self._oldest_at = time.monotonic()
                self._queue.append(row)
                self._queued += 1
            if len(self._queue) >= WRITE_EVERY_ROWS:
                self._cond.notify_all()
            exiting = self._exiting
        self._start_writer()
        if dropped_now:
            self._count_dropped(dropped_now)
        if exiting:  # logged after the exit flush (a stream closed at teardown): write it now,
            # within what is left of the exit's bound
            self._wait_written(max(0.0, self._exit_deadline - time.monotonic()))

    def flush(self, batch_size: int | None = None) -> None:
        """Wait until every row logged so far is written (at most `FLUSH_TIMEOUT_S`)."""
        self._wait_written(FLUSH_TIMEOUT_S)
        if self.forward is not None:
            self.forward.flush(batch_size)

    def pop(self) -> list[dict[str, Any]]:
        """Rows are not kept for popping: they go to the store."""
        return []

    def internal_replace_api_conn(self, api_conn: Any) -> None:
        """Called by `braintrust.login()`; only the forwarded HTTP logger has a connection."""
        replace = getattr(self.forward, "internal_replace_api_conn", None)
        if replace is not None:
            replace(api_conn)

    def close(self, timeout: float = EXIT_FLUSH_TIMEOUT_S) -> bool:
        """Write what is pending (at most `timeout` seconds) and stop the writer thread.

        Returns whether everything was written; if not, says how many rows were not. Then
        `forward` (Braintrust, with a local copy) gets its own bounded flush of what was handed
        to it, so the rows written last reach Braintrust too. Rows logged after it (by threads
        still running at exit, say) are written within the same `timeout`, counted from now."""
        self._exit_deadline = time.monotonic() + timeout
        written = self._wait_written(timeout)
        if self.forward is not None:
            try:
                self.forward.flush()
            except Exception:  # never a traceback at exit
                _log.debug("braintrust-ollama: could not flush rows to Braintrust", exc_info=True)
        with self._cond:
            self._closed = True
            self._exiting = True
            pending = self._queued - self._done
            if not written:  # exit's bound is over: not kept for a writer that stops now
                self._queue.clear()
            self._cond.notify_all()
        if not written and pending:
            _log.warning(
                "braintrust-ollama: %d trace rows not written to %s within %.0f s"
                " (rows logged after that are not written either)",
                pending,
                self.store.path,
                timeout,
            )
        if self._dropped:
            _log.warning(
                "braintrust-ollama: %d trace rows were dropped (more than %d waiting)",
                self._dropped,
                self.max_pending_rows,
            )
        if self._unstorable > 1:
            _log.warning("braintrust-ollama: %d trace rows could not be stored", self._unstorable)
        return written

    # --- waiting for the writer ------------------------------------------------------------

    def _wait_written(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._queued
            if self._done >= target:
                return True
            if self._thread is threading.current_thread():
                return False  # a flush from inside a row's resolution: never wait on ourselves
            self._flush_upto = max(self._flush_upto, target)
            self._cond.notify_all()
        if not self._start_writer():  # no thread can start (interpreter shutting down)
            self._write_inline(deadline)
        with self._cond:
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

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

    def _write_inline(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            with self._cond:
                batch = self._take_batch()
            if not batch:
                return
            self._write_batch(batch, deadline)

    # --- the writer thread -----------------------------------------------------------------

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
                with self._cond:
                    self._done += len(batch)
                    self._cond.notify_all()

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

    def _write_batch(self, batch: list[Any], deadline: float | None = None) -> None:
        """Resolve, merge, mask and store one batch; retried while the store cannot be written,
        until `deadline` if given (then its rows count as not written)."""
        rows, attachments = self._prepare(batch)
        while True:
            try:
                timeout = BUSY_TIMEOUT_S if deadline is None else deadline - time.monotonic()
                result = self.store.write(rows, attachments, timeout=max(0.0, timeout))
            except Exception as error:
                if not self._store_failing:
                    self._store_failing = True
                    _log.warning(
                        "braintrust-ollama: could not write traces to %s (%s); retrying",
                        self.store.path,
                        error,
                    )
                with self._cond:
                    if self._closed or (deadline is not None and time.monotonic() >= deadline):
                        return  # exit time is over: what is left is reported by close()
                    self._cond.wait(_RETRY_S)
                continue
            break
        self._store_failing = False
        for row, reason in result.failed:
            self._report_row_failure(row, reason)
        with self._cond:
            self._done += len(batch)
            self._cond.notify_all()

    def _prepare(self, batch: list[Any]) -> tuple[list[dict[str, Any]], list[StoredAttachment]]:
        """Braintrust's lazy rows resolved one by one, merged and masked as its in-memory logger
        does; attachments replaced by their references and their bytes kept aside."""
        resolved = []
        for lazy in batch:
            try:
                resolved.append(lazy.get())
            except Exception as error:
                self._report_row_failure(None, error)
        try:
            rows = self._merge_and_mask(resolved)
        except Exception:  # find the row at fault: each alone
            rows = []
            for row in resolved:
                try:
                    rows.extend(self._merge_and_mask([row]))
                except Exception as error:
                    self._report_row_failure(row, error)
        self._forward(rows)
        prepared, attachments = [], []
        for row in rows:
            try:
                attachments.extend(_extract_attachments(row))
                prepared.append(row)
            except Exception as failure:
                self._report_row_failure(row, failure)
        return prepared, attachments

    def _forward(self, rows: list[dict[str, Any]]) -> None:
        """Hand the rows as stored (resolved, merged, masked; attachments still objects) to
        `forward`, which copies them: Braintrust gets what the local copy holds."""
        if self.forward is None or not rows:
            return
        try:
            self.forward.send(rows)
        except Exception:  # never costs the local copy a row
            _log.debug("braintrust-ollama: could not hand rows to Braintrust", exc_info=True)

    def _merge_and_mask(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.lock:
            self.logs = [_resolved(row) for row in rows]
        return super().pop()

    # --- reporting -------------------------------------------------------------------------

    def _report_row_failure(self, row: dict[str, Any] | None, error: BaseException) -> None:
        self._unstorable += 1
        if self._unstorable == 1:
            _log.warning(
                "braintrust-ollama: a trace row could not be stored in %s and was skipped"
                " (span %s): %s: %s",
                self.store.path,
                _row_name(row),
                type(error).__name__,
                error,
            )

    def _count_dropped(self, count: int) -> None:
        first = self._dropped == 0
        self._dropped += count
        if first:
            _log.warning(
                "braintrust-ollama: more than %d trace rows are waiting to be written to %s;"
                " new rows are dropped (and counted) until the writer catches up",
                self.max_pending_rows,
                self.store.path,
            )

    # --- processes -------------------------------------------------------------------------

    def _reset_locked_state(self) -> None:
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


def _resolved(row: dict[str, Any]) -> LazyValue[dict[str, Any]]:
    return LazyValue(lambda: row, use_mutex=False)


def _extract_attachments(row: dict[str, Any]) -> list[StoredAttachment]:
    """Replace each attachment in `row` by its Braintrust reference (as Braintrust's loggers
    do before upload); return the bytes of those whose content is local."""
    found: list[StoredAttachment] = []

    def visit(value: Any) -> Any:
        if isinstance(value, BaseAttachment):
            reference: dict[str, Any] = dict(value.reference)
            if isinstance(value, Attachment):  # not ExternalAttachment: its bytes are a URL away
                found.append(
                    StoredAttachment(
                        key=reference["key"],
                        content_type=reference.get("content_type") or "application/octet-stream",
                        filename=reference.get("filename") or reference["key"],
                        data=value.data,
                    )
                )
            return reference
        if isinstance(value, dict):
            return {k: visit(v) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(v) for v in value]
        return value

    for key, value in list(row.items()):
        row[key] = visit(value)
    return found


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
    for background in list(_instances):
        background._reset()


def _in_multiprocessing_child(background: LocalBackgroundLogger) -> None:
    """In a `multiprocessing` child (fork or spawn), once: its rows are written when it exits,
    and a `Pool` worker's before each of its results goes back.

    A child leaves through `os._exit()`, which skips `atexit`: multiprocessing's own finalizers
    run instead. A `Pool` worker is not let exit: as soon as the parent has its results, leaving
    a `with Pool()` block (or `pool.terminate()`) ends it by SIGTERM, which runs nothing, so it
    must not hold a row by then. (A SIGTERM handler cannot do it safely: Python runs handlers
    only between bytecodes, and a worker blocked on the pool's task lock may sleep through the
    signal and then never end.)
    """
    if background._child_hooks_pid == os.getpid():
        return
    background._child_hooks_pid = os.getpid()
    multiprocessing.util.Finalize(background, background.close, exitpriority=_CHILD_CLOSE_PRIORITY)
    process: Any = multiprocessing.current_process()
    pool_worker = getattr(multiprocessing.pool, "worker", None)  # its task loop
    if pool_worker is not None and getattr(process, "_target", None) is pool_worker:
        try:
            results = process._args[1]  # worker(inqueue, outqueue, ...)
            # Its lock, taken around each send (so the wait is not spent holding it), or the
            # pipe itself where sends need no lock (Windows).
            if results._wlock is not None:
                results._wlock = _RowsBeforeResults(results._wlock, background)
            else:
                results._writer = _RowsBeforeResults(results._writer, background)
        except Exception:  # another Python's pool: rows are written at exit only
            _log.debug("braintrust-ollama: could not hook a pool worker", exc_info=True)


class _RowsBeforeResults(wrapt.ObjectProxy):
    """A `Pool` worker's result lock (or pipe): the rows it logged are written before a result
    is sent, since the parent may end the worker as soon as it has them.

    Each wait lasts at most `EXIT_FLUSH_TIMEOUT_S`. When one runs out (another process holds the
    store's write lock), one line says so and results go on without waiting until the store has
    taken those rows."""

    def __init__(self, wrapped: Any, background: LocalBackgroundLogger) -> None:
        super().__init__(wrapped)
        self._self_background = background
        self._self_stuck_until = 0  # rows logged when a wait ran out: none until they are written
        self._self_warned = False

    def __enter__(self) -> Any:
        self._self_write_rows()
        return self.__wrapped__.__enter__()

    def send_bytes(self, *args: Any, **kwargs: Any) -> None:
        self._self_write_rows()
        self.__wrapped__.send_bytes(*args, **kwargs)

    def _self_write_rows(self) -> None:
        background = self._self_background
        try:
            if background._done < self._self_stuck_until:
                return
            self._self_stuck_until = 0
            if not background._wait_written(EXIT_FLUSH_TIMEOUT_S):
                self._self_stuck_until = background._queued
                if not self._self_warned:
                    self._self_warned = True
                    _log.warning(
                        "braintrust-ollama: %s took no rows for %.0f s (another process holds its"
                        " write lock?): this Pool worker's results go back without waiting for"
                        " their rows, which are lost if the pool ends the worker first",
                        background.store.path,
                        EXIT_FLUSH_TIMEOUT_S,
                    )
        except Exception:  # never costs the task its result
            _log.debug("braintrust-ollama: could not write rows before a result", exc_info=True)


def _close_all(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for background in list(_instances):
        try:
            background.close(max(0.0, deadline - time.monotonic()))
        except Exception as error:  # never a traceback at exit
            _log.warning("braintrust-ollama: could not write traces at exit: %s", error)


def _close_all_at_exit() -> None:
    _close_all(EXIT_FLUSH_TIMEOUT_S)


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- installing ------------------------------------------------------------------------------


def install_local_store(
    store: LocalStore | None = None, *, forward: _Forward | None = None
) -> LocalBackgroundLogger:
    """Send every Braintrust row this process logs to `store` (and to `forward`, if given).

    Idempotent for the same store path and forward; a later call with another path or forward
    replaces the first. A masking function set before (`braintrust.set_masking_function`)
    carries over.
    """
    global _installed
    store = store or LocalStore()
    with _install_lock:
        if (
            _installed is not None
            and _installed.store.path == store.path
            and (forward is None or _installed.forward is forward)
        ):
            return _installed
        if _installed is not None:
            _installed.close()
        background = LocalBackgroundLogger(store, forward)
        state = _internal_get_global_state()
        created, previous = state._global_bg_logger.get_sync()
        if created and previous is not None:
            carry_masking(previous, background)
        state._global_bg_logger = LazyValue(lambda: background, use_mutex=False)
        _installed = background
        return background


def init_local_logger(
    project: str = "braintrust-ollama", *, path: Path | str | None = None
) -> Logger:
    """A Braintrust `Logger` for `project` whose spans go to the local store instead of Braintrust.

    It becomes the current logger, so `braintrust.traced`, `braintrust.start_span` and the
    Ollama spans of `setup_ollama()` land in it. Needs no API key and makes no network calls.
    Prints one line to stderr saying where the traces go; view them with
    `braintrust-ollama traces show last`.
    """
    background = install_local_store(LocalStore(path))
    metadata = OrgProjectMetadata(
        org_id=LOCAL_ORG_ID, project=ObjectMetadata(id=project, name=project, full_info={})
    )
    logger = braintrust.init_logger(project=project, set_current=True)
    # Braintrust's own test helper (`braintrust.test_helpers.init_test_logger`) makes a logger
    # without login the same way: by giving it resolved project metadata.
    logger._lazy_metadata = LazyValue(lambda: metadata, use_mutex=False)
    logger._lazy_id.get()  # resolved now, so exported spans name the project, not a login
    # The line and its newline in one write: the lines of several worker processes (uvicorn
    # --workers) sharing one stderr never run into each other.
    print(
        f"braintrust-ollama: traces go to the local store {background.store.path}"
        f" (view them: {cli_command()} traces show last)\n",
        end="",
        file=sys.stderr,
    )
    return logger
