"""One traced Ollama SDK call, written to Braintrust as exactly one span when it finishes.

The SDK span is a leaf (nothing runs under it), so it is written once, with everything it holds,
when the call ends: one row, one deep copy, one hand-off to the background logger. Its parent
is the span (or logger, or experiment) that was current when the SDK method was called, held
from then on: this matters for streams, which the SDK only starts on the first `next()`, often
after the caller's span has ended.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

import braintrust
from braintrust.logger import NOOP_SPAN, get_span_parent_object
from braintrust.span_types import SpanTypeAttribute

from . import tracing

_log = logging.getLogger("braintrust_ollama")

# Set on a Braintrust span once a traced Ollama call has been made under it: the SDK span owns
# that call's tokens, so an adapter's span for the same call must not count them again.
_TOKENS_MARKER = "_braintrust_ollama_counts_tokens"


def tokens_counted_under(span: Any) -> bool:
    """True once a traced Ollama SDK call was made while `span` was the current span.

    The SDK span under it then carries that call's token metrics; a framework span for the same
    model call (LangChain's `ChatOllama` run, say) should carry none, so nothing is counted twice.
    """
    return bool(getattr(span, _TOKENS_MARKER, False))


def has_destination() -> bool:
    """True when a span would be written somewhere: a current span, logger, experiment or parent."""
    try:
        return get_span_parent_object() is not NOOP_SPAN
    except Exception:
        warn_failure("looking up the current Braintrust span")
        return False


def warn_failure(what: str) -> None:
    """Log a failure inside our own code once, with its traceback; the user's call goes on."""
    _log.warning(
        "braintrust-ollama: %s failed; the Ollama call is not affected", what, exc_info=True
    )


class OllamaCall:
    """A traced call in flight: what was asked, when, and under which parent."""

    __slots__ = ("_host", "_parent", "_path", "_request", "_start", "finished")

    def __init__(self, path: str, request: Any, host: str | None, parent: Any) -> None:
        self._path = path
        self._request = request
        self._host = host
        # A span, logger or experiment to start the span on; for a parent given as an exported
        # slug (`braintrust.parent_context`), the call's context, where Braintrust resolves it.
        self._parent = parent if hasattr(parent, "start_span") else contextvars.copy_context()
        self._start = time.time()
        self.finished = False

    @classmethod
    def begin(cls, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> OllamaCall | None:
        """Start tracing an SDK `_request(cls, method, path, ...)`, or None if it is not traced.

        Not traced: management endpoints, and calls with no Braintrust logger, experiment or
        parent span to write to (then the call costs one lookup and nothing else).
        """
        try:
            path = args[2] if len(args) > 2 else kwargs.get("url")
            if not isinstance(path, str) or path not in tracing.ENDPOINTS:
                return None
            parent = get_span_parent_object()
            if parent is NOOP_SPAN:
                return None
            if isinstance(parent, braintrust.Span):
                setattr(parent, _TOKENS_MARKER, True)
            return cls(path, kwargs.get("json") or {}, _client_host(client), parent)
        except Exception:
            warn_failure("starting a span")
            return None

    @property
    def path(self) -> str:
        return self._path

    def finish_response(self, response: Any) -> None:
        """End with a whole (non-streamed) response."""
        try:
            if self._path == "/api/chat":
                output = tracing.output_for_chat(response.message)
            elif self._path == "/api/generate":
                output = tracing.output_for_generate(
                    response.response, getattr(response, "thinking", None)
                )
            elif self._path == "/api/embed":
                output = tracing.output_for_embed(response.embeddings)
            else:
                output = tracing.output_for_embeddings(response.embedding)
            end = time.time()
            self.write(output, response, end, first_token=end)
        except Exception:
            warn_failure("recording a response")

    def write(
        self,
        output: Any,
        last: Any,
        end: float,
        *,
        first_token: float | None,
        error: BaseException | None = None,
        unfinished_at_exit: bool = False,
    ) -> None:
        """Write the span: `last` is the response or final chunk holding the counters;
        `unfinished_at_exit` marks a stream the interpreter exit left unfinished."""
        if self.finished:
            return
        self.finished = True
        metrics = tracing.metrics_from_response(last) if last is not None else {}
        if first_token is not None:
            metrics["time_to_first_token"] = first_token - self._start
        metrics["end"] = end
        metadata = tracing.span_metadata(self._path, self._request, self._host)
        done_reason = getattr(last, "done_reason", None)
        if done_reason:
            metadata["done_reason"] = done_reason
        if unfinished_at_exit:
            metadata["unfinished_at_exit"] = True
        event: dict[str, Any] = {
            "input": tracing.span_input(self._path, self._request),
            "output": output,
            "metadata": metadata,
            "metrics": metrics,
        }
        if error is not None:
            event["error"] = _describe(error)
            status = getattr(error, "status_code", None)
            if status is not None:
                metadata["status_code"] = status
        name = tracing.ENDPOINTS[self._path]
        if isinstance(self._parent, contextvars.Context):
            self._parent.run(_start_span, name=name, start_time=self._start, **event)
        else:
            self._parent.start_span(name=name, type="llm", start_time=self._start, **event)

    def fail(self, error: BaseException) -> None:
        """End with the error the SDK call raised."""
        try:
            self.write(None, None, time.time(), first_token=None, error=error)
        except Exception:
            warn_failure("recording an error")


def _start_span(**fields: Any) -> None:
    braintrust.start_span(type=SpanTypeAttribute.LLM, **fields)


def _describe(error: BaseException) -> str:
    """`ResponseError: model "x" not found (status code: 404)`: the type and message."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _client_host(client: Any) -> str | None:
    """The client's server as `scheme://host:port`, cached per underlying httpx client."""
    try:
        http = client._client
        cached = client.__dict__.get("_braintrust_ollama_host")
        if cached is None or cached[0] is not http:
            cached = (http, tracing.host_without_credentials(http.base_url))
            client.__dict__["_braintrust_ollama_host"] = cached
        return cached[1]
    except Exception:
        return None
