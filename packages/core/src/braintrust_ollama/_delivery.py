"""`BraintrustDelivery`: Braintrust's own background logger, fed and waited for with bounds.

Braintrust's background logger does the delivery (batching, payload limits, attachment
uploads, retries); this module only decides when it runs and how long anyone waits:

- One daemon thread per process logs in (the public `braintrust.login()`), registers the
  project (Braintrust's REST API, `POST /v1/project`, on the login's connection: no thread
  started, so a script that ends during its login still gets its rows out, even on Python
  3.12+ where no thread can start at exit), then hands rows to the background logger and
  flushes it, in Braintrust's synchronous mode (`sync_flush`: a flush raises when a batch is not
  taken, where the background thread would print and drop it). Rows not taken stay queued
  here and are sent again, in order (Braintrust keeps one row per id, so nothing is
  duplicated), after a pause that grows from `RETRY_FIRST_S` to `RETRY_MAX_S`.
- A traced call never waits: rows name their project by a local id (`name_rows_by`), and the
  real id is put on Braintrust's copy of each row in this thread.
- `flush(timeout)` waits until Braintrust took every row handed over before it, at most
  `timeout`. A wait that runs out, or a login or delivery that fails, makes Braintrust count as
  away: one line on stderr says so (once per process: forked children know whether their parent
  said it), and no flush or exit waits for it while it is. Delivery goes on in the background,
  and the next batch Braintrust takes ends the away state: a server that sees Braintrust slow
  or gone for a while loses nothing. A rejected API key (HTTP 401/403) ends delivery for good.
- At most `MAX_WAITING_ROWS` rows wait for Braintrust; past that, the oldest are not sent, and
  one line says how many (the local copy, when on, has them).
- A forked child (`os.fork()`, `multiprocessing` with fork) sends the rows it logs, never the
  parent's: it keeps the parent's login (on connections of its own) and uses a background
  logger of its own; forked during the parent's login, it logs in itself.
"""

from __future__ import annotations

import io
import logging
import multiprocessing.util

# requests imports `netrc` at its first request (the login, in the delivery thread): a fork during
# that import would leave the module's import lock held in the child, whose own login would then
# wait for it forever. Imported now, before any thread of ours (the only module a login imports).
import netrc  # noqa: F401
import os
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import braintrust
from braintrust.logger import BraintrustState, RetryRequestExceptionsAdapter
from braintrust.util import LazyValue

from braintrust_ollama import _braintrust
from braintrust_ollama._rows import copy_containers, resolved
from braintrust_ollama._warn import notice, safe_url, warn_once

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "MAX_WAITING_ROWS",
    "BraintrustDelivery",
    "Credentials",
    "explain",
    "quiet",
]

DEFAULT_TIMEOUT_S = 5.0
MAX_WAITING_ROWS = 100_000
BATCH_ROWS = 1_000  # rows per flush: well within Braintrust's queue (25,000 by default)
SEND_EVERY_S = 0.5
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
# A `multiprocessing` child's flush runs after its local copy's last write (priority 100).
_CHILD_FLUSH_PRIORITY = 50
_REASON_CHARS = 160

_log = logging.getLogger(__name__)
_deliveries: weakref.WeakSet[BraintrustDelivery] = weakref.WeakSet()

Row = dict[str, Any]


@dataclass(frozen=True)
class Credentials:
    """What `braintrust.login()` takes (None: Braintrust's own look-up, `BRAINTRUST_API_KEY`...)."""

    api_key: str | None
    app_url: str | None
    org_name: str | None


