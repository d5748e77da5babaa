"""What a recorded request or response body becomes in a span: parsed by its content type and
redacted by the one rule in `_redact`, or a placeholder naming its type and size.

| content type | recorded as |
|---|---|
| `application/json`, `*+json` | the JSON value |
| NDJSON (`application/x-ndjson`, `application/jsonl`, ...) | a list of the JSON values |
| `text/event-stream` | a list of events `{"event", "id", "data", "retry"}`; `data` as JSON when it is |
| `application/x-www-form-urlencoded` | the fields (a repeated name as a list) |
| `multipart/form-data` | the fields; a file as `{"filename", "content_type", "size"}`, never its content |
| `text/plain`, none | the JSON value if the text is JSON, else the text |

Anything else (binary types, other text types such as HTML, whose secrets the rule cannot
find, compressed bodies, text that is not UTF-8, JSON that does not parse) is recorded as
`"[<type> body, <n> bytes, not recorded]"`, never in clear.

A body over the limit is redacted before it is cut: JSON and text are kept as the first `limit`
characters of their redacted text (a cut JSON document is redacted token by token, so the keys
above every value are known); NDJSON, event streams and forms keep the whole lines, events and
fields within the first `limit` bytes.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

from braintrust_ollama_fastapi._cut_json import redacted_json_prefix
from braintrust_ollama_fastapi._redact import (
    redact_text,
    redacted,
    redacted_document,
    redacted_pairs,
)

# Bytes kept past the limit so that a pair or token crossing the cut is seen whole.
_LOOKAHEAD = 4096
_NDJSON = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
    }
)


class BodyRecorder:
    """Keeps the beginning of a body as it streams past (the limit, plus a little to see across
    the cut) and counts all of it."""

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
        room = self._limit + _LOOKAHEAD - self._kept
        if room > 0 and chunk:
            kept = chunk[:room]
            self._chunks.append(kept)
            self._kept += len(kept)

    def render(self, content_type: str | None, content_encoding: str | None = None) -> Any:
        """The body as a span records it (see the module docstring); never raises."""
        if not self.size:  # GET requests, 204 responses, files sent by path
            return ""
        media, boundary = _media_type(content_type)
        parse = _parser(media)
        if parse is None or (content_encoding or "identity").lower() != "identity":
            return self._placeholder(media, content_encoding)
        body = _Body(b"".join(self._chunks), self._limit, not self.truncated, boundary)
        try:
            return parse(body)
        # JSON that does not parse, bytes that are not UTF-8, nesting deeper than Python's stack
        except (ValueError, RecursionError):
            return self._placeholder(media, content_encoding)

    def _placeholder(self, media: str, content_encoding: str | None) -> str:
        kind = media or "untyped"
        if content_encoding:
            kind = f"{kind} ({content_encoding})"
        return f"[{kind} body, {self.size} bytes, not recorded]"


@dataclass(frozen=True, slots=True)
class _Body:
    data: bytes  # the whole body when complete; else the limit plus the lookahead
    limit: int
    complete: bool
    boundary: str | None  # multipart only

    def text(self) -> str:
        """The kept bytes as UTF-8 (a character split by the cut is left out)."""
        return codecs.getincrementaldecoder("utf-8")().decode(self.data, final=self.complete)

    def within_limit(self) -> str:
        """The text of the first `limit` bytes (all of it when the body is complete)."""
        data = self.data if self.complete else self.data[: self.limit]
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=self.complete)


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """The media type, lowercased, and the multipart boundary if any."""
    if not content_type:
        return "", None
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    return header.get_content_type(), boundary if isinstance(boundary, str) else None


def _parser(media: str) -> Callable[[_Body], Any] | None:
    if media == "application/json" or media.endswith("+json"):
        return _json
    if media in _NDJSON:
        return _ndjson
    if media == "text/event-stream":
        return _event_stream
    if media == "application/x-www-form-urlencoded":
        return _form
    if media == "multipart/form-data":
        return _multipart
    if not media or media == "text/plain":
        return _text
    return None


def _json(body: _Body) -> Any:
    if body.complete:
        text = body.text()
        return redacted_document(json.loads(text), text)
    return redacted_json_prefix(body.text())[: body.limit]


def _text(body: _Body) -> Any:
    text = body.text()
    if body.complete:
        try:
            return redacted_document(json.loads(text), text)
        except ValueError:
            return redact_text(text)
    if text.lstrip().startswith(("{", "[")):
        return redacted_json_prefix(text)[: body.limit]
    return redact_text(text)[: body.limit]


def _ndjson(body: _Body) -> list[Any]:
    lines = body.within_limit().split("\n")
    partial = "" if body.complete else lines.pop()
    values = [redacted(None, json.loads(line)) for line in lines if line.strip()]
    if partial.strip():
        values.append(redacted_json_prefix(partial))
    return values


def _event_stream(body: _Body) -> list[dict[str, Any]]:
    events = body.within_limit().replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
    if not body.complete:
        events.pop()  # cut by the limit
    return [event for block in events if (event := _event(block))]


def _event(block: str) -> dict[str, Any]:
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
            fields[name] = redacted(name, value)
    if data:
        text = "\n".join(data)
        try:
            fields["data"] = redacted(None, json.loads(text))
        except ValueError:
            fields["data"] = redact_text(text)
    return fields


def _form(body: _Body) -> dict[str, Any]:
    text = body.within_limit()
    if not body.complete:
        text = text.rpartition("&")[0]  # the last field may be cut
    return redacted_pairs(parse_qsl(text, keep_blank_values=True))


_PART_PARAM = re.compile(rb'\b(name|filename)="((?:[^"\\]|\\.)*)"', re.IGNORECASE)


def _multipart(body: _Body) -> dict[str, Any]:
    if not body.boundary:
        raise ValueError("multipart body without a boundary")
    data = body.data if body.complete else body.data[: body.limit]
    # The preamble comes before the first delimiter; a part after the last one was cut.
    parts = data.split(b"--" + body.boundary.encode("latin-1"))[1:]
    fields: list[tuple[str, str | dict[str, Any]]] = []
    for part in parts:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, found, content = part.partition(b"\r\n\r\n")
        if not found or (part is parts[-1] and not body.complete):
            break
        params = {key.lower(): value for key, value in _PART_PARAM.findall(head)}
        name = params.get(b"name", b"").decode("utf-8", errors="replace")
        content = content.removesuffix(b"\r\n")
        if b"filename" in params:
            fields.append((name, _file(params[b"filename"], head, len(content))))
        else:
            fields.append((name, content.decode("utf-8")))
    return redacted_pairs(fields)


def _file(filename: bytes, head: bytes, size: int) -> dict[str, Any]:
    content_type = None
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-type":
            content_type = value.strip().decode("latin-1")
    name = redact_text(filename.decode("utf-8", errors="replace"))
    return {"filename": name, "content_type": content_type, "size": size}
