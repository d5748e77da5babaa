"""BraintrustMiddleware in-process (Starlette's TestClient): mounted apps, plain Starlette,
options and failure handling."""

from __future__ import annotations

import json
from typing import Any

import braintrust
import pytest
from braintrust_ollama_fastapi import BraintrustMiddleware
from braintrust_ollama_fastapi._redact import Redactor
from braintrust_ollama_fastapi.tracing import query_params
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from support.spans import only, parent_of, roots


def make_app(**options: Any) -> FastAPI:
    """A FastAPI app with a sub-application mounted at /api."""
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        with braintrust.start_span(name="lookup"):
            return {"id": item_id}

    @api.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(await request.body())

    app = FastAPI()
    app.mount("/api", api)
    app.add_middleware(BraintrustMiddleware, **options)
    return app


def test_mounted_app_names_span_by_full_route_template(memory_logger):
    with TestClient(make_app()) as client:
        assert client.get("/api/items/7").json() == {"id": 7}

    rows = memory_logger.pop()
    root = only(rows, "GET /api/items/{item_id}")
    assert root["input"]["route"] == "/api/items/{item_id}"
    assert root["metadata"]["route"] == "/api/items/{item_id}"
    assert parent_of(rows, only(rows, "lookup")) is root


def test_plain_starlette_app_is_traced(memory_logger):
    async def hello(request: Request) -> PlainTextResponse:
        with braintrust.start_span(name="greet"):
            return PlainTextResponse("hello", status_code=201)

    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(BraintrustMiddleware)
    with TestClient(app) as client:
        assert client.get("/hello").status_code == 201

    rows = memory_logger.pop()
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "GET /hello"  # on Starlette releases of any age
    assert root["metadata"]["status_code"] == 201
    assert parent_of(rows, only(rows, "greet")) is root


def test_unmatched_paths_share_one_bounded_name_and_the_path_is_in_metadata(memory_logger):
    """A request no route matched is named by its method and a fixed label, as OpenTelemetry's
    ASGI middleware names it: one unauthenticated request cannot put terminal escapes or markup
    into span names, nor give every URL a name of its own. Its path, redacted, is metadata."""
    with TestClient(make_app()) as client:
        assert client.get("/nowhere").status_code == 404
        assert client.get("/x%1B%5D0%3Bowned%07%1B%5B2J").status_code == 404
        assert client.get("/%5B%2Fscript%5D").status_code == 404
        assert client.get("/callback;access_token=s3cr3t-t0ken").status_code == 404
        assert client.request("BREW", "/pot").status_code == 404

    rows = memory_logger.pop()
    assert [r["span_attributes"]["name"] for r in rows] == [
        *["GET (no route)"] * 4,
        "HTTP (no route)",  # a method outside HTTP's own is not a name of its own either
    ]
    assert [r["metadata"]["path"] for r in rows] == [
        "/nowhere",
        "/x\x1b]0;owned\x07\x1b[2J",
        "/[/script]",
        "/callback;access_token=[REDACTED]",
        "/pot",
    ]
    assert [r["input"]["method"] for r in rows][-1] == "BREW"
    for root in rows:
        assert root["metadata"]["status_code"] == 404
        assert "route" not in root["metadata"]
        assert root.get("error") is None
        assert "s3cr3t" not in json.dumps(root)
    # The name the span starts with (its first row) is bounded too.
    started = {item.get()["span_attributes"]["name"] for item in memory_logger._background.logs}
    assert started <= {"GET", "HTTP", "GET (no route)", "HTTP (no route)"}


def test_matched_routes_are_named_by_a_method_they_take_and_their_template(memory_logger):
    app = FastAPI()

    @app.api_route("/dav/{name}", methods=["PROPFIND"])
    async def dav(name: str) -> dict[str, str]:
        return {"name": name}

    app.add_middleware(BraintrustMiddleware)
    with TestClient(app) as client:
        assert client.request("PROPFIND", "/dav/x%1B%5B2J").status_code == 200
        assert client.request("BREW", "/dav/x").status_code == 405  # the path, not the method

    rows = memory_logger.pop()
    assert [r["span_attributes"]["name"] for r in rows] == [
        "PROPFIND /dav/{name}",  # a method the route takes
        "HTTP /dav/{name}",  # any other
    ]
    assert all("path" not in r["metadata"] for r in rows)


