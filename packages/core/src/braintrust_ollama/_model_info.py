"""What the model a call ran on is: `/api/show` and `/api/ps` of the same Ollama server, fetched
in the background and kept per process.

Contract:

- Off the call path: a traced chat or generate call only looks its model up (`MODEL_INFO.look_up`:
  one dictionary read). The first call with a model on a server queues a fetch, which a thread
  of its own runs; the call never waits for it, and its span carries what is known when it is
  written (`Entry.facts`). A real model's first answer takes longer than a local `/api/show`, so the
  first span usually has the details; a model loaded for that call (a cold start) is not in
  `/api/ps` yet, so its window and GPU share come with the next span.
- At most once per (server, model, digest) per process for `/api/show`; `/api/ps` again after a
  cold start (the model was loaded anew: its window and GPU share may have changed, and a new
  digest, from a new pull, brings a new `/api/show`) and after a call while `/api/ps` has not
  listed the model yet (it was asked before the model was loaded), at most every
  `REFRESH_INTERVAL_S` (and `UNLISTED_ASKS` times for the latter). A failed `/api/show` is tried
  again only when `/api/ps` shows the model loaded.
- Never traced (plain httpx, not the `ollama` SDK), bounded in time (`FETCH_TIMEOUT_S` per
  request, `MAX_BODY_BYTES` per body), silent on failure beyond a debug log. The request goes to
  the client's own base URL with the client's headers (its credentials included); neither is
  ever logged: the log names the host without credentials.
- `BRAINTRUST_OLLAMA_MODEL_INFO=false` turns it off (read when a model is first seen).
- Forked children start with what the parent knew and none of its fetches in flight.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import _settings
from ._insight import ModelFacts

__all__ = [
    "FETCH_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MODEL_INFO",
    "Entry",
    "ModelInfo",
    "Server",
    "facts_from_ps",
    "facts_from_show",
]

_log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 2.0  # per request: connect, each read, and the whole body
REFRESH_INTERVAL_S = 1.0  # `/api/ps` again after a cold start at most this often per model
UNLISTED_ASKS = 3  # `/api/ps` asked again at most this often when it does not list the model
_KEPT_CLIENTS = 8  # servers whose HTTP client the worker keeps
_UNSEEN: Any = object()
MAX_BODY_BYTES = 4 * 1024 * 1024  # a `/api/show` body with a long license is ~50 KB

# What `metadata.model_details` holds, from `/api/show`'s `details`.
_DETAIL_KEYS = ("family", "parameter_size", "quantization_level", "format")


@dataclass(frozen=True)
class Server:
    """Where to ask: the traced client's base URL and headers (credentials stay in them)."""

    base_url: str
    headers: tuple[tuple[str, str], ...]


class Entry:
    """What is known about one model on one server; `facts` is replaced, never changed."""

    __slots__ = (
        "again",
        "busy",
        "digest",
        "facts",
        "listed",
        "refreshed",
        "shown",
        "unlisted_asks",
    )

    def __init__(self) -> None:
        self.facts = ModelFacts()
        self.digest: str | None = None  # of the model `/api/show` described, once known
        self.shown = False  # `/api/show` answered
        self.listed = False  # `/api/ps` has listed the model (it was loaded)
        self.busy = False  # a fetch is queued or running
        self.again = False  # a cold start asked for `/api/ps` while it ran
        self.unlisted_asks = 0  # times `/api/ps` was asked again because it had not listed it
        self.refreshed: float | None = None  # when a cold start last asked for `/api/ps`


