"""A JSON document cut anywhere (a body over the size limit), redacted as if it were whole."""

from __future__ import annotations

import json
import re
from typing import Any

from braintrust_ollama_fastapi._redact import (
    REDACTED,
    is_secret_name,
    may_hold_credentials,
    redact_text,
    redacted_document,
)

# One JSON token per match, told apart by the group that matched; whitespace is skipped (and
# copied through with the text around it).
_JSON_TOKEN = re.compile(
    r'("[^"\\]*(?:\\.[^"\\]*)*")'  # a string
    r'|("[^"\\]*(?:\\.[^"\\]*)*\\?\Z)'  # a string the cut fell inside
    r"|([{\[])|([}\]])|(,)|(:)"
    r'|([^\s{}\[\]:,"]+)'  # a number or literal
)
_STRING, _CUT_STRING, _OPEN, _CLOSE, _COMMA, _COLON, _SCALAR = range(1, 8)
_STRINGS = (_STRING, _CUT_STRING)
_REDACTED_JSON = json.dumps(REDACTED)


def redacted_json_prefix(text: str) -> str:
    """The beginning of a JSON document, cut anywhere, redacted as `redacted` redacts the whole
    document: what is under a secret key becomes `"[REDACTED]"` (a nested object or list
    whole), and credentials in strings are replaced. A string the cut fell inside is read as
    if it ended there (a key then is left out); a number or literal at the end is left out.
    Raises ValueError for containers nested deeper than `_MAX_DEPTH`.

    Token by token, keeping only what the rule needs (which containers are objects, whether a
    key or a secret key's value comes next); a container that ends before the cut is parsed
    and redacted whole instead, and unchanged text is copied in slices."""
    out: list[str] = []
    copied = 0  # text[:copied] is accounted for in `out`
    objects: list[bool] = []  # per open container: whether it is an object
    expect_key = False  # the next string is a key
    secret = False  # the next value is under a secret key
    cut, pos = len(text), 0
    while (match := _JSON_TOKEN.search(text, pos)) is not None:
        kind, start, pos = match.lastindex, match.start(), match.end()
        if kind == _COLON:
            continue
        if kind in _STRINGS and expect_key:
            if kind == _CUT_STRING:
                cut = start
                break
            key = match.group()
            secret = is_secret_name(_string(key) if "\\" in key else key[1:-1])
            expect_key = False
            continue
        if kind == _SCALAR and pos == len(text):  # a number or literal the cut may have split
            cut = start
            break
        if kind == _OPEN and len(objects) < _PARSE_WHOLE_DEPTH:
            whole = _whole_value(text, start)
            if whole is not None:  # the container ends before the cut
                value, pos = whole
                shown = REDACTED if secret else redacted_document(value, text[start:pos])
                if shown != value:
                    out += (text[copied:start], json.dumps(shown))
                    copied = pos
                secret = False
                continue
        if secret:  # the value of a secret key: a string, a scalar, or a container cut short
            out += (text[copied:start], _REDACTED_JSON)
            copied = pos
            secret = False
            if kind == _OPEN:  # all the rest is inside it
                copied = cut = len(text)
                break
        elif kind in _STRINGS:
            token = match.group()
            if kind == _CUT_STRING or may_hold_credentials(token):
                value = _string(token if kind == _STRING else token.rstrip("\\") + '"')
                out += (text[copied:start], json.dumps(redact_text(value)))
                copied = pos
        elif kind == _OPEN:
            if len(objects) == _MAX_DEPTH:
                raise ValueError("JSON nested too deep to redact")
            objects.append(match.group() == "{")
            expect_key = objects[-1]
        elif kind == _CLOSE:
            if objects:
                objects.pop()
        elif kind == _COMMA:
            expect_key = bool(objects) and objects[-1]
    out.append(text[copied:cut])
    return "".join(out)


_DECODER = json.JSONDecoder()
# Deeper than `json.loads` goes (Python's recursion limit): not data, and not worth the time.
_MAX_DEPTH = 512
# Each open container the cut falls inside costs one failed parse to the end of the text:
# bounded, so that a body of nested brackets costs linear time.
_PARSE_WHOLE_DEPTH = 16


def _whole_value(text: str, start: int) -> tuple[Any, int] | None:
    """The JSON value starting at `start` and where it ends, or None if the cut is inside it."""
    try:
        return _DECODER.raw_decode(text, start)
    except (ValueError, RecursionError):
        return None


def _string(token: str) -> str:
    try:
        value = json.loads(token)
    except ValueError:
        return token.strip('"')
    return value if isinstance(value, str) else token