def test_bodies_are_not_recorded_by_default(memory_logger):
    with TestClient(make_app()) as client:
        assert client.post("/api/echo", content=b"private words").text == "private words"

    (root,) = memory_logger.pop()
    assert "body" not in root["input"]
    assert root["output"] == {"status_code": 200}
    assert "private words" not in str(root)


def test_recorded_bodies_over_the_limit_are_placeholders_with_their_size(memory_logger):
    with TestClient(make_app(record_bodies=True)) as client:
        client.post("/api/echo", content=b"x" * (70 * 1024))

    (root,) = memory_logger.pop()
    assert root["input"]["body"] == f"[untyped body, {70 * 1024} bytes, not recorded]"
    assert root["output"]["body"] == f"[text/plain body, {70 * 1024} bytes, not recorded]"
    assert root["metadata"]["request_body_bytes"] == 70 * 1024
    assert root["metadata"]["response_body_bytes"] == 70 * 1024


def test_failing_span_name_falls_back_to_default_name(memory_logger, caplog):
    def broken(request: Request) -> str:
        raise ValueError("bad namer")

    with TestClient(make_app(span_name=broken)) as client:
        assert client.get("/api/items/1").status_code == 200

    rows = memory_logger.pop()
    assert [r["span_attributes"]["name"] for r in roots(rows)] == ["GET /api/items/{item_id}"]
    assert "span_name raised" in caplog.text


def test_tracing_failure_never_breaks_the_request(memory_logger, monkeypatch, caplog):
    def no_spans(**kwargs: object) -> None:
        raise RuntimeError("braintrust is down")

    monkeypatch.setattr(braintrust, "start_span", no_spans)
    with TestClient(make_app()) as client:
        response = client.post("/api/echo", content=b"still served")
    assert response.text == "still served"
    assert "traceparent" not in response.headers
    assert "could not start the request span" in caplog.text


def test_websocket_and_untraced_scopes_pass_through(memory_logger):
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(BraintrustMiddleware)
    with TestClient(app) as client, client.websocket_connect("/ws") as socket:
        assert socket.receive_text() == "hi"
    assert memory_logger.pop() == []


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "cookie",
        "Set-Cookie",
        "proxy-authorization",
        "x-api-key",
        "api_key",
        "apikey",
        "OpenAI-Api-Key",
        "key",
        "access_key",
        "token",
        "x-auth-token",
        "password",
        "client_secret",
        "sig",
        "auth",
        "X-Authorization",
        "authorize_url_state_token",
        "tokens",
        "access_tokens",
        "refresh-tokens",
    ],
)
def test_secret_names(name):
    assert Redactor().is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "accept",
        "content-type",
        "x-request-id",
        "q",
        "page",
        "model",
        # token counts in LLM requests and responses
        "max_tokens",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "max_new_tokens",
        "max_completion_tokens",
        "num_tokens",
        "input_tokens",
        "output_tokens",
        # words that only begin like `auth`
        "author",
        "authors",
        "authority",
    ],
)
def test_ordinary_names(name):
    assert not Redactor().is_secret_name(name)


def test_query_params_redact_secret_values_and_keep_repeats():
    assert query_params(b"q=a&q=b&token=t1&page=", Redactor()) == {
        "q": ["a", "b"],
        "token": "[REDACTED]",
        "page": "",
    }


def test_response_traceparent_keeps_the_callers_trace_flags(memory_logger):
    trace_id, caller_span = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    with TestClient(make_app()) as client:
        response = client.get(
            "/api/items/5",
            headers={
                "traceparent": f"00-{trace_id}-{caller_span}-00",
                "baggage": "braintrust.parent=project_name:braintrust-ollama-tests",
            },
        )

    rows = memory_logger.pop()
    root = only(rows, "GET /api/items/{item_id}")
    assert (root["root_span_id"], root["span_parents"]) == (trace_id, [caller_span])
    assert response.headers["traceparent"] == f"00-{trace_id}-{root['span_id']}-00"


