"""The terminal views of local traces: a table of recent traces, one trace as a tree, and the
per-model statistics.

Rendered with rich; colours and styles follow rich's terminal detection (none when the output is
not a terminal, none with NO_COLOR set). Span data is only ever put in `Text` objects, never in
markup strings.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text

from braintrust_ollama.local.stats import ModelStats
from braintrust_ollama.local.store import TraceSummary, span_name, summarize

__all__ = ["make_console", "stats_table", "trace_table", "trace_tree"]

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
    """One trace: a line per span (name, type, model with its size and quantization, duration,
    tokens, time to first token, error), then a `⚠` line per warning the span carries
    (`metadata.warnings`), children in start order under their first parent.

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
    lines: list[RenderableType] = [heading]
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
        lines.extend(_warnings(row, guides))
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
        size = _model_size(metadata.get("model_details"))
        if size:
            label.append(f" ({size})", style="cyan")
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


def _model_size(details: Any) -> str:
    """`8.2B Q4_K_M`: the model's size and quantization, from `metadata.model_details`."""
    if not isinstance(details, dict):
        return ""
    parts = (details.get("parameter_size"), details.get("quantization_level"))
    return " ".join(str(p) for p in parts if isinstance(p, str) and p)


def _warnings(row: dict[str, Any], guides: str) -> list[RenderableType]:
    """A `⚠` line per warning of the span (`metadata.warnings`), under it."""
    warnings = (row.get("metadata") or {}).get("warnings")
    if not isinstance(warnings, list):
        return []
    return [
        _Wrapped(Text(f"{guides}  ", style="dim"), "⚠ ", Text(str(warning), style="yellow"))
        for warning in warnings
    ]


class _Wrapped:
    """`text` wrapped to the width left after `indent` and `marker`: its first line behind
    both, the others behind the indent and blanks as wide as the marker (no trailing blanks)."""

    def __init__(self, indent: Text, marker: str, text: Text) -> None:
        self.indent = indent
        self.marker = marker
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        inset = self.indent.cell_len + len(self.marker)
        lines = self.text.wrap(console, max(options.max_width - inset, 20))
        for i, line in enumerate(lines):
            line.rstrip()
            marker = Text(self.marker if i == 0 else " " * len(self.marker), style=line.style)
            yield Text.assemble(self.indent, marker, line)


# What the columns of `stats_table` hold, printed under it.
_STATS_LEGEND = (
    "in / out: prompt / output tokens; p50 / p95: duration of a call; tok/s: median output"
    " tokens per second; cold: cold starts; trunc: truncated prompts; fmt: format errors"
)


def stats_table(stats: Sequence[ModelStats]) -> Group:
    """One row per model: calls, errors, median and p95 duration, prompt and output tokens,
    median output tokens per second, cold starts, truncated prompts, format errors; then
    what the columns hold."""
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("model", overflow="fold")
    for column in ("calls", "err", "p50", "p95", "in", "out", "tok/s", "cold", "trunc", "fmt"):
        table.add_column(column, justify="right", no_wrap=True)
    for s in stats:
        table.add_row(
            Text(s.model),
            str(s.calls),
            Text(str(s.errors), style="red") if s.errors else Text("-"),
            _duration(s.median_s),
            _duration(s.p95_s),
            _count(s.prompt_tokens),
            _count(s.completion_tokens),
            f"{s.median_tokens_per_second:.1f}" if s.median_tokens_per_second else "-",
            str(s.cold_starts) if s.cold_starts else "-",
            _flagged(s.truncated_prompts),
            _flagged(s.format_errors),
        )
    return Group(table, _Wrapped(Text(), "", Text(_STATS_LEGEND, style="dim")))


def _flagged(count: int) -> Text:
    return Text(str(count), style="yellow") if count else Text("-")


def _count(tokens: int) -> str:
    """`950`, `12.3k`, `4.1M`: a token count in at most 6 characters."""
    if tokens < 10_000:
        return str(tokens)
    if tokens < 10_000_000:
        return f"{tokens / 1000:.1f}k" if tokens < 1_000_000 else f"{tokens / 1e6:.2f}M"
    return f"{tokens / 1e6:.0f}M"


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