class _Worker:
    """One daemon thread running the fetches in turn: a call only queues one (no thread start
    on the call path but the first of the process). A server that hangs holds the others back
    by at most its bounded fetch."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="braintrust-ollama-model-info", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._jobs.get()()  # a job never raises: `ModelInfo._fetch` catches all

    def after_fork_in_child(self) -> None:
        self._jobs = queue.SimpleQueue()  # the parent's jobs are the parent's
        self._thread = None
        self._lock = threading.Lock()


class ModelInfo:
    """The per-process cache of model facts, by (server host, model)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry | None] = {}  # None: model info was off
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._worker = _Worker()
        self._clients: dict[Server, httpx.Client] = {}  # the worker thread's, by server
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)

    def look_up(
        self, host: str, model: str, client: Any, server: Callable[[Any], Server]
    ) -> Entry | None:
        """The entry of `model` on `host` (the server of the SDK `client`, which `server(client)`
        says how to reach); the first look-up queues its fetch. None when model info is off (as
        it was when the model was first seen on that server)."""
        entry = self._entries.get((host, model), _UNSEEN)
        if entry is not _UNSEEN:
            return entry
        enabled = _settings.model_info_enabled()
        with self._lock:
            entry = self._entries.get((host, model), _UNSEEN)
            if entry is not _UNSEEN:
                return entry
            entry = self._entries[(host, model)] = Entry() if enabled else None
            if entry is None:
                return None
            entry.busy = True
        self._submit(host, model, entry, server, client, first=True)
        return entry

    def loaded_again(
        self,
        host: str,
        model: str,
        entry: Entry,
        client: Any,
        server: Callable[[Any], Server],
        *,
        cold: bool,
    ) -> None:
        """After a call: ask `/api/ps` again (and `/api/show` if the digest changed) when the
        call loaded the model (`cold`), or while `/api/ps` has not listed it (it was asked
        before the model was loaded; `UNLISTED_ASKS` times at most). At most every
        `REFRESH_INTERVAL_S` (calls that each load the model: `keep_alive=0`)."""
        if not cold and (entry.listed or entry.unlisted_asks >= UNLISTED_ASKS):
            return
        with self._lock:
            now = time.monotonic()
            if entry.refreshed is not None and now - entry.refreshed < REFRESH_INTERVAL_S:
                return
            if entry.busy:
                # The running fetch asks `/api/ps` once more if the model was loaded anew,
                # or if its own `/api/ps` does not list it.
                entry.again = entry.again or cold
                entry.refreshed = now if cold else entry.refreshed
                return
            entry.refreshed = now
            if not cold:
                entry.unlisted_asks += 1
            entry.busy = True
        self._submit(host, model, entry, server, client, first=False)

    def wait(self, timeout: float) -> bool:
        """Wait until no fetch is running (at most `timeout` seconds); True if none is."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while any(e is not None and e.busy for e in self._entries.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def clear(self) -> None:
        """Forget every model (tests)."""
        with self._lock:
            self._entries = {}

    # --- the fetch --------------------------------------------------------------------------

    def _submit(
        self,
        host: str,
        model: str,
        entry: Entry,
        server: Callable[[Any], Server],
        client: Any,
        *,
        first: bool,
    ) -> None:
        try:
            where = server(client)
            self._worker.submit(functools.partial(self._fetch, host, model, entry, where, first))
        except Exception as error:  # no thread at interpreter exit, say
            _log.debug(
                "braintrust-ollama: no model info for %s on %s: %s", model, host, _why(error)
            )
            self._done(entry)

    def _fetch(self, host: str, model: str, entry: Entry, server: Server, first: bool) -> None:
        try:
            client = self._client(server)
            if first:
                _quietly(self._show, client, model, entry, None, host=host)
            _quietly(self._ps, client, model, entry, host=host)
            with self._lock:
                again, entry.again = entry.again, False
            if again:  # the model was loaded anew while this fetch ran
                _quietly(self._ps, client, model, entry, host=host)
        except Exception as error:
            _log.debug(
                "braintrust-ollama: no model info for %s on %s: %s", model, host, _why(error)
            )
        finally:
            self._done(entry)

    def _client(self, server: Server) -> httpx.Client:
        """The worker's HTTP client for `server`, kept (with its connections) for the next fetch:
        a new one costs a TLS context, ~30 ms. For an `http://` server, none is made (there is
        no TLS to verify, and redirects, to `https://` or anywhere, are not followed)."""
        client = self._clients.pop(server, None)
        if client is None:
            client = httpx.Client(
                base_url=server.base_url,
                headers=list(server.headers),
                follow_redirects=False,
                verify=not server.base_url.startswith("http://"),
            )
        self._clients[server] = client  # the most recently used last
        while len(self._clients) > _KEPT_CLIENTS:
            self._clients.pop(next(iter(self._clients))).close()
        return client

    def _show(self, client: httpx.Client, model: str, entry: Entry, digest: str | None) -> None:
        body = _get_json(client, "POST", "/api/show", {"model": model})
        details, num_predict = facts_from_show(body)
        entry.facts = dataclasses.replace(entry.facts, details=details, num_predict=num_predict)
        entry.shown = True
        entry.digest = digest

    def _ps(self, client: httpx.Client, model: str, entry: Entry) -> None:
        found = facts_from_ps(_get_json(client, "GET", "/api/ps"), model)
        if found is None:  # not loaded (yet): what was known stays
            return
        entry.listed = True
        context_length, offload, digest = found
        entry.facts = dataclasses.replace(
            entry.facts, context_length=context_length, gpu_offload=offload
        )
        if digest and entry.shown and entry.digest is None:
            entry.digest = digest  # the digest `/api/show` described, learnt afterwards
        elif digest and (not entry.shown or digest != entry.digest):
            self._show(client, model, entry, digest)  # a new pull, or a failed first look

    def _done(self, entry: Entry) -> None:
        with self._idle:
            entry.busy = False
            entry.again = False
            self._idle.notify_all()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._worker.after_fork_in_child()
        self._clients = {}  # the parent's connections stay the parent's
        for entry in self._entries.values():  # their threads are not in the child
            if entry is not None:
                entry.busy = False
                entry.again = False


def _quietly(
    step: Callable[..., None], client: httpx.Client, model: str, *args: Any, host: str
) -> None:
    """One fetch step; its failure is a debug line (and the next step still runs)."""
    try:
        step(client, model, *args)
    except Exception as error:
        _log.debug("braintrust-ollama: no model info for %s on %s: %s", model, host, _why(error))


def _why(error: Exception) -> str:
    """What went wrong, in one line without the URL's credentials (httpx names the URL)."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code} from {error.request.url.path}"
    return _CREDENTIALS.sub("://", f"{type(error).__name__}: {error}")


