"""`record_bodies=True`: every recorded body, whatever its shape, format or size, is redacted by
the rule that redacts query strings; a body that cannot be parsed is recorded as a placeholder.

Each test sends one request to a small FastAPI app and checks that no secret value appears in any
row the logger received (each row as logged, before merging) while the ordinary fields are still
recorded. Form endpoints read `request.body()` themselves: `Form(...)` needs python-multipart,
which the workspace does not install, and the middleware sees the same bytes either way.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from braintrust_ollama_fastapi import BraintrustMiddleware
from braintrust_ollama_fastapi._cut_json import redacted_json_prefix
from braintrust_ollama_fastapi._redact import redact_text, redacted_document
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from fastapi.testclient import TestClient

SECRET = "hunter2-s3cr3t"
# A value that is a credential by its shape alone (found under names that say nothing).
BEARER = "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


def make_app() -> FastAPI:
    """An API as users write it: JSON in and out, a form login, uploads, streams."""
    app = FastAPI()
    app.add_middleware(BraintrustMiddleware, record_bodies=True)

    @app.post("/events")
    async def ingest(events: list[dict[str, Any]]) -> dict[str, int]:
        return {"accepted": len(events)}

    @app.post("/sync")
    async def sync(payload: dict[str, Any]) -> dict[str, Any]:
        return {"synced": [item["name"] for item in payload["items"]]}

    @app.post("/login")
    async def login(request: Request) -> dict[str, str]:
        fields = parse_qs((await request.body()).decode())
        return {"user": fields["username"][0]}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/oauth/tokens")
    async def tokens() -> list[dict[str, Any]]:
        return [
            {"scope": "read", "refresh_token": SECRET, "expires_in": 3600},
            {"scope": "write", "access_token": JWT, "expires_in": 60},
        ]

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        media_type = request.headers.get("content-type", "application/octet-stream")
        return Response(await request.body(), media_type=media_type)

    @app.get("/stream/ndjson")
    async def ndjson() -> StreamingResponse:
        async def lines() -> AsyncIterator[str]:
            yield json.dumps({"message": "first", "token": SECRET}) + "\n"
            yield json.dumps({"message": "second", "auth": {"header": BEARER}}) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.get("/stream/sse")
    async def sse() -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            yield "event: session\ndata: " + json.dumps({"session_id": SECRET}) + "\n\n"
            yield "data: " + json.dumps({"content": "hello"}) + "\n\n"
            yield f"data: use {BEARER} next time\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/events/{event_id}/ack")
    async def ack(event_id: int) -> Response:
        return Response(status_code=202, media_type="application/json")

    @app.get("/login", response_class=HTMLResponse)
    async def login_page() -> str:
        return f'<form method="post"><input type="hidden" name="csrf_token" value="{SECRET}">'

    @app.get("/report.txt")
    async def report() -> PlainTextResponse:
        return PlainTextResponse(f"status ok\npassword={SECRET}\nAuthorization: {BEARER}\n")

    return app


@pytest.fixture
def client(memory_logger: Any) -> Iterator[TestClient]:
    with TestClient(make_app()) as client:
        yield client


def logged(memory_logger: Any) -> tuple[dict[str, Any], str]:
    """The one request span (rows merged, as the server stores it) and every row as logged,
    serialized, to search for secrets."""
    as_logged = [item.get() for item in memory_logger._background.logs]
    (span,) = memory_logger.pop()
    return span, json.dumps(as_logged, default=str)


def assert_nowhere(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
        # nor any 8-character piece of it (a secret cut in two)
        for start in range(len(secret) - 7):
            assert secret[start : start + 8] not in text, secret[start : start + 8]


def test_json_list_body_is_redacted_in_every_item(client, memory_logger):
    events = [{"kind": "login", "token": SECRET}, {"kind": "logout", "token": SECRET + "2"}]
    assert client.post("/events", json=events).json() == {"accepted": 2}

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == [
        {"kind": "login", "token": "[REDACTED]"},
        {"kind": "logout", "token": "[REDACTED]"},
    ]
    assert span["output"]["body"] == {"accepted": 2}


def test_secrets_in_objects_nested_in_lists_are_redacted(client, memory_logger):
    payload = {
        "items": [
            {"name": "a", "api_key": SECRET},
            {"name": "b", "config": {"headers": [["x", BEARER]], "credentials": {"u": "v"}}},
        ],
        "note": f"callback https://example.test/cb?access_token={SECRET}&page=2",
    }
    assert client.post("/sync", json=payload).json() == {"synced": ["a", "b"]}

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET, BEARER.split()[1])
    assert span["input"]["body"] == {
        "items": [
            {"name": "a", "api_key": "[REDACTED]"},
            {
                "name": "b",
                "config": {"headers": [["x", "[REDACTED]"]], "credentials": "[REDACTED]"},
            },
        ],
        "note": "callback https://example.test/cb?access_token=[REDACTED]&page=2",
    }


def test_urlencoded_form_fields_are_redacted(client, memory_logger):
    form = {"username": "fay", "password": SECRET, "remember": "on"}
    assert client.post("/login", data=form).json() == {"user": "fay"}

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == {"username": "fay", "password": "[REDACTED]", "remember": "on"}


def test_multipart_form_fields_are_redacted_and_files_only_described(client, memory_logger):
    files = {"avatar": ("me.png", b"\x89PNG" + SECRET.encode() + b"\x00" * 100, "image/png")}
    data = {"username": "fay", "client_secret": SECRET, "tags": ["a", "b"]}
    response = client.post("/upload", data=data, files=files)
    assert response.status_code == 200

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == {
        "username": "fay",
        "client_secret": "[REDACTED]",
        "tags": ["a", "b"],
        "avatar": {
            "filename": "me.png",
            "content_type": "image/png",
            "size": 4 + len(SECRET) + 100,
        },
    }


def test_secret_echoed_in_a_json_list_response_is_redacted(client, memory_logger):
    client.post("/oauth/tokens")

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET, JWT)
    assert span["output"]["body"] == [
        {"scope": "read", "refresh_token": "[REDACTED]", "expires_in": 3600},
        {"scope": "write", "access_token": "[REDACTED]", "expires_in": 60},
    ]


def test_credential_shaped_values_are_redacted_under_any_name(client, memory_logger):
    body = {"messages": [{"role": "user", "content": f"call it with {BEARER} please"}], "id": JWT}
    client.post("/echo", json=body)

    span, rows = logged(memory_logger)
    assert_nowhere(rows, BEARER.split()[1], JWT)
    expected = {"messages": [{"role": "user", "content": "call it with [REDACTED] please"}]}
    assert span["input"]["body"] == {**expected, "id": "[REDACTED]"}
    assert span["output"]["body"] == span["input"]["body"]


@pytest.mark.parametrize("secret_at", [10, 32 * 1024, 64 * 1024 - 40, 64 * 1024 - 5, 70 * 1024])
def test_json_body_over_the_limit_is_redacted_before_it_is_cut(client, memory_logger, secret_at):
    """A secret before, across or after the 64 KiB cut, as a string, an object or a list."""
    filler = "x" * secret_at
    body = {
        "prompt": filler,
        "password": SECRET,
        "auth": {"token": SECRET, "kind": "bearer"},
        "session_ids": [SECRET, SECRET],
        "tail": "y" * (64 * 1024),
    }
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    assert client.post("/echo", content=content, headers=headers).status_code == 200

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    for recorded in (span["input"]["body"], span["output"]["body"]):
        assert isinstance(recorded, str)
        assert recorded.startswith('{"prompt": "xxxxxxxxxx')
        assert len(recorded) <= 64 * 1024
    metadata = span["metadata"]
    assert metadata["request_body_bytes"] == metadata["response_body_bytes"] == len(content)


def test_text_body_over_the_limit_is_redacted_before_it_is_cut(client, memory_logger):
    text = "line\n" * (64 * 1024 // 5 - 3) + f"password={SECRET}\n"  # crosses the cut
    client.post("/echo", content=text.encode(), headers={"content-type": "text/plain"})

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    lines = 64 * 1024 // 5 - 3
    # the first 64 KiB of the redacted text: the cut falls inside "[REDACTED]"
    assert span["input"]["body"] == "line\n" * lines + "password=[REDACT"


def test_large_form_keeps_the_whole_fields_within_the_limit(client, memory_logger):
    form = {"username": "fay", "bio": "z" * (64 * 1024 - 40), "password": SECRET}
    client.post("/login", data=form)

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == {"username": "fay", "bio": form["bio"]}


def test_streamed_ndjson_and_event_stream_responses_are_redacted(client, memory_logger):
    assert client.get("/stream/ndjson").status_code == 200
    ndjson, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET, BEARER.split()[1])
    assert ndjson["output"]["body"] == [
        {"message": "first", "token": "[REDACTED]"},
        {"message": "second", "auth": "[REDACTED]"},
    ]

    assert client.get("/stream/sse").status_code == 200
    sse, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET, BEARER.split()[1])
    assert sse["output"]["body"] == [
        {"event": "session", "data": {"session_id": "[REDACTED]"}},
        {"data": {"content": "hello"}},
        {"data": "use [REDACTED] next time"},
    ]


def test_text_bodies_have_secret_pairs_and_credentials_redacted(client, memory_logger):
    client.get("/report.txt")

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET, BEARER.split()[1])
    assert span["output"]["body"] == "status ok\npassword=[REDACTED]\nAuthorization: [REDACTED]\n"


@pytest.mark.parametrize(
    ("content", "headers", "placeholder"),
    [
        (
            b"\x00\x01" + SECRET.encode(),
            {"content-type": "application/octet-stream"},
            f"[application/octet-stream body, {len(SECRET) + 2} bytes, not recorded]",
        ),
        (
            b'{"password": "' + SECRET.encode() + b'", ',  # JSON that does not parse
            {"content-type": "application/json"},
            f"[application/json body, {len(SECRET) + 17} bytes, not recorded]",
        ),
        (
            SECRET.encode("utf-16"),  # text that is not UTF-8
            {"content-type": "text/plain"},
            f"[text/plain body, {2 + 2 * len(SECRET)} bytes, not recorded]",
        ),
    ],
    ids=["binary", "broken-json", "not-utf8"],
)
def test_body_that_cannot_be_parsed_is_a_placeholder(
    client, memory_logger, content, headers, placeholder
):
    client.post("/echo", content=content, headers=headers)

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == placeholder


def test_html_and_other_text_types_are_placeholders(client, memory_logger):
    """Only plain text is recorded as text: a name=value rule cannot read HTML's hidden
    inputs (`name="csrf_token" value="..."`), CSV columns or XML elements."""
    html = client.get("/login").text

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    size = len(html.encode())
    assert span["output"]["body"] == f"[text/html body, {size} bytes, not recorded]"


def test_compressed_body_is_a_placeholder(client, memory_logger):
    packed = gzip.compress(json.dumps({"password": SECRET}).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    client.post("/echo", content=packed, headers=headers)

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == (
        f"[application/json (gzip) body, {len(packed)} bytes, not recorded]"
    )


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            '{"a": 1, "password": "abc", "b": [1, 2]}',
            '{"a": 1, "password": "[REDACTED]", "b": [1, 2]}',
        ),
        (
            '[{"token": {"x": [1, {"y": 2}]}, "k": "v"}, 3]',
            '[{"token": "[REDACTED]", "k": "v"}, 3]',
        ),
        ('{"auth": {"user": "u", "pass', '{"auth": "[REDACTED]"'),
        ('{"ok": "yes", "password": "hun', '{"ok": "yes", "password": "[REDACTED]"'),
        ('{"prompt": "a long pro', '{"prompt": "a long pro"'),
        ('{"ok": "yes", "passw', '{"ok": "yes", '),
        ('{"n": 12', '{"n": '),
        (
            '{"esc\\"aped": "a\\"b", "api_key": "k"}',
            '{"esc\\"aped": "a\\"b", "api_key": "[REDACTED]"}',
        ),
        ('["' + BEARER + '"]', '["[REDACTED]"]'),
        ('{"a": [1, 2', '{"a": [1, '),
        ('{"token": 12345', '{"token": '),
        ('{"token": 12345, "b": true}', '{"token": "[REDACTED]", "b": true}'),
    ],
)
def test_cut_json_is_redacted_token_by_token(document, expected):
    assert redacted_json_prefix(document) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Basic understanding of Bearer tokens", "Basic understanding of Bearer tokens"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA1=", "Authorization: [REDACTED]"),
        ("see ?api_key=k1&page=2", "see ?api_key=[REDACTED]&page=2"),
        ("x=1 y=2", "x=1 y=2"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\nok",
            "[REDACTED]\nok",
        ),
    ],
)
def test_the_text_rule(text, expected):
    assert redact_text(text) == expected


def test_empty_bodies_are_empty_strings(client, memory_logger):
    assert client.post("/events/7/ack").status_code == 202

    span, _ = logged(memory_logger)
    assert span["input"]["body"] == span["output"]["body"] == ""


def test_cut_json_holds_no_secret_wherever_the_cut_falls():
    document = json.dumps(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "auth": {"api_key": SECRET, "scopes": [SECRET]},
            "items": [{"name": "a", "password": SECRET}, {"refresh_token": SECRET}],
            "client_secret": SECRET,
            "done": True,
        }
    )
    whole = json.dumps(redacted_document(json.loads(document), document))
    for cut in range(len(document)):
        prefix = redacted_json_prefix(document[:cut])
        assert_nowhere(prefix, SECRET)
        assert SECRET[:4] not in prefix
        # what is kept is the beginning of the whole document's redaction
        assert whole.startswith(prefix.rstrip('"')), (cut, prefix)


def test_the_rule_takes_linear_time_on_long_runs_of_name_characters():
    """A hex dump or base64url blob with an `=` elsewhere once made the pair search re-scan
    the run from each of its characters (minutes for 64 KiB); this returns at once."""
    text = "x=1 " + "a" * 200_000 + " password=p4ss"
    assert redact_text(text) == "x=1 " + "a" * 200_000 + " password=[REDACTED]"


def test_token_counts_in_an_llm_response_are_recorded(client, memory_logger):
    reply = {
        "choices": [{"message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        "author": "llama3.2:1b",
    }
    client.post("/echo", json={"max_tokens": 64, "session_token": SECRET, "reply": reply})

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["output"]["body"] == {
        "max_tokens": 64,
        "session_token": "[REDACTED]",
        "reply": reply,
    }
