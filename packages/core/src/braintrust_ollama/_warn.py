"""The one way every braintrust-ollama package reports a failure inside its own code.

A failure of tracing never reaches the user's call; it is logged instead, through the logger of
the module where it happened (`logging.getLogger(__name__)`). The first failure of each kind
(per logger, per `what`) is logged at warning level with its traceback; later ones at debug
level, so that a broken tracer cannot flood the application's logs.
"""

from __future__ import annotations

import logging
import threading

_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


def warn_once(log: logging.Logger, what: str, *, unaffected: str = "the Ollama call") -> None:
    """Log the exception being handled as `what` (say, "could not start a span").

    Call it from an `except` block: the traceback is the one being handled. At warning level the
    first time `log` reports this `what` in the process, at debug level after that. `unaffected`
    names what goes on regardless (the Ollama call, the request, the LlamaIndex call).
    """
    key = (log.name, what)
    with _lock:
        first = key not in _warned
        _warned.add(key)
    if first:
        log.warning(
            "braintrust-ollama: %s; %s is not affected (logged once)",
            what,
            unaffected,
            exc_info=True,
        )
    else:
        log.debug("braintrust-ollama: %s", what, exc_info=True)


def reset_warnings() -> None:
    """Forget which failures were logged, so the next of each kind warns again (for tests)."""
    with _lock:
        _warned.clear()