_CREDENTIALS = re.compile(r"://[^/\s@]*@")


def _get_json(client: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    """The JSON body of one request, read within `FETCH_TIMEOUT_S` and `MAX_BODY_BYTES`."""
    deadline = time.monotonic() + FETCH_TIMEOUT_S
    with client.stream(method, path, json=body, timeout=FETCH_TIMEOUT_S) as response:
        response.raise_for_status()
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > MAX_BODY_BYTES:
                raise ValueError(f"{path}: body over {MAX_BODY_BYTES} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path}: body not read in {FETCH_TIMEOUT_S} s")
    return json.loads(bytes(data))


# --- reading the answers (pure) -----------------------------------------------------------------


def facts_from_show(body: Any) -> tuple[dict[str, Any] | None, int | None]:
    """`metadata.model_details` from an `/api/show` body, and the model's own `num_predict`.

    Takes what has the expected type and leaves the rest: `details.family`, `parameter_size`,
    `quantization_level`, `format` (text); `context_length` (the trained one,
    `model_info["<architecture>.context_length"]`); `capabilities` (a list of text).
    """
    if not isinstance(body, Mapping):
        return None, None
    details: dict[str, Any] = {}
    given = body.get("details")
    if isinstance(given, Mapping):
        for key in _DETAIL_KEYS:
            value = given.get(key)
            if isinstance(value, str) and value:
                details[key] = value
    info = body.get("model_info")
    if isinstance(info, Mapping):
        architecture = info.get("general.architecture")
        trained = (
            _count(info.get(f"{architecture}.context_length"))
            if isinstance(architecture, str)
            else None
        )
        if trained:
            details["context_length"] = trained
    capabilities = body.get("capabilities")
    if isinstance(capabilities, list):
        named = [c for c in capabilities if isinstance(c, str)]
        if named:
            details["capabilities"] = named
    return details or None, _parameter(body.get("parameters"), "num_predict")


def facts_from_ps(body: Any, model: str) -> tuple[int | None, float | None, str | None] | None:
    """(window, GPU share when under 1, digest) of `model` in an `/api/ps` body, or None when
    it is not loaded. The window is `context_length` (server v0.9.7+); the GPU share is
    `size_vram / size`."""
    models = body.get("models") if isinstance(body, Mapping) else None
    if not isinstance(models, list):
        return None
    wanted = _full_name(model)
    for loaded in models:
        if not isinstance(loaded, Mapping):
            continue
        names = {
            _full_name(n) for n in (loaded.get("name"), loaded.get("model")) if isinstance(n, str)
        }
        if wanted not in names:
            continue
        window = _count(loaded.get("context_length"))
        size, vram = _count(loaded.get("size")), _count(loaded.get("size_vram"))
        share = None
        if size and vram is not None and vram < size:
            share = math.floor(vram / size * 1000) / 1000  # 0.999, never 1.0
        digest = loaded.get("digest")
        return (window or None, share, digest if isinstance(digest, str) and digest else None)
    return None


def _full_name(model: str) -> str:
    """`llama3.2` and `llama3.2:latest` name the same model."""
    return model if ":" in model.rpartition("/")[2] else f"{model}:latest"


def _count(value: Any) -> int | None:
    """`value` when it is a whole number, not negative (JSON's true is not one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _parameter(parameters: Any, name: str) -> int | None:
    """A whole-number parameter from `/api/show`'s `parameters` text (`num_predict 256`)."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and words[0] == name:
            try:
                number = int(words[1].strip())
            except ValueError:
                return None
            return number if number > 0 else None
    return None


MODEL_INFO = ModelInfo()
