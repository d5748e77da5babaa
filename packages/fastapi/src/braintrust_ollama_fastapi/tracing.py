"""What a request span holds: an ASGI scope turned into span input and metadata.

Never recorded, whatever the options say: credential headers (`Authorization`, `Cookie`,
`Set-Cookie`, `Proxy-Authorization`, API-key / token / secret style names and the middleware's
`secret_names`, dropped even when allow-listed), and what `_redact`'s rule replaces in query
parameters, paths and recorded header values. The raw query string is never recorded.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import Match, Route
from starlette.types import Scope

from braintrust_ollama_fastapi._redact import REDACTED, Redactor

# Headers the middleware reads for itself while it walks the request headers once.
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def query_params(query_string: bytes, redactor: Redactor) -> dict[str, str | list[str]]:
    """Query parameters as a dict (repeated keys become lists), redacted by the one rule."""
    if not query_string:
        return {}
    text = query_string.decode("latin-1")
    # Nothing to unescape: splitting gives what `parse_qsl` gives, at a fraction of its cost.
    pairs = (
        parse_qsl(text, keep_blank_values=True)
        if "%" in text or "+" in text
        else [pair.partition("=")[::2] for pair in text.split("&") if pair]
    )
    return redactor.pairs(pairs)


@dataclass(slots=True)
class RequestHeaders:
    """The request headers the span needs, read in one pass over the scope."""

    trace_context: dict[str, str]
    user_agent: str | None
    recorded: dict[str, str]
    content_type: str | None
    content_encoding: str | None


def read_headers(scope: Scope, record: Collection[bytes], redactor: Redactor) -> RequestHeaders:
    """Trace-context headers, the user agent, and the allow-listed (non-secret) headers;
    `record` holds lowercased header names as bytes. Header names arrive lowercased (ASGI
    servers lowercase them; Starlette's `Headers` relies on it too). Only what is kept is
    decoded."""
    trace_context: dict[str, str] = {}
    user_agent = content_type = content_encoding = None
    recorded: dict[str, str] = {}
    for name, raw_value in scope.get("headers", ()):
        if name in _TRACE_HEADERS:
            trace_context[name.decode("latin-1")] = raw_value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = redactor.text(raw_value.decode("latin-1"))
        elif name == b"content-type":
            content_type = raw_value.decode("latin-1")
        elif name == b"content-encoding":
            content_encoding = raw_value.decode("latin-1")
        if record and name in record:
            text = name.decode("latin-1")
            if not redactor.is_secret_name(text):
                recorded[text] = redactor.text(raw_value.decode("latin-1"))
    return RequestHeaders(trace_context, user_agent, recorded, content_type, content_encoding)


def matched_route(scope: Scope) -> Any:
    """The route the router matched, once routing is done; None if none did.

    FastAPI and recent Starlette releases record it (`scope["route"]`). For a plain Starlette
    app on an older release, the app's top-level route that fully matches the request, as
    OpenTelemetry's Starlette instrumentation finds it (a request into a mounted app is then
    unmatched)."""
    route = scope.get("route")
    if route is not None:
        return route
    for candidate in getattr(scope.get("app"), "routes", None) or ():
        if type(candidate) is Route and candidate.matches(scope)[0] is Match.FULL:
            return candidate
    return None


def route_template(scope: Scope, route: Any, outer_root_path: str) -> str | None:
    """The path template (`/chat/{id}`) of `route`, the matched route, mount prefixes
    included; None if no route matched."""
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    root_path: str = scope.get("root_path", "")
    if root_path == outer_root_path or not root_path.startswith(outer_root_path):
        return template
    return root_path[len(outer_root_path) :] + template  # the mount prefix


def has_secret_path_params(app: Any, redactor: Redactor) -> bool:
    """True when a route of `app` (mounted apps included) takes a path parameter with a secret
    name (`/reset/{token}`): then request paths may hold secrets."""
    routes = list(getattr(app, "routes", None) or ())
    while routes:
        route = routes.pop()
        names = getattr(route, "param_convertors", None) or ()
        if any(redactor.is_secret_name(name) for name in names):
            return True
        routes.extend(getattr(route, "routes", None) or ())
    return False


_TEMPLATE_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def redacted_path(scope: Scope, route: str | None, redactor: Redactor) -> str:
    """The request path with the values of secret-named path parameters redacted: rebuilt from
    the matched route's template (`route`, mount prefixes included). A path no route matched
    might hold such a value and is not recorded."""
    if route is None:
        return REDACTED
    params: dict[str, Any] = scope.get("path_params") or {}
    if not any(redactor.is_secret_name(name) for name in params):
        return redactor.text(str(scope["path"]))

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if redactor.is_secret_name(name) or name not in params:
            return REDACTED
        return str(params[name])

    return _TEMPLATE_PARAM.sub(value, route)


# The methods HTTP itself defines (RFC 9110, and PATCH): as OpenTelemetry's instrumentations do,
# a span is named by one of these, or by a method the matched route takes, else by `HTTP`.
_HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
# Names a request no route matched, after its method: its path is the client's to choose, so
# it is metadata, never the name.
UNMATCHED = "(no route)"


def span_method(method: str, route: Any) -> str:
    """The request's method as a span name may hold it: one of HTTP's, or one `route` takes;
    any other is `HTTP`. A client cannot make up names with made-up methods."""
    if method in _HTTP_METHODS or method in (getattr(route, "methods", None) or ()):
        return method
    return "HTTP"


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    host, port = client
    return f"{host}:{port}"
