"""`BraintrustMiddleware`: one Braintrust span per HTTP request, the parent of everything the
request does.

Contract:
- The span is current (Braintrust's contextvar) for the whole ASGI call, so spans made by
  `async def` and thread-pool `def` endpoints, dependencies, streaming bodies and
  `BackgroundTasks` nest under it.
- Its end time is the moment the last body byte was handed to the server, or the moment the
  client disconnected (then `metadata.client_disconnected` is true). The closing row is
  written once the ASGI call returns, after background tasks, so their spans still find it.
- An exception escaping the app is recorded as the span's error with status 500 (unless a
  response had already started) and re-raised unchanged. 4xx responses are not errors.
- The response carries the request span's `traceparent`. An incoming W3C `traceparent` /
  `baggage` is continued through `braintrust.extract_trace_context`.
- Failures inside the middleware never reach the request and never replace the app's own
  exception; each kind is logged once at warning level (`logging.getLogger(__name__)`), with
  its traceback, and at debug level after that.
- Never recorded: see `_redact` (one rule for headers, query, paths, bodies and errors, which
  `secret_names` extends).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import braintrust
from braintrust.logger import Span
from braintrust.propagation import DEFAULT_TRACE_FLAGS, parse_traceparent
from braintrust.span_types import SpanTypeAttribute
from braintrust_ollama._warn import warn_once
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from braintrust_ollama_fastapi._body import BodyRecorder
from braintrust_ollama_fastapi._redact import Redactor
from braintrust_ollama_fastapi.tracing import (
    UNMATCHED,
    client_address,
    has_secret_path_params,
    matched_route,
    query_params,
    read_headers,
    redacted_path,
    route_template,
    span_method,
)

_log = logging.getLogger(__name__)

_SHUTDOWN_MESSAGES = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})


class BraintrustMiddleware:
    """Pure ASGI middleware tracing every HTTP request as a Braintrust span.

    `app.add_middleware(BraintrustMiddleware)` on a FastAPI or Starlette app. Options:

    - `record_headers`: request header names to record under `input.headers`. Secret names
      (built-in and `secret_names`) are dropped even when listed.
    - `skip_paths`: regular expressions; a request whose whole path matches one is not traced
      (`"/health"`, `"/static/.*"`). An invalid one raises `re.error` when the app starts.
    - `secret_names`: regular expressions searched, case-insensitively, in every name the span
      may record (headers, query keys, path parameters, JSON keys, form fields, `name=value`
      pairs in text): a match is redacted, on top of the built-in rule (`_redact`).
    - `record_bodies`: record the request body as `input.body` and the response body as
      `output.body`, parsed by content type and redacted by the same rule; a body that cannot
      be parsed (binary, compressed, broken) or is over `max_body_bytes` becomes a placeholder
      naming its type and size (an event stream or NDJSON keeps its events or lines that end
      within the limit). Off by default.
    - `max_body_bytes`: how much of each body is held to be recorded (default 64 KiB).
    - `span_name`: `f(request) -> str` naming the span once the route is known; the default
      is `"<METHOD> <route template>"`, or `"<METHOD> (no route)"` when no route matched (a
      method neither HTTP's own nor one the route takes is `HTTP`): a request cannot choose
      its span's name.
    - `flush_on_shutdown`: flush Braintrust's logger at lifespan shutdown (default on).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        record_headers: Iterable[str] = (),
        skip_paths: Iterable[str] = (),
        secret_names: Iterable[str] = (),
        record_bodies: bool = False,
        max_body_bytes: int = 64 * 1024,
        span_name: Callable[[Request], str] | None = None,
        flush_on_shutdown: bool = True,
    ) -> None:
        self.app = app
        skip = "|".join(f"(?:{pattern})" for pattern in skip_paths)
        self._options = _Options(
            record_headers=frozenset(name.lower().encode("latin-1") for name in record_headers),
            skip_paths=re.compile(skip) if skip else None,
            redactor=Redactor(secret_names),
            max_body_bytes=max_body_bytes if record_bodies else None,
            span_name=span_name,
            flush_on_shutdown=flush_on_shutdown,
        )
        # Known at the first request, once the app's routes are.
        self._secret_paths: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._options.skipped(scope["path"]):
            await self._traced(scope, receive, send)
        elif scope["type"] == "lifespan" and self._options.flush_on_shutdown:
            await self.app(scope, receive, _flush_before_shutdown_reply(send))
        else:
            await self.app(scope, receive, send)

    def _paths_may_hold_secrets(self, scope: Scope) -> bool:
        if self._secret_paths is None:
            try:
                app = scope.get("app")
                self._secret_paths = has_secret_path_params(app, self._options.redactor)
            except Exception:
                warn_once(
                    _log,
                    "could not read the app's routes; recording no raw paths",
                    unaffected="the request",
                )
                self._secret_paths = True
        return self._secret_paths

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            exchange = _Exchange(
                scope, receive, send, self._options, self._paths_may_hold_secrets(scope)
            )
        except Exception:
            warn_once(
                _log, "could not start the request span; serving untraced", unaffected="the request"
            )
            await self.app(scope, receive, send)
            return
        exchange.make_current()
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:
            exchange.failed(exc)
            raise
        finally:
            exchange.close()


