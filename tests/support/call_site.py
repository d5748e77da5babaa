"""The call site a span's `context` names, and the line a test made a call on."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["caller_of", "line_above"]


def caller_of(span: dict[str, Any]) -> dict[str, Any]:
    """The span's call site (Braintrust's `context` also holds its own `span_origin`)."""
    return {k: v for k, v in span["context"].items() if k.startswith("caller_")}


def line_above() -> dict[str, Any]:
    """The call site of the line just above the caller's: its file, function and line number."""
    frame = inspect.currentframe().f_back  # type: ignore[union-attr]
    return {
        "caller_functionname": frame.f_code.co_name,  # type: ignore[union-attr]
        "caller_filename": frame.f_code.co_filename,  # type: ignore[union-attr]
        "caller_lineno": frame.f_lineno - 1,  # type: ignore[union-attr]
    }
