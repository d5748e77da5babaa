"""`BraintrustUplink`: Braintrust as a destination that may be away, slow, or refusing.

Braintrust's own logger resolves every row through a login (one round trip to Braintrust, then
one to register the project), retries with tracebacks on stderr, and flushes at exit for as long
as its retries last: with Braintrust unreachable a short program exits half a minute late, and
with an address that never answers, minutes late. The uplink keeps Braintrust's HTTP background
logger (its batching, attachments, payload limits) and changes only when it is fed and how long
anyone waits for it:

- Rows never wait for a login: the logger `init_logger()` returns names its project by a local id
  (its name), and the uplink puts the real project id on the Braintrust copy of each row when it
  is uploaded. A traced call never touches the network.
- The login and the project's registration run once, in the uplink's own daemon thread, started
  by `init_logger()`, and start no thread of their own (Braintrust's login does, and Python 3.12+
  starts none at exit); rows logged meanwhile wait in memory (at most `MAX_WAITING_ROWS`).
- `braintrust.flush()` and interpreter exit wait for Braintrust at most `timeout_s` each (5 s by
  default), the exit wait including a login still under way: a script that ends before its
  login is over still sends its rows. At exit the uplink's thread uploads them itself (no new
  thread can start then). When the login fails or such a wait runs out, Braintrust counts as
  away for the rest of the process: one line on stderr says why and where the traces are, rows
  are no longer sent (the local copy has them all), and nothing waits for Braintrust any more.
- Uploads use their own connection with a bounded timeout and no retries of its own (Braintrust's
  logger retries a batch itself); what Braintrust's logger would print (tracebacks, "Sleeping
  for 1.0s") is logged at DEBUG through `logging` and summed up in one line.
- A forked child (`os.fork()`, `multiprocessing` with fork: `Process`, `Pool`) keeps the parent's
  login and project ids, and gets its own queue, connection and thread: it sends the rows it
  logs, never the ones the parent had queued, and flushes when it exits (a `multiprocessing`
  child through multiprocessing's finalizers, as it skips `atexit`).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import multiprocessing.util

# requests imports `netrc` at its first request (here, the login in the uplink's thread): a fork
# during that import would leave the module's import lock held in the child, whose uploads would
# then wait for it forever. Imported now, before any thread of ours.
import netrc  # noqa: F401
import os
import queue
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from braintrust import logger as braintrust_logger
from braintrust.logger import (
    HTTPConnection,
    RetryRequestExceptionsAdapter,
    _HTTPBackgroundLogger,
    _internal_get_global_state,
    login_to_state,
)
from braintrust.util import LazyValue

__all__ = ["DEFAULT_TIMEOUT_S", "MAX_WAITING_ROWS", "BraintrustUplink", "carry_masking"]

DEFAULT_TIMEOUT_S = 5.0
MAX_WAITING_ROWS = 100_000
_REASON_CHARS = 160
_ENDED_BEFORE_LOGIN = "the program ended before the login to Braintrust was over"
# A `multiprocessing` child's flush runs after the local store's last write (priority 100).
_CHILD_FLUSH_PRIORITY = 50

_log = logging.getLogger(__name__)
_uplinks: weakref.WeakSet[BraintrustUplink] = weakref.WeakSet()

Row = dict[str, Any]


@dataclass(frozen=True)
class _Login:
    """What a finished login gives the uplink (a forked child keeps it: no second login)."""

    app_url: str
    api_url: str
    token: str
    org_id: str


class BraintrustUplink:
    """Sends rows to Braintrust off the caller's thread, with bounded waits and one line on failure.

    Two ways in: `send(rows)` takes rows already resolved and masked by the local store's logger
    (the local copy); `log(*lazy_rows)` is the background-logger interface, for when the uplink
    is Braintrust's only destination. Never raises into the caller.
    """

    def __init__(
        self,
        *,
        app_url: str,
        api_key: str | None = None,
        org_name: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        kept_where: str,
        register_exit: bool = False,
    ) -> None:
        self.app_url = app_url
        self.timeout_s = timeout_s
        self.kept_where = kept_where
        self._api_key = api_key  # None: Braintrust's own look-up (BRAINTRUST_API_KEY, .env)
        self._org_name = org_name
        self._login: _Login | None = None
        self._project_names: dict[str, str] = {}  # local id -> project name
        self._project_ids: dict[str, str] = {}  # local id -> Braintrust's id, once registered
        self._queue_limit: bool | None = None
        self._away: str | None = None
        self._reported = False
        self._started = False  # the login thread was started (in this process or its parent)
        self._fresh_state()
        _uplinks.add(self)
        if register_exit:
            atexit.register(self.flush)

    def _fresh_state(self) -> None:
        """Locks, queues, Braintrust's HTTP logger and the uplink's thread, all new: at creation,
        and in a forked child, where the parent's may be held by threads that do not exist."""
        previous: _HTTPBackgroundLogger | None = getattr(self, "_http", None)
        self._lock = threading.Lock()
        self._register_lock = threading.Lock()
        self._http = _HTTPBackgroundLogger(LazyValue(self._connection, use_mutex=True))
        # Braintrust's logger flushes at exit for as long as its retries last; the uplink's own
        # wait is bounded instead.
        atexit.unregister(self._http._finalize)
        self._http.outfile = _OneLineSink(self)
        if previous is not None:  # a forked child masks as the parent does
            carry_masking(previous, self._http)
        if self._queue_limit is not None:
            self._http.enforce_queue_size_limit(self._queue_limit)
        self._publishing = False  # Braintrust's publisher thread runs
        self._conn: HTTPConnection | None = None
        self._waiting: list[LazyValue[Row]] = []
        self._dropped = 0
        self._ready = self._login is not None
        self._logged_in = threading.Event()  # set when the login is over, well or not
        if self._login is not None or self._away is not None:
            self._logged_in.set()
        self._exit_deadline: float | None = None
        self._finalizer_pid: int | None = None
        self._requests: queue.SimpleQueue[threading.Event | Callable[[], None]] = (
            queue.SimpleQueue()
        )
        self._worker = threading.Thread(
            target=self._work, name="braintrust-ollama-uplink", daemon=True
        )

    # --- set-up ----------------------------------------------------------------------------

    def add_project(self, local_id: str, name: str) -> None:
        """Rows whose `project_id` is `local_id` go to Braintrust's project `name`.

        The first project starts the uplink's thread, which logs in and registers it; later ones
        are registered when their first row is uploaded.
        """
        with self._lock:
            self._project_names.setdefault(local_id, name)
            if self._started:
                return
            self._started = True
        self._requests.put(lambda: self._log_in(local_id))
        self._start_worker()
        # Runs at exit before the atexit handlers, so the exit flush shares its wait.
        with contextlib.suppress(AttributeError, RuntimeError):
            threading._register_atexit(self._end_login_before_exit)  # type: ignore[attr-defined]

    def _start_worker(self) -> None:
        try:
            self._worker.start()
        except RuntimeError as error:  # no thread can start (the interpreter is exiting)
            self._give_up(_reason(error))
            self._logged_in.set()

    def _end_login_before_exit(self) -> None:
        """At interpreter exit: a login still under way gets the exit wait, `timeout_s`, which the
        exit flush then shares."""
        self._exit_deadline = time.monotonic() + self.timeout_s
        if not self._logged_in.wait(self.timeout_s):
            self._give_up(f"no answer from {self.app_url} within {self.timeout_s:g} s")

    # --- the background-logger interface ---------------------------------------------------

    def send(self, rows: Sequence[Row]) -> None:
        """Queue resolved rows (the local copy's) for Braintrust; their containers are copied,
        so Braintrust's logger, which rewrites attachments in place, never touches the local
        copy's rows."""
        if self._away is None:
            self._enqueue([_resolved(_copy_containers(row)) for row in rows])

    def log(self, *rows: LazyValue[Row]) -> None:
        self._enqueue(list(rows))

    def flush(self, batch_size: int | None = None) -> None:
        """Wait until Braintrust took every queued row, at most `timeout_s`; once that wait runs
        out or the login failed, return at once."""
        if self._away is not None or not self._worker.is_alive():  # no project yet
            return
        wait = self.timeout_s
        if self._exit_deadline is not None:  # exiting: one wait in all, login included
            wait = max(0.0, self._exit_deadline - time.monotonic())
        done = threading.Event()
        self._requests.put(done)
        if not done.wait(wait):
            self._give_up(f"no answer from {self.app_url} within {self.timeout_s:g} s")

    def set_masking_function(self, masking_function: Callable[[Any], Any] | None) -> None:
        self._http.set_masking_function(masking_function)

    def enforce_queue_size_limit(self, enforce: bool) -> None:
        self._queue_limit = enforce
        self._http.enforce_queue_size_limit(enforce)

    def internal_replace_api_conn(self, api_conn: Any) -> None:
        """Called by `braintrust.login()`; uploads keep the uplink's own bounded connection."""

    @property
    def away(self) -> str | None:
        """Why Braintrust is not being sent rows any more, or None while it is."""
        return self._away

    # --- internals -------------------------------------------------------------------------

    def _enqueue(self, rows: list[LazyValue[Row]]) -> None:
        if not rows or self._away is not None:
            return
        try:
            self._flush_when_child_exits()
            with self._lock:
                if not self._ready:
                    room = MAX_WAITING_ROWS - len(self._waiting)
                    self._waiting.extend(rows[:room])
                    self._dropped += max(0, len(rows) - room)
                    return
            self._hand_over([self._for_braintrust(row) for row in rows])
        except Exception:  # never into the traced code
            _log.debug("braintrust-ollama: could not queue rows for Braintrust", exc_info=True)

    def _hand_over(self, rows: list[LazyValue[Row]]) -> None:
        """Give rows to Braintrust's HTTP logger. Its publisher thread uploads them; when none can
        start (the interpreter is exiting), the exit flush does, in the uplink's thread."""
        if not self._publishing:
            try:
                self._http.log()  # starts the publisher thread
                self._publishing = True
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                pass
        if self._publishing:
            self._http.log(*rows)
        else:
            for row in rows:
                self._http.queue.put(row)

    def _flush_when_child_exits(self) -> None:
        """In a `multiprocessing` child, which leaves through `os._exit()` (no `atexit`): flush
        at its exit, after the local store's last write (which hands its rows over here)."""
        if multiprocessing.parent_process() is None or self._finalizer_pid == os.getpid():
            return
        self._finalizer_pid = os.getpid()
        multiprocessing.util.Finalize(self, self.flush, exitpriority=_CHILD_FLUSH_PRIORITY)

    def _for_braintrust(self, row: LazyValue[Row]) -> LazyValue[Row]:
        """The row as Braintrust must receive it: under the project's real id (resolved where it
        is uploaded, never in the caller's thread)."""

        def resolve() -> Row:
            resolved = row.get()
            project_id = self._project_id(str(resolved.get("project_id")))
            if project_id is None:
                return resolved
            return {**resolved, "project_id": project_id}

        return LazyValue(resolve, use_mutex=False)

    def _project_id(self, local_id: str) -> str | None:
        """Braintrust's id of the project rows name by `local_id` (registering it the first
        time), or None for rows that are not the uplink's."""
        known = self._project_ids.get(local_id)
        if known is not None or local_id not in self._project_names:
            return known
        with self._register_lock:
            if local_id not in self._project_ids:
                self._project_ids[local_id] = self._register(self._project_names[local_id])
            return self._project_ids[local_id]

    def _register(self, name: str) -> str:
        """The project `name`'s id: Braintrust's project registration (get or create), in this
        thread, as braintrust 0.10 does it."""
        assert self._login is not None, "registration comes after the login"
        connection = self._bounded_connection(self._login.app_url)
        registered = connection.post_json(
            "api/project/register", {"project_name": name, "org_id": self._login.org_id}
        )
        return str(registered["project"]["id"])

    def _bounded_connection(self, url: str) -> HTTPConnection:
        assert self._login is not None, "connections come after the login"
        connection = HTTPConnection(
            url,
            adapter=RetryRequestExceptionsAdapter(
                base_num_retries=0, default_timeout_secs=self.timeout_s
            ),
        )
        connection.set_token(self._login.token)
        return connection

    def _connection(self) -> HTTPConnection:
        """The uploads' connection: one per process (a forked child never shares the parent's
        sockets)."""
        if self._conn is None:
            assert self._login is not None, "uploads start after the login"
            self._conn = self._bounded_connection(self._login.api_url)
        return self._conn

    def _work(self) -> None:
        """The uplink's thread: log in, hand waiting rows over, then serve flush requests."""
        while True:
            request = self._requests.get()
            if self._away is not None:
                if isinstance(request, threading.Event):
                    request.set()
                continue
            try:
                if isinstance(request, threading.Event):
                    self._http.flush()
                    request.set()
                else:
                    request()  # the login
            except Exception as error:
                if isinstance(request, threading.Event):
                    request.set()
                    self._report(_reason(error))
                else:
                    self._give_up(_reason(error))
                    self._logged_in.set()

    def _log_in(self, local_id: str) -> None:
        """Log in and register the first project, starting no thread (Braintrust's `login()`
        starts some; its `login_to_state()` does the same requests in the caller's thread); the
        process's Braintrust state gets the login, as after `braintrust.login()`."""
        state = _internal_get_global_state()
        if not state.logged_in:
            state.copy_state(
                login_to_state(app_url=self.app_url, api_key=self._api_key, org_name=self._org_name)
            )
        assert state.api_url and state.login_token and state.org_id, "set by the login"
        self._login = _Login(
            app_url=state.app_url or self.app_url,
            api_url=state.api_url,
            token=state.login_token,
            org_id=state.org_id,
        )
        self._project_id(local_id)
        self._open()
        self._logged_in.set()

    def _open(self) -> None:
        """After the login: the waiting rows handed over, and from now on every row at once."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
            if self._away is None:
                # Before `_ready`: no row logged meanwhile overtakes them. Starts the publisher
                # now, unless the interpreter is exiting.
                self._hand_over([self._for_braintrust(row) for row in waiting])
                self._ready = True
        if self._dropped:
            self._report(f"{self._dropped} rows logged before the login were not kept for it")

    def _after_fork_in_child(self) -> None:
        """A forked child keeps the login, the project ids and whether Braintrust is away, and
        starts afresh otherwise: the rows the parent had queued are the parent's to send."""
        self._fresh_state()
        if not self._started or self._away is not None:
            return
        if self._login is None:  # forked while the parent was logging in: the child logs in
            local_id = next(iter(self._project_names))
            self._requests.put(lambda: self._log_in(local_id))
        self._start_worker()

    def _give_up(self, reason: str) -> None:
        with self._lock:
            if self._away is not None:
                return
            self._away = reason
            self._waiting = []
        self._report(reason, away=True)

    def _report(self, reason: str, *, away: bool = False) -> None:
        """The one line about Braintrust, printed once per process."""
        with self._lock:
            if self._reported:
                return
            self._reported = True
        if reason == _ENDED_BEFORE_LOGIN:
            line = f"nothing was sent to Braintrust ({reason}): {self.kept_where}"
        elif away:
            line = f"Braintrust is unreachable ({reason}): {self.kept_where}"
        else:
            line = f"Braintrust did not take some traces ({reason}): {self.kept_where}"
        with contextlib.suppress(OSError, ValueError):  # stderr closed at exit
            print(f"braintrust-ollama: {line}\n", end="", file=sys.stderr, flush=True)  # one write