@dataclass(frozen=True)
class _Options:
    record_headers: frozenset[bytes]  # lowercased, as ASGI header names
    skip_paths: re.Pattern[str] | None
    redactor: Redactor
    max_body_bytes: int | None  # None: bodies are not recorded
    span_name: Callable[[Request], str] | None
    flush_on_shutdown: bool

    def skipped(self, path: str) -> bool:
        return self.skip_paths is not None and self.skip_paths.fullmatch(path) is not None


class _Exchange:
    """One request/response cycle and its span: the app's `receive` and `send` go through it.

    The span is written twice: at the start (name, type, input), so that it exists while the
    request runs, and once more at the end with everything else, the end time included.
    """

    __slots__ = (
        "_complete",
        "_disconnected",
        "_end_time",
        "_error",
        "_name",
        "_options",
        "_path_may_hold_secrets",
        "_receive",
        "_request_body",
        "_request_type",
        "_response_body",
        "_response_type",
        "_root_path",
        "_scope",
        "_send",
        "_status",
        "_traceparent",
        "span",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        options: _Options,
        path_may_hold_secrets: bool,
    ) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._options = options
        # Routing rewrites `root_path` for mounted apps; keep the server's to find the prefix.
        self._root_path: str = scope.get("root_path", "")
        redactor = options.redactor
        headers = read_headers(scope, options.record_headers, redactor)
        # With a secret-named path parameter somewhere in the app, the path is recorded only
        # once routing tells which of its segments to redact.
        self._path_may_hold_secrets = path_may_hold_secrets
        span_input: dict[str, Any] = {"method": scope["method"]}
        if not path_may_hold_secrets:
            span_input["path"] = redactor.text(scope["path"])
        span_input["query"] = query_params(scope.get("query_string", b""), redactor)
        if headers.recorded:
            span_input["headers"] = headers.recorded
        parent = None
        flags = DEFAULT_TRACE_FLAGS
        if headers.trace_context:
            parent = braintrust.extract_trace_context(headers.trace_context)
            inbound = parse_traceparent(headers.trace_context.get("traceparent"))
            if inbound:
                flags = inbound.trace_flags
        # Until routing is done, the method: the path is the client's to choose.
        self._name = span_method(scope["method"], None)
        # Known now: written with the start row, so the closing row stays small.
        metadata: dict[str, Any] = {}
        if http_version := scope.get("http_version"):
            metadata["http_version"] = http_version
        if client := client_address(scope):
            metadata["client"] = client
        if headers.user_agent is not None:
            metadata["user_agent"] = headers.user_agent
        self.span = braintrust.start_span(
            name=self._name,
            type=SpanTypeAttribute.TASK,
            parent=parent,
            input=span_input,
            metadata=metadata,
        )
        self._traceparent = _traceparent(self.span, flags)
        self._status: int | None = None
        self._complete = False
        self._disconnected = False
        self._end_time: float | None = None
        self._error: str | None = None
        limit = options.max_body_bytes
        self._request_body = BodyRecorder(limit) if limit is not None else None
        self._response_body = BodyRecorder(limit) if limit is not None else None
        # Content type and encoding, which say how a recorded body is parsed and redacted.
        self._request_type = (headers.content_type, headers.content_encoding)
        self._response_type: tuple[str | None, str | None] = (None, None)

    async def receive(self) -> Message:
        message = await self._receive()
        try:
            if message["type"] == "http.disconnect":
                self._client_gone()
            elif self._request_body is not None and message["type"] == "http.request":
                self._request_body.add(message.get("body", b""))
        except Exception:
            warn_once(_log, "could not observe a received ASGI message", unaffected="the request")
        return message

    async def send(self, message: Message) -> None:
        try:
            message = self._on_send(message)
        except Exception:
            warn_once(_log, "could not observe a sent ASGI message", unaffected="the request")
        try:
            await self._send(message)
        except OSError:
            self._client_gone()
            raise
        if self._complete and self._end_time is None:
            self._end_time = time.time()

    def _on_send(self, message: Message) -> Message:
        kind = message["type"]
        if kind == "http.response.start":
            self._status = message["status"]
            if self._response_body is not None:
                self._response_type = _content_type(message.get("headers", ()))
            if self._traceparent:
                headers = [*message.get("headers", ()), (b"traceparent", self._traceparent)]
                return {**message, "headers": headers}
        elif kind == "http.response.body":
            if self._response_body is not None:
                self._response_body.add(message.get("body", b""))
            self._complete = not message.get("more_body", False)
        elif kind == "http.response.pathsend":
            self._complete = True
        return message

    def _client_gone(self) -> None:
        if not self._complete and not self._disconnected:
            self._disconnected = True
            self._end_time = time.time()

    def make_current(self) -> None:
        """Make the span Braintrust's current span, so what the request does nests under it."""
        try:
            self.span.set_current()
        except Exception:
            warn_once(_log, "could not make the request span current", unaffected="the request")

    def failed(self, exc: BaseException) -> None:
        """Record an exception escaping the app (the caller re-raises it unchanged)."""
        if self._disconnected or not isinstance(exc, Exception):
            return
        if self._status is None:
            self._status = 500
        try:
            error = braintrust.stringify_exception(type(exc), exc, exc.__traceback__)
        except Exception:
            warn_once(_log, "could not record the request's error", unaffected="the request")
            error = f"{type(exc).__name__}: {exc}"
        try:
            self._error = self._options.redactor.text(error)  # messages quote URLs and headers
        except Exception:
            warn_once(_log, "could not redact the request's error", unaffected="the request")
            self._error = type(exc).__name__

    def close(self) -> None:
        """Stop being the current span and write the closing row: route, status, outcome and
        end time. Never raises."""
        try:
            self.span.unset_current()
        except Exception:
            warn_once(_log, "could not unset the request span", unaffected="the request")
        try:
            self.span.log(**self._closing_row())
        except Exception:
            warn_once(_log, "could not close the request span", unaffected="the request")
            try:
                self.span.end()
            except Exception:
                warn_once(_log, "could not end the request span", unaffected="the request")

    def _closing_row(self) -> dict[str, Any]:
        """Only what the start row lacks: the route is known once routing is done, the rest
        once the response is."""
        scope, redactor = self._scope, self._options.redactor
        matched = matched_route(scope)
        route = route_template(scope, matched, self._root_path)
        status = self._status
        metadata: dict[str, Any] = {}
        if status is not None:
            metadata["status_code"] = status
        if route is not None:
            metadata["route"] = route
        elif self._path_may_hold_secrets:  # the path, which a name no longer holds
            metadata["path"] = redacted_path(scope, None, redactor)
        else:
            metadata["path"] = redactor.text(scope["path"])
        if self._disconnected:
            metadata["client_disconnected"] = True
        output: dict[str, Any] = {"status_code": status}
        row: dict[str, Any] = {
            "output": output,
            "metadata": metadata,
            "metrics": {"end": self._end_time or time.time()},
        }
        if route is not None or self._request_body is not None or self._path_may_hold_secrets:
            span_input: dict[str, Any] = {}
            row["input"] = span_input
            if self._path_may_hold_secrets:
                span_input["path"] = redacted_path(scope, route, redactor)
            if route is not None:
                span_input["route"] = route
            if self._request_body is not None:
                span_input["body"] = _recorded(self._request_body, self._request_type, redactor)
                if self._request_body.truncated:
                    metadata["request_body_bytes"] = self._request_body.size
        if self._response_body is not None:
            output["body"] = _recorded(self._response_body, self._response_type, redactor)
            if self._response_body.truncated:
                metadata["response_body_bytes"] = self._response_body.size
        if self._error is not None:
            row["error"] = self._error
        name = self._final_name(matched, route)
        if name != self._name:
            row["span_attributes"] = {"name": name}
        return row

    def _final_name(self, matched: Any, route: str | None) -> str:
        if self._options.span_name is not None:
            try:
                return self._options.span_name(Request(self._scope))
            except Exception:
                warn_once(
                    _log, "span_name raised; using the default name", unaffected="the request"
                )
        return f"{span_method(self._scope['method'], matched)} {route or UNMATCHED}"


