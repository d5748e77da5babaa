"""Read the rows Braintrust's in-memory logger (or a local store) holds as a tree of spans."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from braintrust_ollama.local.store import LocalStore

Row = dict[str, Any]

__all__ = [
    "TOKEN_METRICS",
    "assert_tokens_counted_once",
    "by_name",
    "children_of",
    "choices",
    "only",
    "parent_of",
    "reply_of",
    "root_of",
    "roots",
    "span_tree",
    "stored_rows",
    "token_sums",
]

# What a span may count tokens as: Braintrust's names, and LangChain's `total_tokens`.
TOKEN_METRICS = ("prompt_tokens", "completion_tokens", "tokens", "total_tokens")


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


def root_of(rows: list[Row], row: Row) -> Row:
    """The root of the tree `row` is in (`row` itself if it has no parent among `rows`)."""
    parent = parent_of(rows, row)
    return row if parent is None else root_of(rows, parent)


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


def assert_tokens_counted_once(
    rows: list[Row], served: tuple[int, int], *framework_spans: str
) -> None:
    """The trace's token sums are exactly what the server counted (`served`: prompt and
    completion counters), and no span named in `framework_spans` carries a token metric: the SDK
    spans under them do."""
    prompt, completion = served
    assert prompt + completion > 0
    assert token_sums(rows) == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens": prompt + completion,
    }
    for name in framework_spans:
        for row in by_name(rows, name):
            assert not set(row.get("metrics") or {}) & set(TOKEN_METRICS), row["metrics"]


def stored_rows(store: LocalStore) -> list[Row]:
    """Every row a local store holds, merged per span, trace by trace."""
    return [row for trace in store.traces(limit=100_000) for row in store.rows(trace.root_span_id)]


def choices(message: Row, finish_reason: str = "stop") -> list[Row]:
    """A chat or generate span's output for one reply: OpenAI-style choices."""
    return [{"index": 0, "finish_reason": finish_reason, "message": message}]


def reply_of(span: Row) -> Row:
    """The assistant message a chat or generate span's output holds (its one choice)."""
    (choice,) = span["output"]
    return choice["message"]
