"""How every braintrust-ollama package tells the user something.

- A failure inside our own code (`warn_once`) never reaches the user's call; it is logged,
  through the logger of the module where it happened (`logging.getLogger(__name__)`). The first
  failure of each kind (per logger, per `what`) at warning level with its traceback; later ones
  at debug level, so that a broken tracer cannot flood the application's logs.
- What the user must know about where their traces are (`notice`: where they go, Braintrust
  away, the local store failing) is one line on stderr, `braintrust-ollama: ...`, written in
  one piece, never with a traceback, never with a URL's credentials (`safe_url`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import urllib.parse

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


def warn_once(log: logging.Logger, what: str, *, unaffected: str = "the Ollama call") -> None:
    """Log the exception being handled as `what` (say, "could not start a span").

    Call it from an `except` block: the traceback is the one being handled. At warning level the
    first time `log` reports this `what` in the process, at debug level after that. `unaffected`
    names what goes on regardless (the Ollama call, the request, the LlamaIndex call).
    """
    if _first(log, what):
        log.warning(
            "braintrust-ollama: %s; %s is not affected (logged once)",
            what,
            unaffected,
            exc_info=True,
        )
    else:
        log.debug("braintrust-ollama: %s", what, exc_info=True)


def log_once(log: logging.Logger, what: str, *, level: int = logging.INFO) -> None:
    """Log `what` (not a failure: a setting taking effect, say; an unsupported version at warning
    level) at `level` the first time `log` says it in the process; at debug level after that."""
    log.log(level if _first(log, what) else logging.DEBUG, "braintrust-ollama: %s", what)


def _first(log: logging.Logger, what: str) -> bool:
    key = (log.name, what)
    with _lock:
        first = key not in _warned
        _warned.add(key)
    return first


def reset_warnings() -> None:
    """Forget which failures were logged, so the next of each kind warns again (for tests)."""
    with _lock:
        _warned.clear()


def notice(line: str) -> None:
    """Print `braintrust-ollama: <line>` on stderr in one write (the lines of worker processes
    sharing one stderr never run into each other); never raises (stderr may be closed at exit)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.write(f"braintrust-ollama: {line}\n")
        sys.stderr.flush()
    logging.getLogger("braintrust_ollama").debug("%s", line)


def safe_url(url: str) -> str:
    """`scheme://host:port` of `url`: never a user name, password, path or query."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(an address that could not be read)"
    return f"{parts.scheme}://{host}{port}" if parts.scheme else host + port