class _OneLineSink(io.TextIOBase):
    """Where Braintrust's logger prints (its `outfile`): logged at DEBUG, summed up once."""

    def __init__(self, uplink: BraintrustUplink) -> None:
        super().__init__()
        self._uplink = uplink
        self._last_error = "an upload failed"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text.strip():
            _log.debug("braintrust: %s", text.rstrip())
            found = re.search(r"Error: (.+)", text)
            if found:
                self._last_error = _short(found.group(1))
            if "Dropping batch" in text:  # Braintrust's retries are over: the batch is lost
                self._uplink._report(self._last_error)
        return len(text)


def _reason(error: BaseException) -> str:
    """A short, secret-free reason for the one line: the HTTP status, or what the network said."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(e) for e in chain)
    status = re.search(r"\[(\d{3})\]", text)
    if status:
        code = int(status.group(1))
        meaning = "the API key was rejected" if code in (401, 403) else "the login failed"
        return f"HTTP {code} at login: {meaning}"
    if isinstance(error, RuntimeError) and "interpreter shutdown" in text:
        # Python 3.12+ starts no thread at exit: an uplink created then (`init_logger()` in an
        # exit handler) cannot start the thread its login runs in.
        return _ENDED_BEFORE_LOGIN
    if isinstance(error, TimeoutError):
        return _short(str(error))
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "the login timed out"
    return _short(f"{type(error).__name__}: {error}")


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _REASON_CHARS else flat[: _REASON_CHARS - 3] + "..."


def _resolved(row: Row) -> LazyValue[Row]:
    return LazyValue(lambda: row, use_mutex=False)


def _copy_containers(value: Any) -> Any:
    """A copy of the dicts and lists in `value`; their leaves (attachments too) are shared."""
    if isinstance(value, dict):
        return {key: _copy_containers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_containers(item) for item in value]
    return value


def carry_masking(previous: object, background: object) -> None:
    """Give `background` the masking function `previous` had (set with
    `braintrust.set_masking_function` before this suite's logger replaced Braintrust's)."""
    # braintrust < 0.3x keeps the function itself; later versions an export customizer.
    for attribute in ("masking_function", "_export_customizers"):
        if attribute in vars(previous) and attribute in vars(background):
            setattr(background, attribute, getattr(previous, attribute))


def app_url(explicit: str | None) -> str:
    """The Braintrust address the SDK will log in at, for the one line."""
    return explicit or os.environ.get("BRAINTRUST_APP_URL") or "https://www.braintrust.dev"


def _after_fork_in_child() -> None:
    uplinks = list(_uplinks)
    if uplinks:
        _shut_request_pool()
    for uplink in uplinks:
        uplink._after_fork_in_child()


def _shut_request_pool() -> None:
    """Braintrust's HTTP logger posts batches through a module-wide thread pool, which `fork()`
    copies with idle workers that do not exist in the child: a batch given to it would never be
    posted, and the flush would wait for it forever. The child's pool is one already shut down:
    Braintrust then posts each batch in the thread that flushes (the uplink's, or Braintrust's
    publisher: daemon threads, which the child's exit does not wait for beyond its bound)."""
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    braintrust_logger.HTTP_REQUEST_THREAD_POOL = pool


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
