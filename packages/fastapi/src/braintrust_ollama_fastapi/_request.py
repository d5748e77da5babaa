"""What a request span holds: an ASGI scope turned into span input and metadata.

Never recorded, whatever the options say: credential headers (`Authorization`, `Cookie`,
`Set-Cookie`, `Proxy-Authorization`, API-key / token / secret style names) and the values of
sensitive-looking query parameters (replaced by `REDACTED`). The raw query string is never
recorded.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Scope

REDACTED = "[REDACTED]"

# Header names that carry credentials; never recorded even when allow-listed.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrf-token"}
)
# A header or query-parameter name (lowercased, `-` and `_` removed) matching this holds a
# secret: it contains one of these words, is `key` / `sig` / `pwd`, or ends in `key`.
_SECRET_NAME = re.compile(
    r"password|passwd|secret|token|apikey|auth|credential|session|signature|cookie|privatekey"
    r"|^(?:sig|pwd)$|key$"
)

# Headers the middleware reads for itself while it walks the request headers once.
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


@functools.lru_cache(maxsize=1024)
def is_secret_name(name: str) -> bool:
    """True for a header or query-parameter name whose value must never be logged."""
    lowered = name.lower()
    if lowered in _CREDENTIAL_HEADERS:
        return True
    return _SECRET_NAME.search(lowered.replace("-", "").replace("_", "")) is not None


def query_params(query_string: bytes) -> dict[str, str | list[str]]:
    """Query parameters as a dict (repeated keys become lists), secret values redacted."""
    params: dict[str, str | list[str]] = {}
    if not query_string:
        return params
    text = query_string.decode("latin-1")
    # Nothing to unescape: splitting gives what `parse_qsl` gives, at a fraction of its cost.
    pairs = (
        parse_qsl(text, keep_blank_values=True)
        if "%" in text or "+" in text
        else [pair.partition("=")[::2] for pair in text.split("&") if pair]
    )
    for key, value in pairs:
        shown = REDACTED if is_secret_name(key) else value
        previous = params.get(key)
        if previous is None:
            params[key] = shown
        elif isinstance(previous, list):
            previous.append(shown)
        else:
            params[key] = [previous, shown]
    return params


@dataclass(slots=True)
class RequestHeaders:
    """The request headers the span needs, read in one pass over the scope."""

    trace_context: dict[str, str]
    user_agent: str | None
    recorded: dict[str, str]


def read_headers(scope: Scope, record: Collection[bytes]) -> RequestHeaders:
    """Trace-context headers, the user agent, and the allow-listed (non-secret) headers;
    `record` holds lowercased header names as bytes. Header names arrive lowercased (ASGI
    servers lowercase them; Starlette's `Headers` relies on it too). Only what is kept is
    decoded."""
    trace_context: dict[str, str] = {}
    user_agent = None
    recorded: dict[str, str] = {}
    for name, raw_value in scope.get("headers", ()):
        if name in _TRACE_HEADERS:
            trace_context[name.decode("latin-1")] = raw_value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = raw_value.decode("latin-1")
        if record and name in record:
            text = name.decode("latin-1")
            if not is_secret_name(text):
                recorded[text] = raw_value.decode("latin-1")
    return RequestHeaders(trace_context, user_agent, recorded)


def route_template(scope: Scope, outer_root_path: str) -> str | None:
    """The matched route's path template (`/chat/{id}`), mount prefixes included; None if no
    route matched."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    root_path: str = scope.get("root_path", "")
    if root_path == outer_root_path or not root_path.startswith(outer_root_path):
        return template
    return root_path[len(outer_root_path) :] + template  # the mount prefix


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    host, port = client
    return f"{host}:{port}"


class BodyRecorder:
    """Keeps the first `limit` bytes of a body and renders them for a span (JSON if it parses,
    text otherwise)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self._limit - self._size
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[:room]
        if chunk:
            self._chunks.append(chunk)
            self._size += len(chunk)

    def render(self) -> Any:
        data = b"".join(self._chunks)
        text = data.decode("utf-8", errors="replace")
        if not self.truncated:
            try:
                return json.loads(text)
            except ValueError:
                pass
        return text


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a JSON object with the values of secret-looking keys redacted, recursively."""
    return {
        key: REDACTED
        if is_secret_name(key)
        else redact_mapping(value)
        if isinstance(value, Mapping)
        else value
        for key, value in values.items()
    }