class _BrokenSpan:
    """A span whose every method raises: Braintrust failing inside the middleware."""

    def __init__(self, span: Any) -> None:
        self.root_span_id = span.root_span_id
        self.span_id = span.span_id

    def __getattr__(self, name: str) -> Any:
        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"span.{name} is broken")

        return broken


def test_failures_inside_the_middleware_are_logged_once_and_never_reach_the_request(
    memory_logger, monkeypatch, caplog
):
    real_start_span = braintrust.start_span
    monkeypatch.setattr(
        braintrust, "start_span", lambda **kwargs: _BrokenSpan(real_start_span(**kwargs))
    )
    with TestClient(make_app(record_bodies=True)) as client:
        for i in range(3):
            assert client.post("/api/echo", content=f"still served {i}").text == f"still served {i}"

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings, "the failures are logged"
    assert len(warnings) == len(set(warnings)), f"logged more than once: {warnings}"
    assert all(r.name == "braintrust_ollama_fastapi.middleware" for r in caplog.records)


def test_failing_to_record_the_error_keeps_the_apps_own_exception(memory_logger, monkeypatch):
    def broken_stringify(*args: object) -> str:
        raise ValueError("cannot stringify")

    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(braintrust, "stringify_exception", broken_stringify)
    app = Starlette(routes=[Route("/boom", boom)])
    app.add_middleware(BraintrustMiddleware)
    with TestClient(app) as client, pytest.raises(RuntimeError, match="kaboom"):
        client.get("/boom")

    (root,) = memory_logger.pop()
    assert root["metadata"]["status_code"] == 500


@pytest.mark.parametrize("depth", [30_000, 100_000], ids=["whole", "cut"])
def test_body_too_deep_to_parse_is_a_placeholder_and_the_span_still_closes(memory_logger, depth):
    body = b"[" * depth + b"]" * depth
    with TestClient(make_app(record_bodies=True)) as client:
        client.post("/api/echo", content=body, headers={"content-type": "application/json"})

    (root,) = memory_logger.pop()
    assert root["input"]["body"] == f"[application/json body, {2 * depth} bytes, not recorded]"
    assert root["metadata"]["status_code"] == 200


def test_secret_path_parameters_are_redacted_in_every_row(memory_logger):
    """`/reset/{token}`: the token is in the path itself; no row (the start row included)
    holds it, while other paths of the same app are recorded as they are."""
    secret = "p4th-s3cr3t-value"
    api = FastAPI()

    @api.get("/reset/{token}")
    async def reset(token: str) -> dict[str, bool]:
        return {"ok": True}

    app = FastAPI()

    @app.get("/users/{user_id}/keys/{api_key}")
    async def key(user_id: int, api_key: str) -> dict[str, int]:
        return {"user": user_id}

    app.mount("/v1", api)
    app.add_middleware(BraintrustMiddleware)
    with TestClient(app) as client:
        assert client.get(f"/v1/reset/{secret}").json() == {"ok": True}
        assert client.get(f"/users/42/keys/{secret}").json() == {"user": 42}
        slash = client.get(f"/users/42/keys/{secret}/", follow_redirects=False)
        assert slash.status_code == 307  # redirected without the slash: no route matched
        assert client.get("/other").status_code == 404

    as_logged = json.dumps([item.get() for item in memory_logger._background.logs])
    assert secret not in as_logged
    rows = memory_logger.pop()
    reset_span = only(rows, "GET /v1/reset/{token}")
    assert reset_span["input"]["path"] == "/v1/reset/[REDACTED]"
    key_span = only(rows, "GET /users/{user_id}/keys/{api_key}")
    assert key_span["input"]["path"] == "/users/42/keys/[REDACTED]"
    unmatched = [r for r in rows if "route" not in r["metadata"]]
    assert [r["input"]["path"] for r in unmatched] == ["[REDACTED]", "[REDACTED]"]


