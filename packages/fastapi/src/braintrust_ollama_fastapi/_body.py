"""What a recorded request or response body becomes in a span: parsed by its content type and
redacted by `_redact`'s rule, or a placeholder naming its type and size.

| content type | recorded as |
|---|---|
| `application/json`, `*+json` | the JSON value |
| NDJSON (`application/x-ndjson`, `application/jsonl`, ...) | a list of the JSON values |
| `text/event-stream` | a list of events `{"event", "id", "data", "retry"}`; `data` as JSON when it is |
| `application/x-www-form-urlencoded` | the fields (a repeated name as a list) |
| `multipart/form-data` | the fields; a file as `{"filename", "content_type", "size"}`, never its content |
| `text/plain`, none | the JSON value if the text is JSON, else the text |

Anything else (binary types, other text types such as HTML, whose secrets the rule cannot
find, compressed bodies, text that is not UTF-8, JSON or forms that do not parse) is recorded as
`"[<type> body, <n> bytes, not recorded]"`, never in clear.

A body is recorded whole or not at all: one over the limit is the placeholder, except event
streams and NDJSON, whose events and lines stand alone: those that end within the limit are kept.
What is recorded was parsed whole, so the rule always sees the name above every value.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from python_multipart import create_form_parser
from python_multipart.multipart import Field, File

from braintrust_ollama_fastapi._redact import Redactor

# NDJSON's names, with and without `x-`.
_NDJSON = frozenset(
    f"application/{x}{name}" for x in ("", "x-") for name in ("ndjson", "jsonl", "jsonlines")
)
_EVENT_STREAM = "text/event-stream"
# Bodies of records that stand alone: over the limit, the records within it are kept.
_STREAMS = _NDJSON | {_EVENT_STREAM}


class BodyRecorder:
    """Keeps the first `limit` bytes of a body as it streams past and counts all of it."""

    __slots__ = ("_chunks", "_kept", "_limit", "size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._kept = 0
        self.size = 0

    @property
    def truncated(self) -> bool:
        return self.size > self._limit

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        room = self._limit - self._kept
        if room > 0 and chunk:
            kept = chunk[:room]
            self._chunks.append(kept)
            self._kept += len(kept)

    def render(
        self, content_type: str | None, content_encoding: str | None, redactor: Redactor
    ) -> Any:
        """The body as a span records it (see the module docstring)."""
        if not self.size:  # GET requests, 204 responses, files sent by path
            return ""
        media = (content_type or "").partition(";")[0].strip().lower()
        parse = _parser(media)
        if (
            parse is None
            or (content_encoding or "identity").lower() != "identity"
            or (self.truncated and media not in _STREAMS)
        ):
            return self._placeholder(media, content_encoding, redactor)
        body = _Body(b"".join(self._chunks), not self.truncated, content_type or "")
        try:
            return parse(body, redactor)
        # JSON or forms that do not parse, bytes that are not UTF-8, nesting deeper than
        # Python's stack
        except (ValueError, RecursionError):
            return self._placeholder(media, content_encoding, redactor)

    def _placeholder(self, media: str, content_encoding: str | None, redactor: Redactor) -> str:
        kind = media or "untyped"
        if content_encoding:
            kind = f"{kind} ({content_encoding})"
        # The type is the client's to write: the rule applies to it too.
        return f"[{redactor.text(kind)} body, {self.size} bytes, not recorded]"


class _Body(NamedTuple):
    data: bytes  # the whole body when complete; else its first `limit` bytes
    complete: bool
    content_type: str

    def text(self) -> str:
        """The bytes as UTF-8 (a character the limit split is left out)."""
        return codecs.getincrementaldecoder("utf-8")().decode(self.data, final=self.complete)


_Parser = Callable[[_Body, Redactor], Any]


def _parser(media: str) -> _Parser | None:
    if media == "application/json" or media.endswith("+json"):
        return _json
    if media in _NDJSON:
        return _ndjson
    if media == _EVENT_STREAM:
        return _event_stream
    if media == "application/x-www-form-urlencoded":
        return _form
    if media == "multipart/form-data":
        return _multipart
    if not media or media == "text/plain":
        return _plain
    return None


def _json(body: _Body, redactor: Redactor) -> Any:
    text = body.text()
    return redactor.document(json.loads(text), text)


def _json_or_text(text: str, redactor: Redactor) -> Any:
    try:
        return redactor.document(json.loads(text), text)
    except ValueError:
        return redactor.text(text)


def _plain(body: _Body, redactor: Redactor) -> Any:
    return _json_or_text(body.text(), redactor)


def _ndjson(body: _Body, redactor: Redactor) -> list[Any]:
    lines = body.text().split("\n")
    if not body.complete:
        lines.pop()  # the limit may have cut it
    return [redactor.document(json.loads(line), line) for line in lines if line.strip()]


def _event_stream(body: _Body, redactor: Redactor) -> list[dict[str, Any]]:
    # CRLF, CR and LF all end a line; a blank line ends an event.
    events = body.text().replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
    if not body.complete:
        events.pop()  # the limit may have cut it
    return [event for block in events if (event := _event(block, redactor))]


def _event(block: str, redactor: Redactor) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    data: list[str] = []
    for line in block.split("\n"):
        if not line or line.startswith(":"):  # blank, or a comment
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            fields[name] = redactor.value(name, value)
    if data:
        fields["data"] = _json_or_text("\n".join(data), redactor)
    return fields


def _form(body: _Body, redactor: Redactor) -> dict[str, Any]:
    return redactor.pairs(parse_qsl(body.text(), keep_blank_values=True))


def _multipart(body: _Body, redactor: Redactor) -> dict[str, Any]:
    """The fields, and the files described, parsed by python-multipart as Starlette parses
    them. Files stay in memory (`BytesIO`: nothing to close), never on disk: no part is larger
    than the body, which is within the limit."""
    fields: list[tuple[str, Any]] = []

    def on_field(field: Field) -> None:
        fields.append((_utf8(field.field_name), _utf8(field.value)))

    def on_file(file: File) -> None:
        name, kind = _utf8(file.file_name), file.content_type
        described = {
            "filename": redactor.text(name),
            "content_type": kind if kind is None else redactor.text(kind),
            "size": file.size,
        }
        fields.append((_utf8(file.field_name), described))

    if "boundary=" not in body.content_type.lower():  # else python-multipart logs an error
        raise ValueError("multipart body without a boundary")
    headers = {"Content-Type": body.content_type.encode("latin-1")}
    config = {"MAX_MEMORY_FILE_SIZE": len(body.data) + 1}
    parser = create_form_parser(headers, on_field, on_file, config=config)
    parser.write(body.data)
    parser.finalize()
    return redactor.pairs(fields)


def _utf8(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8")