class BraintrustDelivery:
    """Rows to Braintrust off the caller's thread, with bounded waits and one line when away.

    `projects` maps the local ids rows carry to Braintrust project names. `kept_where` ends the
    away line: where the rows Braintrust did not take are.
    """

    def __init__(
        self,
        state: BraintrustState,
        *,
        credentials: Credentials,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        kept_where: str,
    ) -> None:
        self.credentials = credentials
        self.timeout_s = timeout_s
        self.kept_where = kept_where
        self.app_url = safe_url(credentials.app_url or _env_app_url())
        self._projects: dict[str, str] = {}  # local id -> project name
        self._project_ids: dict[str, str] = {}  # local id -> Braintrust's id, once registered
        self._logged_in = False
        self._rejected = False  # the API key was refused: nothing is sent any more
        self._away: str | None = None
        self._said = False  # the one line was printed (in this process or its parent)
        _braintrust.use_daemon_request_pool()
        self._use(state)
        self._fresh()
        _deliveries.add(self)

    def _use(self, state: BraintrustState) -> None:
        """Log in with `state` and deliver through its background logger: that logger's own
        `log` and `flush`, whatever replaced them on the instance (the router of
        `destinations.py`), in Braintrust's synchronous mode."""
        background: Any = state.global_bg_logger()
        cls = type(background)
        self._state = state
        self._background = background
        self._log_rows: Callable[..., None] = cls.log.__get__(background)
        self._flush_rows: Callable[[], None] = cls.flush.__get__(background)
        quiet(background)
        background.sync_flush = True
        if "flush" not in vars(background):
            # A background logger of this delivery's own flushes at exit (Braintrust's atexit
            # hook) with no bound: the exit flush of `destinations.py` does it, bounded.
            background.flush = _no_flush
        try:  # its publisher thread, started now while threads can start (not at exit)
            self._log_rows()
        except RuntimeError:
            _log.debug("braintrust-ollama: could not start Braintrust's publisher", exc_info=True)

    def _fresh(self) -> None:
        """Locks, queue and thread, all new: at creation, and in a forked child."""
        self._cond = threading.Condition()
        self._waiting: deque[LazyValue[Row]] = deque()
        self._handed = 0  # rows handed over since start
        self._taken = 0  # of them, taken by Braintrust (or given up on)
        self._flush_upto = 0
        self._oldest_at = 0.0
        self._dropped = 0
        self._retry_at = 0.0
        self._pause_s = RETRY_FIRST_S
        self._thread: threading.Thread | None = None
        self._finalizer_pid = 0
        self._closed = False  # the exit is over: nothing more is tried

    # --- set-up ----------------------------------------------------------------------------

    def add_project(self, local_id: str, name: str) -> None:
        """Rows whose `project_id` is `local_id` go to Braintrust's project `name`. The first
        starts the delivery thread, which logs in and registers it."""
        with self._cond:
            self._projects.setdefault(local_id, name)
        self._start()

    # --- what the router hands over ---------------------------------------------------------

    def add(self, rows: Sequence[LazyValue[Row]]) -> None:
        """Queue rows for Braintrust; never waits, never raises."""
        if self._rejected or not rows:
            return
        dropped = 0
        with self._cond:
            was_empty = not self._waiting
            if was_empty:
                self._oldest_at = time.monotonic()
            self._waiting.extend(rows)
            self._handed += len(rows)
            while len(self._waiting) > MAX_WAITING_ROWS:
                self._waiting.popleft()
                self._taken += 1
                dropped += 1
            if was_empty or len(self._waiting) >= BATCH_ROWS:
                self._cond.notify_all()
        if dropped:
            self._count_dropped(dropped)
        self._start()

    def ask(self) -> int:
        """Ask the delivery thread to send every row handed over so far now (a flush, without
        the wait); returns how many rows that is."""
        with self._cond:
            target = self._handed
            if self._taken < target:
                self._flush_upto = max(self._flush_upto, target)
                if self._away is None:  # a try now, not after a pause; away: its own pace
                    self._retry_at = 0.0
                self._cond.notify_all()
        return target

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until Braintrust took every row handed over so far: at most `timeout`
        (`timeout_s`), and not at all while Braintrust is away. True if it did."""
        timeout = self.timeout_s if timeout is None else timeout
        target = self.ask()
        with self._cond:
            if self._taken >= target:
                return True
            if self._away is not None or self._rejected:
                return False
        if not self._start():
            return False
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._taken < target and self._away is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._taken >= target:
                return True
        if self._away is None:
            self._go_away(f"no answer from {self.app_url} within {self.timeout_s:g} s")
        return False

    def close(self) -> None:
        """After the exit's flush: no more tries. A try started at interpreter finalization
        could print (Braintrust's HTTP adapter reports retries on stderr) while Python tears
        down, which Python 3.13 turns into a crash."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _exit_flush(self) -> None:
        self.flush()
        self.close()

    def mask_like(self, background: Any) -> None:
        """Mask as `background` does (set with `braintrust.set_masking_function`), when this
        delivery uses a background logger of its own (a forked child's)."""
        if background is not self._background:
            _braintrust.carry_masking(background, self._background)

    # --- the delivery thread ---------------------------------------------------------------

    def _start(self) -> bool:
        """The delivery thread, started once per process; False if none can start (the
        interpreter is exiting and it never ran)."""
        thread = self._thread
        if thread is not None:  # the common case, without the lock
            return thread.is_alive()
        with self._cond:
            if self._thread is not None:
                return self._thread.is_alive()
            if multiprocessing.parent_process() is not None:
                self._flush_when_child_exits()
            thread = threading.Thread(
                target=self._run, name="braintrust-ollama-delivery", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                self._go_away("the program ended before its login could start")
                return False
            self._thread = thread
            return True

    def _run(self) -> None:
        while not (self._rejected or self._closed):
            try:
                if not self._logged_in:
                    self._log_in()
                    continue
                batch = self._next_batch()
                if batch:
                    self._send(batch)
            except _Closed:
                return
            except Exception as error:  # the thread must outlive any failure
                self._failed(error)

    def _log_in(self) -> None:
        """`braintrust.login()` on the delivery's state (the process's own, but in a child forked
        during the parent's login)."""
        self._wait_for_retry()
        self._state.login(
            app_url=self.credentials.app_url,
            api_key=self.credentials.api_key,
            org_name=self.credentials.org_name,
        )
        with self._cond:
            self._logged_in = True
            self._cond.notify_all()

    def _next_batch(self) -> list[LazyValue[Row]]:
        """The oldest waiting rows (they stay queued until taken), once they are due."""
        with self._cond:
            while not self._due():
                if self._closed:
                    return []
                self._cond.wait(self._wait_s())
            return list(self._waiting)[:BATCH_ROWS]

    def _due(self) -> bool:
        if not self._waiting or time.monotonic() < self._retry_at:
            return False
        return (
            self._flush_upto > self._taken
            or len(self._waiting) >= BATCH_ROWS
            or time.monotonic() - self._oldest_at >= SEND_EVERY_S
        )

    def _wait_s(self) -> float:
        now = time.monotonic()
        if not self._waiting:
            return 60.0
        if now < self._retry_at:
            return self._retry_at - now
        return max(0.0, SEND_EVERY_S - (now - self._oldest_at))

    def _send(self, batch: list[LazyValue[Row]]) -> None:
        """Hand `batch` to Braintrust's background logger and flush it; taken, it leaves the
        queue; refused, it stays for the next try."""
        outgoing = [row for row in map(self._for_braintrust, batch) if row is not None]
        self._log_rows(*outgoing)
        self._flush_rows()  # synchronous: raises when a batch was not taken
        with self._cond:
            for _ in batch:
                self._waiting.popleft()
            self._taken += len(batch)
            self._oldest_at = time.monotonic()
            self._pause_s = RETRY_FIRST_S
            came_back, self._away = self._away, None
            self._cond.notify_all()
        if came_back is not None:
            _log.info(
                "braintrust-ollama: Braintrust takes traces again (it was away: %s)", came_back
            )

    def _for_braintrust(self, lazy: LazyValue[Row]) -> LazyValue[Row] | None:
        """The row as Braintrust must receive it: under the project's real id. None for a row
        that cannot be resolved (said once; the local copy says it too)."""
        try:
            row = lazy.get()
        except Exception:
            warn_once(
                _log, "could not resolve a trace row for Braintrust", unaffected="the local copy"
            )
            return None
        outgoing = copy_containers(row)  # Braintrust's logger rewrites rows in place
        local_id = row.get("project_id")
        if local_id in self._projects:  # else not one of ours (an experiment, another logger's)
            outgoing["project_id"] = self._project_id(local_id)
        return resolved(outgoing)

    def _project_id(self, local_id: str) -> str:
        """Braintrust's id of a project rows name by `local_id`: registered (get or create) with
        Braintrust's REST API on the login's connection, in this thread."""
        known = self._project_ids.get(local_id)
        if known is None:
            registered = self._state.api_conn().post_json(
                "v1/project", {"name": self._projects[local_id], "org_name": self._state.org_name}
            )
            known = self._project_ids[local_id] = str(registered["id"])
        return known

    def _failed(self, error: BaseException) -> None:
        """A login or a delivery failed: Braintrust counts as away until the next success; for
        good when the login's API key was refused."""
        reason = explain(error, during="uploads" if self._logged_in else "login")
        rejected = not self._logged_in and _status(_chain_text(error)) in (401, 403)
        with self._cond:
            self._retry_at = time.monotonic() + self._pause_s
            self._pause_s = min(RETRY_MAX_S, self._pause_s * 2)
            if rejected:
                self._rejected = True
                self._taken += len(self._waiting)
                self._waiting.clear()
            self._cond.notify_all()
        _log.debug("braintrust-ollama: Braintrust failed: %s", reason, exc_info=True)
        self._go_away(reason, rejected=rejected)

    def _wait_for_retry(self) -> None:
        with self._cond:
            while time.monotonic() < self._retry_at and not (self._rejected or self._closed):
                self._cond.wait(self._retry_at - time.monotonic())
            if self._closed:
                raise _Closed

    # --- saying it -------------------------------------------------------------------------

    def _go_away(self, reason: str, *, rejected: bool = False) -> None:
        with self._cond:
            if self._away is None:
                self._away = reason
            say, self._said = not self._said, True
        if say:  # said before waiting flushes return: a daemon thread never writes at exit
            if rejected:
                notice(
                    f"Braintrust rejected the API key ({reason}): nothing is sent to it;"
                    f" {self.kept_where}"
                )
            else:
                notice(
                    f"Braintrust is not taking traces ({reason}): nothing waits for it now, and"
                    f" it is tried again in the background; {self.kept_where}"
                )
        with self._cond:
            self._cond.notify_all()  # flushes waiting now return

    def _count_dropped(self, count: int) -> None:
        first = self._dropped == 0
        self._dropped += count
        if first:
            notice(
                f"more than {MAX_WAITING_ROWS} trace rows are waiting for Braintrust: the oldest"
                f" are not sent; {self.kept_where}"
            )

    # --- processes -------------------------------------------------------------------------

    def _flush_when_child_exits(self) -> None:
        """In a `multiprocessing` child, which leaves through `os._exit()` (no `atexit`): flush
        at its exit, after the local copy's last write."""
        if self._finalizer_pid != os.getpid():
            self._finalizer_pid = os.getpid()
            multiprocessing.util.Finalize(
                self, self._exit_flush, exitpriority=_CHILD_FLUSH_PRIORITY
            )

    def _after_fork_in_child(self) -> None:
        """The child sends its own rows, through a background logger of its own: the parent's
        may be held mid-flush by a thread that does not exist here, and its connections' sockets
        are the parent's. It keeps the parent's login on new connections, or logs in itself if
        the parent was logging in."""
        self._fresh()
        if self._rejected:
            return
        state = BraintrustState()
        if self._logged_in:
            # New connections (and sockets) for the process's logged-in state, which
            # attachment uploads use; this child's own state shares them.
            braintrust.set_http_adapter(
                RetryRequestExceptionsAdapter(base_num_retries=10, default_timeout_secs=60)
            )
            state.copy_state(self._state)
        # else the parent's login machinery is mid-request in a thread that does not exist
        # here: this child logs in on its state of its own.
        parent_background = self._background
        self._use(state)
        _braintrust.carry_masking(parent_background, self._background)


def quiet(background: Any) -> None:
    """What `background` would print on stderr (a retry, a traceback) logged at DEBUG instead:
    the user gets one line from this suite, not Braintrust's retries."""
    background.outfile = _DebugLog()


class _DebugLog(io.TextIOBase):
    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text.strip():
            _log.debug("braintrust: %s", text.rstrip())
        return len(text)


class _Closed(Exception):
    """The exit is over: the delivery thread stops."""


def _no_flush(batch_size: int | None = None) -> None:
    """What Braintrust's exit hook calls on a delivery's own background logger: nothing."""


def _env_app_url() -> str:
    return os.environ.get("BRAINTRUST_APP_URL") or "https://www.braintrust.dev"


def explain(error: BaseException, *, during: str) -> str:
    """A short, secret-free reason for a line on stderr: the HTTP status, or what the network
    said, and `during` what (the login, uploads, a push)."""
    text = _chain_text(error)
    status = _status(text)
    if status in (401, 403):
        return f"HTTP {status} at {during}: the API key was rejected"
    if status is not None:
        return f"HTTP {status} at {during}"
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if isinstance(error, TimeoutError) or "timed out" in text.lower():
        return _short(str(error)) if isinstance(error, TimeoutError) else f"no answer at {during}"
    return _short(f"{type(error).__name__} at {during}: {error}")


def _chain_text(error: BaseException) -> str:
    """The messages of `error`, its causes and (for an exception group) its first exception."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        nested = getattr(cause, "exceptions", None)
        cause = cause.__cause__ or cause.__context__ or (nested[0] if nested else None)
    return " ".join(str(e) for e in chain)


def _status(text: str) -> int | None:
    """The HTTP status a Braintrust error message names: `[401]` (a login), `Error: 500:` (an
    upload)."""
    found = re.search(r"\[(\d{3})\]|Error: (\d{3})\b", text)
    return int(found.group(1) or found.group(2)) if found else None


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _REASON_CHARS else flat[: _REASON_CHARS - 3] + "..."


def _after_fork_in_child() -> None:
    for delivery in list(_deliveries):
        try:
            delivery._after_fork_in_child()
        except Exception:  # the child goes on: its rows stay in the local copy
            _log.debug("braintrust-ollama: could not prepare a forked child", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
