"""`init_local_logger()`: Braintrust logging into the local store, with no account and no network.

The hook is Braintrust's own: every span row goes through the process's background logger
(`BraintrustState.global_bg_logger()`), the object Braintrust's test helpers swap for an in-memory
one. We install `LocalBackgroundLogger`, which is that in-memory logger (same lazy rows, same
merging, same masking) flushed into a `LocalStore`: on `flush()`, when 50 rows or 1 second of
rows are pending, and at interpreter exit. A failure to write is logged once through `logging`;
it never reaches the traced code.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import braintrust
from braintrust.logger import (
    Logger,
    ObjectMetadata,
    OrgProjectMetadata,
    _internal_get_global_state,
    _MemoryBackgroundLogger,
)
from braintrust.util import LazyValue

from braintrust_ollama.local.store import LocalStore
from braintrust_ollama.local.uplink import carry_masking

__all__ = ["LocalBackgroundLogger", "init_local_logger", "install_local_store"]

LOCAL_ORG_ID = "local"
FLUSH_EVERY_ROWS = 50
FLUSH_EVERY_S = 1.0

_log = logging.getLogger("braintrust_ollama.local")
_install_lock = threading.Lock()
_installed: LocalBackgroundLogger | None = None


class _Forward(Protocol):
    """Where a copy of the stored rows goes (`BraintrustUplink`)."""

    def send(self, rows: list[dict[str, Any]]) -> None: ...
    def flush(self, batch_size: int | None = None) -> None: ...


class LocalBackgroundLogger(_MemoryBackgroundLogger):
    """Braintrust's in-memory background logger, flushed into a `LocalStore`.

    With `forward`, the rows written (resolved, merged and masked here, with no login) are also
    handed to it, so Braintrust receives what the local copy holds, and the local copy never
    waits on Braintrust.
    """

    def __init__(self, store: LocalStore, forward: _Forward | None = None) -> None:
        super().__init__()
        self.store = store
        self.forward = forward
        self._flush_lock = threading.Lock()
        self._pending_since: float | None = None
        self._warned = False

    def log(self, *args: Any) -> None:
        super().log(*args)
        now = time.monotonic()
        if self._pending_since is None:
            self._pending_since = now
        if len(self.logs) >= FLUSH_EVERY_ROWS or now - self._pending_since >= FLUSH_EVERY_S:
            self._write_pending()

    def flush(self, batch_size: int | None = None) -> None:
        self._write_pending()
        if self.forward is not None:
            self.forward.flush(batch_size)

    def internal_replace_api_conn(self, api_conn: Any) -> None:
        """Called by `braintrust.login()`; only the forwarded HTTP logger has a connection."""
        replace = getattr(self.forward, "internal_replace_api_conn", None)
        if replace is not None:
            replace(api_conn)

    def _write_pending(self) -> None:
        with self._flush_lock:
            self._pending_since = None
            try:
                rows = self.pop()
                if rows and self.forward is not None:
                    self.forward.send(rows)
                if rows:
                    self.store.write(rows)
            except Exception as error:
                if not self._warned:
                    self._warned = True
                    _log.warning(
                        "braintrust-ollama: could not write traces to %s: %s",
                        self.store.path,
                        error,
                    )


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
            _installed.flush()
        background = LocalBackgroundLogger(store, forward)
        state = _internal_get_global_state()
        created, previous = state._global_bg_logger.get_sync()
        if created and previous is not None:
            carry_masking(previous, background)
        state._global_bg_logger = LazyValue(lambda: background, use_mutex=False)
        if _installed is None:
            atexit.register(_flush_installed)
        _installed = background
        return background


def _flush_installed() -> None:
    if _installed is not None:
        _installed.flush()


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
    print(
        f"braintrust-ollama: traces go to the local store {background.store.path}"
        " (view them: braintrust-ollama traces show last)",
        file=sys.stderr,
    )
    return logger
