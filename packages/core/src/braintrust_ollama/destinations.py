"""`init_logger()`: where traces go — Braintrust when there is a key, the local store when not.

    import braintrust_ollama

    braintrust_ollama.init_logger(project="my-app")

With `BRAINTRUST_API_KEY` (or `api_key=`), spans go to Braintrust and, by default, a copy goes
to the local store (`local_copy=True`): the copy is written whatever Braintrust does (reachable,
slow, refusing, answering 500, rejecting the key), and `braintrust-ollama traces show last`
reads it. With no key, spans go to the local store only. Either way one line on stderr says
where, the traced calls never wait on Braintrust, and exit waits for Braintrust at most
`timeout_s` (5 s): see `BraintrustUplink`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import braintrust
from braintrust.logger import Logger, _internal_get_global_state
from braintrust.util import LazyValue

from braintrust_ollama._command import cli_command
from braintrust_ollama.local.logger import init_local_logger, install_local_store
from braintrust_ollama.local.store import LocalStore
from braintrust_ollama.local.uplink import DEFAULT_TIMEOUT_S, BraintrustUplink, app_url

__all__ = ["init_logger", "keeping_current_logger"]

DEFAULT_PROJECT = "braintrust-ollama"

_uplink: BraintrustUplink | None = None


def init_logger(
    project: str = DEFAULT_PROJECT,
    *,
    api_key: str | None = None,
    app_url: str | None = None,
    org_name: str | None = None,
    local_copy: bool = True,
    path: Path | str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Logger:
    """The current Braintrust `Logger` for `project`, sending spans where the user can read them.

    - With an API key (`api_key=` or `BRAINTRUST_API_KEY`): to Braintrust, and with
      `local_copy` (the default) also to the local store (`path`, by default
      `$BRAINTRUST_OLLAMA_HOME/traces.db` or the per-user data directory).
    - With no key: to the local store only, as `init_local_logger()`.

    Never blocks on Braintrust: the login runs in a background thread; `braintrust.flush()` and
    exit wait for Braintrust at most `timeout_s` each, and not at all once it is away. When
    Braintrust is away (unreachable, silent, failing, rejecting the key) one line on stderr says
    so, and the local copy holds every span. Prints one line saying where traces go.
    """
    key = api_key or os.environ.get("BRAINTRUST_API_KEY")
    if not key:
        return init_local_logger(project, path=path)
    store = LocalStore(path) if local_copy else None
    uplink = _braintrust_uplink(app_url, key, org_name, timeout_s, store)
    if store is not None:
        install_local_store(store, forward=uplink)
    else:
        _install_background(uplink)
    logger = braintrust.init_logger(
        project=project, api_key=api_key, app_url=app_url, org_name=org_name, set_current=True
    )
    # Rows name the project by a local id, known at once: no row waits for a login. The uplink
    # swaps in the real id (it logs in and registers the project) on Braintrust's copy.
    logger._lazy_id = _LocalProjectId(project)
    where = f"Braintrust (project {project})"
    if store is not None:
        where += (
            f" and to the local store {store.path} (view them: {cli_command()} traces show last)"
        )
    # Said before the login starts, so that it comes before any line about Braintrust being away.
    print(f"braintrust-ollama: traces go to {where}\n", end="", file=sys.stderr)  # one write
    uplink.add_project(project, project)
    return logger


class _LocalProjectId(LazyValue[str]):
    """A logger's project id as its rows carry it: the project's name, never a login.

    It stays unresolved (`has_succeeded` is False), so `span.export()` hands other processes the
    project name to resolve, as Braintrust does before its own login completes.
    """

    def __init__(self, project: str) -> None:
        super().__init__(lambda: project, use_mutex=False)

    def get(self) -> str:
        return self.callable()


def _braintrust_uplink(
    url: str | None, key: str, org_name: str | None, timeout_s: float, store: LocalStore | None
) -> BraintrustUplink:
    """The process's uplink (one: Braintrust's logger must be the only one sending rows)."""
    global _uplink
    if _uplink is None or _uplink.away is not None:
        if store is not None:
            kept = (
                f"traces stay in the local store {store.path}"
                f" (send them later: {cli_command()} traces push)"
            )
        else:
            kept = "traces are not kept (init_logger(local_copy=False))"
        _uplink = BraintrustUplink(
            app_url=app_url(url),
            api_key=key,
            org_name=org_name,
            timeout_s=timeout_s,
            kept_where=kept,
            register_exit=store is None,
        )
    return _uplink


def _install_background(background: Any) -> None:
    """Make `background` the process's Braintrust background logger (no local copy)."""
    from braintrust_ollama.local.uplink import carry_masking

    state = _internal_get_global_state()
    created, previous = state._global_bg_logger.get_sync()
    if created and previous is not None and previous is not background:
        carry_masking(previous, background._http)
    state._global_bg_logger = LazyValue(lambda: background, use_mutex=False)


@contextmanager
def keeping_current_logger() -> Iterator[None]:
    """Undo any change to the current logger and background logger made inside the block.

    Braintrust's integration set-ups (pydantic-ai's on braintrust 0.10, among others) call
    `braintrust.init_logger()` when no span is current, which replaces the logger the user
    initialised (and with it where traces go). Nothing is changed when no logger was set.
    """
    state = _internal_get_global_state()
    current = braintrust.current_logger()
    created, background = state._global_bg_logger.get_sync()
    try:
        yield
    finally:
        if current is not None and braintrust.current_logger() is not current:
            state._cv_logger.set(current)
            state._local_logger = current
        if created and state._global_bg_logger.get_sync() != (True, background):
            state._global_bg_logger = LazyValue(lambda: background, use_mutex=False)
