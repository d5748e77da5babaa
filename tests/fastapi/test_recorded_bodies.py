"""`record_bodies=True`: every recorded body, whatever its shape or format, is redacted by the
rule that redacts query strings; a body that cannot be parsed, or is over `max_body_bytes` (but
for the whole lines and events of a stream), is recorded as a placeholder.

Each test sends one request to a small FastAPI app and checks that no secret value appears in any
row the logger received (each row as logged, before merging) while the ordinary fields are still
recorded. Most form endpoints read `request.body()` themselves (the middleware sees the same bytes
either way); one takes `Form(...)` and `UploadFile` as FastAPI apps do.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any
from urllib.parse import parse_qs

import pytest
from braintrust_ollama_fastapi import BraintrustMiddleware
from braintrust_ollama_fastapi._body import BodyRecorder
from braintrust_ollama_fastapi._redact import Redactor
from fastapi import FastAPI, File, Form, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from fastapi.testclient import TestClient

SECRET = "hunter2-s3cr3t"
# A value that is a credential by its shape alone (found under names that say nothing).
BEARER = "Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


LIMIT = 64 * 1024  # max_body_bytes' default
LONG_STREAM = 1200  # events, about 90 KiB


def long_event(i: int, pad: int) -> str:
    """Event `i` of an answer streamed token by token past the limit: events of changing sizes
    and line endings; `pad` moves the limit to another place in an event."""
    data = "data: " + json.dumps(
        {"delta": "y" * (i % 37 + (pad if i == 0 else 0)), "token": SECRET}
    )
    return f"id: {i}\n{data}\n\n" if i % 3 == 0 else f"id: {i}\r\ndata: {BEARER}\r\n\r\n"


def make_app(**options: Any) -> FastAPI:
    """An API as users write it: JSON in and out, a form login, uploads, streams."""
    app = FastAPI()
    app.add_middleware(BraintrustMiddleware, record_bodies=True, **options)

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

    @app.post("/ask")
    async def ask(
        question: Annotated[str, Form()],
        api_token: Annotated[str, Form()],
        doc: Annotated[UploadFile, File()],
    ) -> dict[str, Any]:
        return {"question": question, "doc": doc.filename, "bytes": len(await doc.read())}

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

    @app.get("/stream/long/{pad}")
    async def long_sse(pad: int) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            for i in range(LONG_STREAM):
                yield long_event(i, pad)

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


FORM = {"content-type": "application/x-www-form-urlencoded"}


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


def test_form_and_upload_endpoints_record_fields_and_describe_files(client, memory_logger):
    """An endpoint taking `Form(...)` and `UploadFile`: FastAPI parses the body with
    python-multipart, and so does the middleware, independently."""
    content = b"%PDF-1.7 " + SECRET.encode() + b"\x00" * 500
    response = client.post(
        "/ask",
        data={"question": "summarize it", "api_token": SECRET},
        files={"doc": ("report.pdf", content, "application/pdf")},
    )
    assert response.json() == {
        "question": "summarize it",
        "doc": "report.pdf",
        "bytes": len(content),
    }

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == {
        "question": "summarize it",
        "api_token": "[REDACTED]",
        "doc": {"filename": "report.pdf", "content_type": "application/pdf", "size": len(content)},
    }


def test_types_and_file_names_the_client_writes_are_redacted(client, memory_logger):
    """A part's filename and content type, and a body's media type, are the client's text."""
    part = (
        f'--b0\r\nContent-Disposition: form-data; name="doc"; filename="f?token={SECRET}.txt"\r\n'
        f"Content-Type: text/plain;key={SECRET}\r\n\r\nhello\r\n--b0--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=b0"}
    client.post("/upload", content=part.encode(), headers=headers)
    upload, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert upload["input"]["body"] == {
        "doc": {
            "filename": "f?token=[REDACTED]",
            "content_type": "text/plain;key=[REDACTED]",
            "size": 5,
        }
    }

    client.post("/echo", content=b"\x00", headers={"content-type": f"x/y password={SECRET}"})
    echo, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert echo["input"]["body"] == "[x/y password=[REDACTED] body, 1 bytes, not recorded]"


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


