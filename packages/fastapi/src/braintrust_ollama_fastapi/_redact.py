"""The one rule every recorded value goes through (headers, query, path, bodies, errors).

A value is replaced by `[REDACTED]`, whole, when its name is secret-looking (`is_secret_name`;
token counts such as `max_tokens` are not), or matches one of the middleware's `secret_names`:
a header, a query parameter, a form field, or a JSON key at any depth (what is under the key,
object or list included). Inside every other string, two things are replaced where they appear:

- credentials: `Bearer <token>` / `Basic <token>` (a token of 8+ characters holding a digit),
  JSON Web Tokens (`eyJ….eyJ….…`), PEM private-key blocks;
- the value of a `name=value` pair whose name is secret (`?access_token=…` in a URL,
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
# A name starts where a run of name characters starts (the look-behind) and is at most 64 long:
# without both, a long run with no `=` after it is re-scanned from each of its characters.
_PAIR = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]{1,64})=([^\s&;,\"'<>]+)")


def _may_hold_a_credential(text: str) -> bool:
    """False when no part of `text` can match `_CREDENTIAL`: cheap substring tests that spare
    most strings the regular expression."""
    return "earer" in text or "asic" in text or "eyJ" in text or "PRIVATE" in text


class Redactor:
    """The rule, with a middleware's own `secret_names`: regular expressions searched,
    case-insensitively, in each name (`"ssn"` hides `patient_SSN`; `"^x-tenant$"` that header
    only). They add to the built-in names; they never remove one."""

    __slots__ = ("_extra", "is_secret_name")

    def __init__(self, secret_names: Iterable[str] = ()) -> None:
        patterns = list(secret_names)
        joined = "|".join(f"(?:{pattern})" for pattern in patterns)
        self._extra = re.compile(joined, re.IGNORECASE) if patterns else None
        # Names repeat from request to request (headers, query keys, JSON keys): each is
        # decided once.
        self.is_secret_name: Callable[[str], bool] = functools.lru_cache(maxsize=1024)(
            self._is_secret_name
        )

    def _is_secret_name(self, name: str) -> bool:
        """True for a header, parameter, field or key name whose value must never be logged."""
        if self._extra is not None and self._extra.search(name):
            return True
        lowered = name.lower()
        if lowered in _CREDENTIAL_HEADERS:
            return True
        squashed = lowered.replace("-", "").replace("_", "")
        match = _SECRET_NAME.search(squashed)
        if match is None:
            return False
        return match.group() != "token" or _TOKEN_COUNT.search(squashed) is None

    def text(self, text: str) -> str:
        """`text` with credentials and the values of secret-named `name=value` pairs replaced."""
        if _may_hold_a_credential(text):
            text = _CREDENTIAL.sub(REDACTED, text)
        if "=" in text:
            text = _PAIR.sub(self._pair, text)
        return text

    def _pair(self, match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{name}={REDACTED}" if self.is_secret_name(name) else match.group(0)

    def value(self, name: str | None, value: Any) -> Any:
        """`value` as it may be recorded under `name` (None for list items and whole bodies):
        `[REDACTED]` for a secret name; otherwise a copy with the rule applied inside (JSON
        objects and lists recursively, strings as `text` says)."""
        if name is not None and self.is_secret_name(name):
            return REDACTED
        return self._walk(value, self.text)

    def document(self, document: Any, source: str) -> Any:
        """A parsed JSON document redacted as `value` would; `source`, its text, is searched
        once so that strings are not searched one by one when none can hold a credential."""
        searched = "=" in source or _may_hold_a_credential(source)
        return self._walk(document, self.text if searched else None)

    def pairs(self, pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
        """Name/value pairs (query parameters, form fields) as a dict, each value `value`d under
        its name; a repeated name becomes a list of its values."""
        fields: dict[str, Any] = {}
        for name, value in pairs:
            shown = self.value(name, value)
            previous = fields.get(name)
            if previous is None:
                fields[name] = shown
            elif isinstance(previous, list):
                previous.append(shown)
            else:
                fields[name] = [previous, shown]
        return fields

    def _walk(self, value: Any, text: Callable[[str], str] | None) -> Any:
        # `type() is`, not `isinstance`: every value here comes from `json.loads`, `parse_qsl`
        # or python-multipart, which make exact `str` / `dict` / `list`.
        kind = type(value)
        if kind is str:
            return value if text is None else text(value)
        if kind is dict:
            return {
                key: REDACTED if self.is_secret_name(key) else self._walk(item, text)
                for key, item in value.items()
            }
        if kind is list:
            return [self._walk(item, text) for item in value]
        return value
