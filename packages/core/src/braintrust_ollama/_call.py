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
    """A traced call in flight: which endpoint, what was asked, when, and under which parent."""

    __slots__ = ("_host", "_parent", "_request", "_start", "endpoint", "finished")

    def __init__(
        self, endpoint: tracing.Endpoint, request: Any, host: str | None, parent: Any
    ) -> None:
        self.endpoint = endpoint
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

        Not traced: endpoints not in `tracing.ENDPOINTS`, and calls with no Braintrust logger,
        experiment or parent span to write to (then the call costs one lookup and nothing else).
        """
        try:
            path = args[2] if len(args) > 2 else kwargs.get("url")
            endpoint = tracing.ENDPOINTS.get(path) if isinstance(path, str) else None
            if endpoint is None:
                return None
            parent = get_span_parent_object()
            if parent is NOOP_SPAN:
                return None
            if isinstance(parent, braintrust.Span):
                setattr(parent, _TOKENS_MARKER, True)
            return cls(endpoint, kwargs.get("json") or {}, _client_host(client), parent)
        except Exception:
            warn_failure("starting a span")
            return None

    def finish_response(self, response: Any) -> None:
        """End with a whole (non-streamed) response."""
        try:
            output = self.endpoint.output(response, self._request)
            end = time.time()
            extra = self.endpoint.response_metadata(response)
            self.write(output, response, end, first_token=end, extra_metadata=extra)
        except Exception:
            warn_failure("recording a response")

    def stream(self) -> CallStream:
        """The accumulator a traced stream feeds: see `CallStream`."""
        return CallStream(self)

    def write(
        self,
        output: Any,
        last: Any,
        end: float,
        *,
        first_token: float | None,
        error: BaseException | None = None,
        extra_metadata: dict[str, Any] | None = None,
    ) -> None:
        """Write the span: `last` is the response or final chunk holding the counters;
        `extra_metadata` is what the response said beyond its output (log probabilities)."""
        if self.finished:
            return
        self.finished = True
        endpoint = self.endpoint
        metrics = endpoint.metrics(last)
        if first_token is not None and endpoint.has_first_token:
            metrics["time_to_first_token"] = first_token - self._start
        metrics["end"] = end
        metadata = endpoint.metadata(self._request, last, self._host)
        if extra_metadata:
            metadata.update(extra_metadata)
        event: dict[str, Any] = {
            "input": endpoint.input(self._request),
            "output": output,
            "metadata": metadata,
            "metrics": metrics,
        }
        if error is not None:
            event["error"] = _describe(error)
            status = getattr(error, "status_code", None)
            if status is not None:
                metadata["status_code"] = status
        fields: dict[str, Any] = {
            "name": endpoint.name,
            "type": endpoint.type,
            "start_time": self._start,
        }
        if isinstance(self._parent, contextvars.Context):
            self._parent.run(braintrust.start_span, **fields, **event)
        else:
            self._parent.start_span(**fields, **event)

    def fail(self, error: BaseException) -> None:
        """End with the error the SDK call raised."""
        try:
            self.write(None, None, time.time(), first_token=None, error=error)
        except Exception:
            warn_failure("recording an error")


class CallStream:
    """A streamed call's accumulator: `add(chunk)` per chunk (the endpoint's `Stream.add`, which
    only appends), then `finish(error)` once, which writes the span with the output seen so far.
    """

    __slots__ = ("_call", "_stream", "add")

    def __init__(self, call: OllamaCall) -> None:
        self._call = call
        self._stream = call.endpoint.stream()
        self.add = self._stream.add

    def stop_reading(self) -> None:
        """After a failure in our own code: log it once, and keep the output seen so far."""
        warn_failure("reading a stream chunk")
        self.add = _ignore

    def finish(self, error: BaseException | None = None, *, at_exit: bool = False) -> None:
        call = self._call
        if call.finished:
            return
        try:
            stream = self._stream
            output = stream.output(call._request)
            extra = stream.response_metadata()
            if at_exit:  # a stream the interpreter's exit left unfinished
                extra["unfinished_at_exit"] = True
            call.write(
                output,
                stream.last,
                time.time(),
                first_token=stream.first_token,
                error=error,
                extra_metadata=extra,
            )
        except Exception:
            warn_failure("recording a stream")


def _ignore(chunk: Any) -> None:
    pass


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
