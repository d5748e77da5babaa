"""Read the rows Braintrust's in-memory logger holds as a tree of spans."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]

__all__ = [
    "by_name",
    "children_of",
    "choices",
    "only",
    "parent_of",
    "reply_of",
    "roots",
    "span_tree",
    "token_sums",
]


def by_name(rows: Iterable[Row], name: str) -> list[Row]:
    """Rows whose span name is `name`, in logging order."""
    return [r for r in rows if r.get("span_attributes", {}).get("name") == name]


def only(rows: Iterable[Row], name: str) -> Row:
    """The single row named `name`; fails if there are none or several."""
    found = by_name(rows, name)
    assert len(found) == 1, f"expected one {name!r} span, found {len(found)}: {names(rows)}"
    return found[0]


def names(rows: Iterable[Row]) -> list[str]:
    return [r.get("span_attributes", {}).get("name", "?") for r in rows]


def children_of(rows: Iterable[Row], parent: Row) -> list[Row]:
    return [r for r in rows if parent["span_id"] in (r.get("span_parents") or [])]


def parent_of(rows: Iterable[Row], child: Row) -> Row | None:
    parents = child.get("span_parents") or []
    return next((r for r in rows if r["span_id"] in parents), None)


def roots(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if not r.get("span_parents")]


def span_tree(rows: list[Row], root: Row | None = None, depth: int = 0) -> list[str]:
    """The tree as indented names, e.g. ["request", "  ChatOllama", "    ollama.chat"]."""
    lines: list[str] = []
    for node in [root] if root is not None else roots(rows):
        lines.append("  " * depth + node["span_attributes"]["name"])
        for child in children_of(rows, node):
            lines.extend(span_tree(rows, child, depth + 1))
    return lines


def token_sums(rows: Iterable[Row]) -> dict[str, float]:
    """Sum of each token metric over every row: what Braintrust adds up for a trace."""
    sums = {"prompt_tokens": 0.0, "completion_tokens": 0.0, "tokens": 0.0}
    for row in rows:
        metrics = row.get("metrics") or {}
        for key in sums:
            sums[key] += metrics.get(key) or 0
    return sums


def choices(message: Row, finish_reason: str = "stop") -> list[Row]:
    """A chat or generate span's output for one reply: OpenAI-style choices."""
    return [{"index": 0, "finish_reason": finish_reason, "message": message}]


def reply_of(span: Row) -> Row:
    """The assistant message a chat or generate span's output holds (its one choice)."""
    (choice,) = span["output"]
    return choice["message"]
