"""Every use this suite makes of Braintrust beyond its documented API, in one module.

Each function names what it needs and why no public way exists; each is checked against the
installed braintrust by `tests/core/test_braintrust_contract.py`, which fails loudly on a release
that changes it. The private names (`_lazy_id`, `_export_customizers`, `_cv_logger`,
`_local_logger`, `HTTP_REQUEST_THREAD_POOL`) appear nowhere else in the core package; the
adapters keep their own one each (`BraintrustCallbackHandler._end_span`,
`BraintrustSpanHandler._bt_spans`), listed in docs/CONTRACTS.md.

Public but undocumented attributes used here and in `_delivery.py`: a background logger's
`sync_flush` (the storage of Braintrust's own `BRAINTRUST_SYNC_FLUSH` knob) and
`masking_function` (braintrust < 0.41), and `BraintrustState.global_bg_logger()` and
`copy_state()`.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from braintrust import logger as braintrust_logger
from braintrust.logger import Logger
from braintrust.util import LazyValue

__all__ = [
    "Masker",
    "background_of",
    "make_current",
    "maskers_of",
    "name_rows_by",
    "use_daemon_request_pool",
]

Row = dict[str, Any]
Masker = Callable[[Row], Row]

# The fields Braintrust's masking function is applied to (braintrust's REDACTION_FIELDS, and
# `_MASKING_FIELDS` of its masking customizer): the same on every release since 0.10.
_MASKED_FIELDS = ("input", "output", "expected", "metadata", "context", "scores", "metrics")


def background_of(logger: Logger) -> Any:
    """The background logger `logger`'s rows go through: its state's global one (public-named,
    undocumented: `Logger.logging_state` is public, `BraintrustState.global_bg_logger()` is what
    every Braintrust span calls to log)."""
    return logger.logging_state.global_bg_logger()


def name_rows_by(logger: Logger, local_id: str) -> None:
    """Make `logger`'s rows name their project by `local_id` (its name), resolved at once.

    A Braintrust row's project id is resolved through a login and a project registration, in
    whichever thread resolves the row first: the local copy would wait on the network for each
    row (forever when Braintrust is away). No public way gives a logger a project id without a
    login. The id stays unresolved for Braintrust (`has_succeeded` False), so `span.export()`
    hands other processes the project *name* to resolve, as Braintrust does before its login.
    Braintrust's copy of each row gets the real id in `_delivery.py`.
    """
    logger._lazy_id = _LocalId(local_id)


class _LocalId(LazyValue[str]):
    def __init__(self, local_id: str) -> None:
        super().__init__(lambda: local_id, use_mutex=False)

    def get(self) -> str:
        return self.callable()


def maskers_of(background: Any) -> tuple[Masker, ...]:
    """The masking `braintrust.set_masking_function()` gave `background`, as functions of a row.

    Set before this suite's logger existed, it can only be read where Braintrust keeps it: the
    logger-local export customizers (braintrust >= 0.41, private), or `masking_function`
    (earlier releases)."""
    customizers = getattr(background, "_export_customizers", None)
    if customizers is not None:
        return tuple(customizer.on_span_export for customizer in customizers)
    function = getattr(background, "masking_function", None)
    return (mask_fields(function),) if function is not None else ()


def carry_masking(source: Any, target: Any) -> None:
    """Give the background logger `target` the masking `source` has (a forked child's own
    background logger masks as the parent's did)."""
    for attribute in ("_export_customizers", "masking_function"):
        if attribute in vars(source) and attribute in vars(target):
            setattr(target, attribute, getattr(source, attribute))


def mask_fields(function: Callable[[Any], Any]) -> Masker:
    """A masking function applied as Braintrust applies it: to each of the masked fields; a
    field it fails on is replaced by an error note (scores and metrics are dropped), never kept
    unmasked."""

    def mask(row: Row) -> Row:
        masked = dict(row)
        for name in _MASKED_FIELDS:
            if name not in masked:
                continue
            try:
                masked[name] = function(masked[name])
            except Exception as error:
                note = f"ERROR: Failed to mask field '{name}' - {type(error).__name__}"
                if name in ("scores", "metrics"):
                    del masked[name]
                    masked["error"] = f"{masked['error']}; {note}" if "error" in masked else note
                else:
                    masked[name] = {"error": note} if name == "metadata" else note
        return masked

    return mask


def make_current(logger: Logger) -> None:
    """Make `logger` the current logger again, as `braintrust.init_logger(set_current=True)`
    made it (Braintrust's integration set-ups call `init_logger()` when no span is current,
    replacing the user's; no public call makes an existing logger current)."""
    state = logger.logging_state
    state._cv_logger.set(logger)
    state._local_logger = logger


def use_daemon_request_pool() -> None:
    """Braintrust's background logger posts each flush's batches through a module-wide thread
    pool (`HTTP_REQUEST_THREAD_POOL`), whose threads the interpreter joins at exit: a post that
    never gets an answer (uploads that hang) then holds the program's exit for as long as its
    retries last, past any bound of ours. In its place, the same pool of daemon threads, which
    exit does not wait for (flushes are waited for, bounded, by this suite), and which a forked
    child starts afresh (`fork()` copies a pool with threads that do not exist in the child: a
    batch given to it would never be posted). Idempotent."""
    if not isinstance(braintrust_logger.HTTP_REQUEST_THREAD_POOL, DaemonPool):
        pool = DaemonPool(os.cpu_count() or 2)
        braintrust_logger.HTTP_REQUEST_THREAD_POOL = pool  # type: ignore[assignment]


class DaemonPool(concurrent.futures.Executor):
    """A thread pool of daemon threads, started as work comes, and new in a forked child."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max_workers
        self._reset()
        _pools.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = 0
        self._shut = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run `fn` in a pool thread; raises RuntimeError when none can start (at exit): then
        Braintrust posts in the calling thread."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._threads < self.max_workers:
                thread = threading.Thread(
                    target=self._serve, name="braintrust-ollama-post", daemon=True
                )
                try:
                    thread.start()
                    self._threads += 1
                except RuntimeError:  # at interpreter shutdown
                    if not self._threads:
                        raise
            self._work.put((future, fn, args, kwargs))
        return future

    def _serve(self) -> None:
        while True:
            future, fn, args, kwargs = self._work.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as error:
                    future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True


_pools: weakref.WeakSet[DaemonPool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        pool._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
