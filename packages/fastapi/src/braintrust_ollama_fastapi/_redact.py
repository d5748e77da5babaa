"""The one rule every recorded value goes through (headers, query, bodies of every format).

A value is replaced by `[REDACTED]`, whole, when its name is secret-looking (`is_secret_name`;
token counts such as `max_tokens` are not):
a header, a query parameter, a form field, or a JSON key at any depth (what is under the key,
object or list included). Inside every other string, two things are replaced where they appear:

- credentials: `Bearer <token>` / `Basic <token>` (a token of 8+ characters holding a digit),
  JSON Web Tokens (`eyJ….eyJ….…`), PEM private-key blocks;
- the value of a `name=value` pair whose name is secret-looking (`?access_token=…` in a URL,
  `password=…` in a line of text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[REDACTED]"

# Header names that carry credentials whatever they are called.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrf-token"}
)
# A name (lowercased, `-` and `_` removed) matching this holds a secret: it contains one of
# these words, is `sig` / `pwd`, or ends in `key`. `auth` is not the start of `author` or
# `authority` (but is of `authorization`, `authorize`).
_SECRET_NAME = re.compile(
    r"password|passwd|secret|token|apikey|auth(?!or(?!i[sz]))|credential|session|signature"
    r"|cookie|privatekey|^(?:sig|pwd)$|key$"
)
# ...except a token count, as LLM requests and responses hold (`max_tokens`, `prompt_tokens`).
_TOKEN_COUNT = re.compile(
    r"(?:max|min|num|new|prompt|completion|total|input|output|cached|reasoning)tokens$"
)
_CREDENTIAL = re.compile(
    # RFC 7235 token68 after the scheme; the digit keeps prose ("Basic understanding") out.
    r"\b(?:[Bb]earer|[Bb]asic)\s+(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}"
    r"|\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"
)
# Cheap substring tests that rule `_CREDENTIAL` out for most strings without running it.
_CREDENTIAL_HINTS = ("earer", "asic", "eyJ", "PRIVATE KEY")
# A name starts where a run of name characters starts (the look-behind) and is at most 64 long:
# without both, a long run with no `=` after it is re-scanned from each of its characters.
_PAIR = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]{1,64})=([^\s&;,\"'<>]+)")


@functools.lru_cache(maxsize=1024)
def is_secret_name(name: str) -> bool:
    """True for a header, parameter, field or key name whose value must never be logged."""
    lowered = name.lower()
    if lowered in _CREDENTIAL_HEADERS:
        return True
    squashed = lowered.replace("-", "").replace("_", "")
    match = _SECRET_NAME.search(squashed)
    if match is None:
        return False
    return match.group() != "token" or _TOKEN_COUNT.search(squashed) is None


def redacted(name: str | None, value: Any) -> Any:
    """`value` as it may be recorded under `name` (None for list items and whole bodies):
    `[REDACTED]` for a secret-looking name; otherwise a copy with the rule applied inside
    (JSON objects and lists recursively, strings as `redact_text` says)."""
    if name is not None and is_secret_name(name):
        return REDACTED
    return _redacted(value, redact_text)


def redacted_document(document: Any, text: str) -> Any:
    """A parsed JSON document redacted as `redacted` would; `text` is its source, searched once
    so that strings are not searched one by one when none of them can hold a credential."""
    return _redacted(document, redact_text if may_hold_credentials(text) else None)


def may_hold_credentials(text: str) -> bool:
    """False when no part of `text` can be a credential or a `name=value` pair."""
    return "=" in text or any(hint in text for hint in _CREDENTIAL_HINTS)


def _redacted(value: Any, text_rule: Callable[[str], str] | None) -> Any:
    # `type() in`, not `isinstance`: this runs once per value, and every value here comes from
    # `json.loads`, `parse_qsl` or this package, which make exact `str` / `dict` / `list`.
    # Scalars that need nothing are copied inline rather than through a call.
    kind = type(value)
    if kind is str:
        return value if text_rule is None else text_rule(value)
    visit = _CONTAINERS if text_rule is None else _CONTAINERS_AND_STRINGS
    if kind is dict:
        return {
            key: REDACTED
            if is_secret_name(key)
            else _redacted(item, text_rule)
            if type(item) in visit
            else item
            for key, item in value.items()
        }
    if kind is list:
        return [_redacted(item, text_rule) if type(item) in visit else item for item in value]
    return value


_CONTAINERS = frozenset({dict, list})
_CONTAINERS_AND_STRINGS = frozenset({dict, list, str})


def redact_text(text: str) -> str:
    """`text` with credentials and the values of secret-named `name=value` pairs replaced."""
    if "earer" in text or "asic" in text or "eyJ" in text or "PRIVATE KEY" in text:
        text = _CREDENTIAL.sub(REDACTED, text)
    if "=" in text:
        text = _PAIR.sub(_redact_pair, text)
    return text


def _redact_pair(match: re.Match[str]) -> str:
    name = match.group(1)
    return f"{name}={REDACTED}" if is_secret_name(name) else match.group(0)


def redacted_pairs(pairs: Iterable[tuple[str, str | dict[str, Any]]]) -> dict[str, Any]:
    """Name/value pairs (query parameters, form fields) as a dict, each value `redacted` under
    its name; a repeated name becomes a list of its values."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        shown = redacted(name, value)
        previous = fields.get(name)
        if previous is None:
            fields[name] = shown
        elif isinstance(previous, list):
            previous.append(shown)
        else:
            fields[name] = [previous, shown]
    return fields