# W3C trace and span ids: lowercase hex, not all zeros.
_W3C_IDS = re.compile(r"(?!0{32})[0-9a-f]{32}-(?!0{16}$)[0-9a-f]{16}")


def _traceparent(span: Span, flags: str) -> bytes:
    """The span's W3C `traceparent` with the given trace flags; empty when the span ids are
    not W3C-shaped (legacy UUID ids). What `braintrust.propagation.format_traceparent` returns,
    checked with one regular expression instead of a character-by-character scan; and not
    `Span.inject`, which also assembles `baggage` at a quarter of a span's cost."""
    ids = f"{getattr(span, 'root_span_id', '')}-{getattr(span, 'span_id', '')}"
    if _W3C_IDS.fullmatch(ids) is None:
        return b""
    return f"00-{ids}-{flags}".encode("latin-1")


def _recorded(
    body: BodyRecorder, content: tuple[str | None, str | None], redactor: Redactor
) -> Any:
    """A body as the span records it; a placeholder if rendering it fails."""
    try:
        return body.render(*content, redactor)
    except Exception:
        warn_once(_log, "could not record a body", unaffected="the request")
        return f"[body, {body.size} bytes, not recorded]"


def _content_type(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
    """A response's `content-type` and `content-encoding` headers."""
    content_type = content_encoding = None
    for name, value in headers:
        lowered = name.lower()
        if lowered == b"content-type":
            content_type = value.decode("latin-1")
        elif lowered == b"content-encoding":
            content_encoding = value.decode("latin-1")
    return content_type, content_encoding


def _flush_before_shutdown_reply(send: Send) -> Send:
    """Flushes Braintrust's logger just before the app reports shutdown to the server."""

    async def send_after_flush(message: Message) -> None:
        if message["type"] in _SHUTDOWN_MESSAGES:
            try:
                await anyio.to_thread.run_sync(braintrust.flush)
            except Exception:
                warn_once(
                    _log,
                    "could not flush Braintrust's logger at shutdown",
                    unaffected="the shutdown",
                )
        await send(message)

    return send_after_flush


__all__ = ["BraintrustMiddleware"]