@pytest.mark.parametrize("secret_at", [10, LIMIT - 40, LIMIT + 10])
def test_json_body_over_the_limit_is_a_placeholder_with_its_size(client, memory_logger, secret_at):
    """A secret before, across or after the limit, as a string, an object or a list: a JSON
    document is recorded whole or not at all."""
    body = {
        "prompt": "x" * secret_at,
        "password": SECRET,
        "auth": {"token": SECRET, "kind": "bearer"},
        "session_ids": [SECRET, SECRET],
        "tail": "y" * LIMIT,
    }
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    assert client.post("/echo", content=content, headers=headers).status_code == 200

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    placeholder = f"[application/json body, {len(content)} bytes, not recorded]"
    assert span["input"]["body"] == span["output"]["body"] == placeholder
    metadata = span["metadata"]
    assert metadata["request_body_bytes"] == metadata["response_body_bytes"] == len(content)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (("line\n" * (LIMIT // 5 - 3) + f"password={SECRET}\n").encode(), "text/plain"),
        (f"username=fay&bio={'z' * (LIMIT - 40)}&password={SECRET}".encode(), None),
    ],
    ids=["text", "form"],
)
def test_text_and_form_bodies_over_the_limit_are_placeholders(
    client, memory_logger, content, content_type
):
    if content_type is None:  # a form, as a browser sends it
        response = client.post("/login", content=content, headers=FORM)
        content_type = FORM["content-type"]
    else:
        response = client.post("/echo", content=content, headers={"content-type": content_type})
    assert response.status_code == 200

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == f"[{content_type} body, {len(content)} bytes, not recorded]"
    assert span["metadata"]["request_body_bytes"] == len(content)


def test_a_larger_limit_records_larger_bodies_whole(memory_logger):
    """`max_body_bytes` is the one knob: an app whose prompts run long keeps them whole."""
    body = {"messages": [{"role": "user", "content": "q" * (3 * LIMIT)}], "api_key": SECRET}
    with TestClient(make_app(max_body_bytes=4 * LIMIT)) as client:
        assert client.post("/echo", json=body).status_code == 200

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET)
    assert span["input"]["body"] == span["output"]["body"] == {**body, "api_key": "[REDACTED]"}
    assert "request_body_bytes" not in span["metadata"]


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


# the limit falls in a secret, a key, the JSON, between fields, on an event's end, in a CRLF...
@pytest.mark.parametrize("pad", [0, 10, 60, 70, 75, 80, 100, 120, 130, 140])
def test_a_stream_over_the_limit_keeps_its_events_that_end_within_it(client, memory_logger, pad):
    """The limit falls anywhere in an event (a field name, a JSON string, a CRLF): only whole
    events are kept, each parsed and redacted by itself."""
    assert client.get(f"/stream/long/{pad}").status_code == 200

    span, rows = logged(memory_logger)
    assert_nowhere(rows, SECRET, BEARER.split()[1])
    sizes = [len(long_event(i, pad).encode()) for i in range(LONG_STREAM)]
    assert span["metadata"]["response_body_bytes"] == sum(sizes) > LIMIT
    # An event is whole at its blank line's end: a CR alone ends a line in an event stream,
    # so an event ending in CRLF CRLF is whole before its last LF.
    ends = [end - (i % 3 != 0) for i, end in enumerate(itertools.accumulate(sizes))]
    within = sum(1 for end in ends if end <= LIMIT)
    assert span["output"]["body"] == [
        {
            "id": str(i),
            "data": {"delta": "y" * (i % 37 + (pad if i == 0 else 0)), "token": "[REDACTED]"},
        }
        if i % 3 == 0
        else {"id": str(i), "data": "[REDACTED]"}
        for i in range(within)
    ]


@pytest.mark.parametrize(
    ("media", "stream"),
    [
        (
            "text/event-stream",
            'event: login\r\ndata: {"user": "fay",\r\ndata:  "session": "%s"}\r\n\r\n'
            ': a comment\ndata: {"auth": {"k": ["%s"]}}\n\n'
            "data: password=%s and %s\rdata: more\r\r"
            'id: 7\ndata: {"items": [{"name": "a", "api_key": "%s"}]}\n\n',
        ),
        (
            "application/x-ndjson",
            '{"user": "fay", "session": "%s"}\n{"auth": {"k": ["%s"]}}\n'
            '{"note": "password=%s, %s"}\r\n{"items": [{"name": "a", "api_key": "%s"}]}\n',
        ),
    ],
    ids=["event-stream", "ndjson"],
)
def test_a_stream_holds_no_secret_wherever_the_limit_falls(media, stream):
    """Events and lines are kept whole or not at all: the limit at every byte leaks nothing."""
    body = (stream % (SECRET, SECRET, SECRET, BEARER, SECRET)).encode()
    whole = BodyRecorder(len(body))
    whole.add(body)
    expected = whole.render(media, None, Redactor())
    for limit in range(len(body)):
        recorder = BodyRecorder(limit)
        recorder.add(body[: limit // 2])  # in two chunks, as a stream arrives
        recorder.add(body[limit // 2 :])
        kept = recorder.render(media, None, Redactor())
        assert_nowhere(json.dumps(kept), SECRET, BEARER.split()[1])
        assert kept == expected[: len(kept)]  # whole events, in order
    assert len(expected) == 4


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
    assert Redactor().text(text) == expected


def test_empty_bodies_are_empty_strings(client, memory_logger):
    assert client.post("/events/7/ack").status_code == 202

    span, _ = logged(memory_logger)
    assert span["input"]["body"] == span["output"]["body"] == ""


def test_the_rule_takes_linear_time_on_long_runs_of_name_characters():
    """A hex dump or base64url blob with an `=` elsewhere once made the pair search re-scan
    the run from each of its characters (minutes for 64 KiB); this returns at once."""
    text = "x=1 " + "a" * 200_000 + " password=p4ss"
    assert Redactor().text(text) == "x=1 " + "a" * 200_000 + " password=[REDACTED]"


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
