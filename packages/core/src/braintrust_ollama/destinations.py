"""`init_logger()`: where traces go — Braintrust when there is a key, the local store when not.

    import braintrust_ollama

    braintrust_ollama.init_logger(project="my-app")

Every span row a Braintrust logger writes goes through the process's background logger
(`BraintrustState.global_bg_logger()`). `install()` puts a router on that very object (its
`log`, `flush` and `set_masking_function`, replaced on the instance, not the class): each row goes
to the local copy (`local.logger.LocalCopy`) and to Braintrust (`_delivery.BraintrustDelivery`,
which feeds the same background logger), each independently of the other:

- the local copy failing (unwritable, corrupt, full, locked) never delays, gates or drops what
  goes to Braintrust, and costs a flush or the exit at most 1 s;
- Braintrust away (closed port, silent, failing, refusing the key) never costs the local copy a
  row, and costs a flush at most `timeout_s` (none once it counts as away).

`braintrust.flush()` (and a logger's `flush()`) waits for both at once: at most `timeout_s`.
The program's exit does the same, once: at most `timeout_s` + 1 s.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import braintrust
from braintrust.logger import Logger

from braintrust_ollama._braintrust import background_of, make_current, maskers_of, name_rows_by
from braintrust_ollama._command import cli_command
from braintrust_ollama._delivery import DEFAULT_TIMEOUT_S, BraintrustDelivery, Credentials
from braintrust_ollama._warn import notice
from braintrust_ollama.local.logger import (
    EXIT_TIMEOUT_S,
    FAILING_WAIT_S,
    FLUSH_TIMEOUT_S,
    LocalCopy,
    init_local_logger,
)
from braintrust_ollama.local.store import LocalStore

__all__ = ["init_logger", "install", "keeping_current_logger"]

DEFAULT_PROJECT = "braintrust-ollama"

_lock = threading.Lock()
_delivery: BraintrustDelivery | None = None


def init_logger(
    project: str = DEFAULT_PROJECT,
    *,
    api_key: str | None = None,
    app_url: str | None = None,
    org_name: str | None = None,
    local_copy: bool = True,
    path: Path | str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_store_mb: float | None = None,
) -> Logger:
    """The current Braintrust `Logger` for `project`, sending spans where the user can read them.

    - With an API key (`api_key=` or `BRAINTRUST_API_KEY`): to Braintrust, and with
      `local_copy` (the default) also to the local store (`path`, by default
      `$BRAINTRUST_OLLAMA_HOME/traces.db` or the per-user data directory), which holds at most
      `max_store_mb` megabytes (`BRAINTRUST_OLLAMA_MAX_STORE_MB`, default 200).
    - With no key: to the local store only, as `init_local_logger()`.

    Never blocks on Braintrust: the login runs in a background thread; `braintrust.flush()`
    waits at most `timeout_s`, the exit at most `timeout_s` + 1 s, and neither waits once
    Braintrust counts as away. One line on stderr says where traces go, and one more if
    Braintrust is away or the local store cannot be written.
    """
    key = api_key or os.environ.get("BRAINTRUST_API_KEY")
    if not key:
        return init_local_logger(project, path=path, max_store_mb=max_store_mb)
    logger = braintrust.init_logger(
        project=project, api_key=api_key, app_url=app_url, org_name=org_name, set_current=True
    )
    name_rows_by(logger, project)
    store = LocalStore(path, max_store_mb=max_store_mb) if local_copy else None
    if store is not None:
        kept = (
            f"spans it has not taken are in the local store {store.path}"
            f" ({cli_command()} traces push sends them)"
        )
    else:
        kept = "spans it has not taken by exit are lost (init_logger(local_copy=False))"
    delivery = _delivery_for(logger, Credentials(api_key, app_url, org_name), timeout_s, kept)
    install(
        logger, local=LocalCopy(store, for_braintrust=True) if store else None, braintrust=delivery
    )
    where = f"Braintrust (project {project})"
    if store is not None:
        where += (
            f" and to the local store {store.path} (view them: {cli_command()} traces show last)"
        )
    notice(f"traces go to {where}")
    delivery.add_project(project, project)
    return logger


def _delivery_for(
    logger: Logger, credentials: Credentials, timeout_s: float, kept: str
) -> BraintrustDelivery:
    """The process's delivery (one: rows must reach Braintrust in the order they were logged),
    made again for other credentials."""
    global _delivery
    with _lock:
        if _delivery is None or _delivery.credentials != credentials:
            _delivery = BraintrustDelivery(
                logger.logging_state, credentials=credentials, timeout_s=timeout_s, kept_where=kept
            )
        _delivery.timeout_s, _delivery.kept_where = timeout_s, kept
        return _delivery


@dataclass
class _Router:
    """What replaces `log`, `flush` and `set_masking_function` on a Braintrust background logger:
    every row to the local copy and to Braintrust."""

    background: Any
    local: LocalCopy | None = None
    braintrust: BraintrustDelivery | None = None
    exited: bool = False

    def log(self, *rows: Any) -> None:
        local, delivery = self.local, self.braintrust
        if local is not None:
            local.add(rows)
        if delivery is not None:
            delivery.add(rows)

    def flush(self, batch_size: int | None = None) -> None:
        """Braintrust's `flush()`: both destinations at once, each within its own bound."""
        if not self.exited:
            timeout = self.braintrust.timeout_s if self.braintrust else FLUSH_TIMEOUT_S
            self._wait(timeout, local_s=timeout)

    def exit(self) -> None:
        """The program's exit: once, bounded (the same as a flush, the local copy's writer then
        stopped)."""
        if self.exited:
            return
        self.exited = True
        timeout = self.braintrust.timeout_s if self.braintrust else 0.0
        self._wait(timeout, local_s=EXIT_TIMEOUT_S, closing=True)
        if self.braintrust is not None:
            self.braintrust.close()

    def _wait(self, braintrust_s: float, *, local_s: float, closing: bool = False) -> None:
        local, delivery = self.local, self.braintrust
        start = time.monotonic()
        if delivery is not None:
            delivery.ask()  # the delivery thread starts sending now, while the local copy writes
        if local is not None:
            local.close(local_s) if closing else local.flush(local_s)
        if delivery is not None:
            delivery.flush(max(0.0, braintrust_s - (time.monotonic() - start)))

    def set_masking_function(self, masking_function: Callable[[Any], Any] | None) -> None:
        type(self.background).set_masking_function(self.background, masking_function)
        maskers = maskers_of(self.background)
        if self.local is not None:
            self.local.maskers = maskers
        if self.braintrust is not None:
            self.braintrust.mask_like(self.background)