def test_secrets_in_an_escaping_exceptions_message_are_redacted(memory_logger):
    """An upstream error quoting its URL (`?api_key=...`) or a credential, as httpx's
    `raise_for_status()` does, goes through the same rule as everything else recorded."""
    secret = "upstr34m-s3cr3t-key"

    async def proxy(request: Request) -> PlainTextResponse:
        raise RuntimeError(
            f"Client error '401' for url 'https://api.example/v1?api_key={secret}&q=1'"
            f" sent with Bearer {secret}"
        )

    app = Starlette(routes=[Route("/proxy", proxy)])
    app.add_middleware(BraintrustMiddleware)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/proxy").status_code == 500

    (root,) = memory_logger.pop()
    assert secret not in json.dumps(root)
    assert "api_key=[REDACTED]&q=1' sent with [REDACTED]" in root["error"]


def test_skip_paths_are_patterns_matched_against_the_whole_path(memory_logger):
    """`/health` skips that path only (not `/healthz`), `/static/.*` everything under it."""
    app = FastAPI()

    @app.get("/health")
    @app.get("/healthz")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/static/{name:path}")
    async def static(name: str) -> PlainTextResponse:
        return PlainTextResponse(name)

    app.add_middleware(BraintrustMiddleware, skip_paths=["/health", "/static/.*"])
    with TestClient(app) as client:
        skipped = [client.get(path) for path in ("/health", "/static/app.js", "/static/css/a.css")]
        traced = [client.get(path) for path in ("/healthz", "/statics", "/api/static/x")]

    assert all(r.status_code == 200 and "traceparent" not in r.headers for r in skipped)
    assert all("traceparent" in r.headers for r in traced)
    rows = memory_logger.pop()
    assert [r["span_attributes"]["name"] for r in rows] == ["GET /healthz", *["GET (no route)"] * 2]
    assert [r["metadata"].get("path") for r in rows] == [None, "/statics", "/api/static/x"]


SSN = "078-05-1120-x7"
TENANT = "acme-tenant-9f3e"


def test_extra_secret_names_are_redacted_wherever_a_name_is(memory_logger):
    """`secret_names`: patterns searched in every name (query keys, headers, path parameters,
    JSON keys, form fields, `name=value` pairs in text), on top of the built-in rule."""
    app = FastAPI()

    @app.post("/patients/{ssn}")
    async def admit(ssn: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"admitted": payload["patient"]["name"], "patient_ssn": ssn}

    app.add_middleware(
        BraintrustMiddleware,
        record_bodies=True,
        record_headers=["x-tenant", "x-request-id"],
        secret_names=["ssn", "^x-tenant$"],
    )
    with TestClient(app) as client:
        response = client.post(
            f"/patients/{SSN}",
            params={"SSN": SSN, "page": "2", "password": "pw-" + SSN},
            headers={"x-tenant": TENANT, "x-request-id": "req-1"},
            json={"patient": {"name": "Ann", "Ssn": SSN}, "note": f"see ssn={SSN} on file"},
        )
    assert response.json() == {"admitted": "Ann", "patient_ssn": SSN}

    as_logged = json.dumps([item.get() for item in memory_logger._background.logs])
    for secret in (SSN, TENANT):
        assert secret not in as_logged
        assert all(secret[i : i + 8] not in as_logged for i in range(len(secret) - 7))
    (root,) = memory_logger.pop()
    assert root["span_attributes"]["name"] == "POST /patients/{ssn}"
    assert root["input"]["path"] == "/patients/[REDACTED]"
    assert root["input"]["query"] == {"SSN": "[REDACTED]", "page": "2", "password": "[REDACTED]"}
    assert root["input"]["headers"] == {"x-request-id": "req-1"}  # secret names are dropped
    assert root["input"]["body"] == {
        "patient": {"name": "Ann", "Ssn": "[REDACTED]"},
        "note": "see ssn=[REDACTED] on file",
    }
    assert root["output"]["body"] == {"admitted": "Ann", "patient_ssn": "[REDACTED]"}


def test_extra_secret_names_are_per_middleware():
    assert Redactor(["ssn"]).is_secret_name("patient_SSN")
    assert not Redactor().is_secret_name("patient_SSN")
    assert Redactor(["^x-tenant$"]).is_secret_name("X-Tenant")
    assert not Redactor(["^x-tenant$"]).is_secret_name("x-tenant-id")
