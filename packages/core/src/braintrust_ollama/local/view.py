"""The terminal views of local traces: a table of recent traces and one trace as a tree.

Rendered with rich; colours and styles follow rich's terminal detection (none when the output is
not a terminal, none with NO_COLOR set).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from braintrust_ollama.local.store import TraceSummary, span_name, summarize

__all__ = ["make_console", "trace_table", "trace_tree"]

_ERROR_CHARS = 160
# Levels of the tree shown by indentation; deeper spans show their depth as a number.
INDENT_LEVELS = 12


def make_console() -> Console:
    """A stdout console; 120 columns wide when stdout is not a terminal (so pipes don't wrap)
    and `COLUMNS` is not set."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(highlight=False, width=120)
    return console


def trace_table(traces: Sequence[TraceSummary]) -> Table:
    """Recent traces; a trace id is never shortened (it is what `traces show` takes), the
    other columns wrap instead."""
    table = Table(box=None, pad_edge=False)
    id_width = max((len(t.root_span_id) for t in traces), default=5)
    table.add_column("trace", no_wrap=True, min_width=id_width)
    for column in ("started", "name", "spans", "duration", "tokens", "errors"):
        table.add_column(column, justify="right" if column in ("spans", "tokens") else "left")
    for t in traces:
        table.add_row(
            t.root_span_id,
            _clock(t.start),
            t.name,
            str(t.spans),
            _duration(t.duration_s),
            str(t.tokens) if t.tokens else "-",
            Text(str(t.errors), style="red") if t.errors else Text("-"),
        )
    return table


def trace_tree(rows: Sequence[dict[str, Any]], root_span_id: str) -> Group:
    """One trace: a line per span (name, type, model, duration, tokens, time to first token,
    error), children in start order under their first parent.

    Any depth prints (no recursion). Guides indent the first `INDENT_LEVELS` levels; deeper
    spans stay at that indent and show their depth (`(depth 37)`, the top span's being 0), so names are never pushed
    off the line.
    """
    summary = summarize(root_span_id, rows)
    by_span_id = {r.get("span_id"): r for r in rows}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        parents = row.get("span_parents") or []
        parent = parents[0] if parents and parents[0] in by_span_id else None
        children[parent].append(row)
    heading = Text.assemble(
        ("trace ", "dim"),
        (root_span_id, "bold"),
        ("  ", ""),
        (f"{summary.spans} spans, {_duration(summary.duration_s)}", "dim"),
    )
    lines = [heading]
    # Depth-first with an explicit stack: (row, depth, guides of its ancestors, is last child).
    stack: list[tuple[dict[str, Any], int, str, bool]] = []

    def push_children(parent: str | None, depth: int, guides: str) -> None:
        ordered = sorted(children.get(parent, ()), key=_start)
        for i, child in reversed(list(enumerate(ordered))):
            stack.append((child, depth, guides, i == len(ordered) - 1))

    push_children(None, 1, "")
    seen: set[int] = set()
    while stack:
        row, depth, guides, last = stack.pop()
        if id(row) in seen:  # a cycle in span_parents: print each span once
            continue
        seen.add(id(row))
        line = Text(guides + ("└── " if last else "├── "), style="dim")
        if depth > INDENT_LEVELS:
            line.append(f"(depth {depth - 1}) ", style="dim")  # the trace's top span is 0
        line.append_text(_label(row))
        line.no_wrap = True
        line.overflow = "ellipsis"
        lines.append(line)
        if depth < INDENT_LEVELS:
            guides += "    " if last else "│   "
        push_children(row.get("span_id"), depth + 1, guides)
    return Group(*lines)


def _label(row: dict[str, Any]) -> Text:
    attributes = row.get("span_attributes") or {}
    metrics = row.get("metrics") or {}
    metadata = row.get("metadata") or {}
    label = Text(span_name(row), style="bold")
    if attributes.get("type"):
        label.append(f" [{attributes['type']}]", style="dim")
    if metadata.get("model"):
        label.append(f"  {metadata['model']}", style="cyan")
    start, end = _seconds(metrics, "start"), _seconds(metrics, "end")
    duration = end - start if start is not None and end is not None else None
    if duration is not None:
        label.append(f"  {_duration(duration)}")
    elif start is not None:
        label.append("  (not ended)", style="yellow")
    server = _seconds(metrics, "total_duration")
    if server is not None:
        label.append(f" (ollama {_duration(server)})", style="dim")
    tokens = _tokens(metrics)
    if tokens:
        label.append(f"  {tokens}", style="green")
    ttft = _seconds(metrics, "time_to_first_token")
    # A stream's first token says something; a whole reply's arrival repeats the duration.
    streamed = metadata.get("stream", ttft is not None and (duration or 0) > ttft / 0.9)
    if ttft is not None and streamed is True:
        label.append(f"  first token {_duration(ttft)}", style="magenta")
    error = _error_line(row.get("error"))
    if error:
        if len(error) > _ERROR_CHARS:
            error = error[: _ERROR_CHARS - 3] + "..."
        label.append(f"  error: {error}", style="bold red")
    return label


def _error_line(error: Any) -> str:
    """The line that says what went wrong: `ValueError: boom`, not a traceback's first line."""
    if not error:
        return ""
    if isinstance(error, dict):
        error = error.get("message") or error
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        # The exception line is the last one a traceback does not indent.
        unindented = [line for line in lines[1:] if not line[0].isspace()]
        if unindented:  # `ollama._types.ResponseError: ...` is shown as `ResponseError: ...`
            name, colon, text = unindented[-1].partition(": ")
            return " ".join((name.rpartition(".")[2] + colon + text).split())
    return " ".join(" ".join(lines).split())


def _tokens(metrics: dict[str, Any]) -> str:
    prompt, completion = metrics.get("prompt_tokens"), metrics.get("completion_tokens")
    total = metrics.get("tokens")
    parts = []
    if isinstance(prompt, (int, float)):
        parts.append(f"{int(prompt)} in")
    if isinstance(completion, (int, float)):
        parts.append(f"{int(completion)} out")
    if not parts and isinstance(total, (int, float)):
        parts.append(f"{int(total)}")
    return "tokens " + " / ".join(parts) if parts else ""


def _seconds(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _start(row: dict[str, Any]) -> float:
    start = (row.get("metrics") or {}).get("start")
    return float(start) if isinstance(start, (int, float)) else float("inf")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")