_routers: list[_Router] = []


def install(
    logger: Logger, *, local: LocalCopy | None, braintrust: BraintrustDelivery | None
) -> None:
    """Route the rows of `logger`'s background logger to `local` and `braintrust` (either may be
    None). Idempotent: a local copy of the store already used is kept, another one replaces it
    (the replaced one writes what it holds first)."""
    background = background_of(logger)
    with _lock:
        router = next((r for r in _routers if r.background is background), None)
        if router is None:
            router = _Router(background)
            _routers.append(router)
            background.log, background.flush = router.log, router.flush
            background.set_masking_function = router.set_masking_function
            # Registered after Braintrust's own exit flush (the background logger exists by
            # now), so it runs first: that one then finds nothing to wait for.
            atexit.register(router.exit)
        previous = router.local
        if local is not None and previous is not None and previous.store.path == local.store.path:
            local = previous
        router.local, router.braintrust = local, braintrust
    if local is not None:
        local.maskers = maskers_of(background)
    if previous is not None and previous is not local:
        previous.close(FAILING_WAIT_S)


@contextmanager
def keeping_current_logger() -> Iterator[None]:
    """Undo any change of the current logger made inside the block.

    Braintrust's integration set-ups (on braintrust < 0.41, among others) call
    `braintrust.init_logger()` when no span is current, which replaces the logger the user
    initialised (and with it where traces go). Nothing is changed when no logger was set.
    """
    current = braintrust.current_logger()
    try:
        yield
    finally:
        if current is not None and braintrust.current_logger() is not current:
            make_current(current)
