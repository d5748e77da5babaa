"""The terminal views of local traces: a table of recent traces, one trace as a tree, and the
Ollama calls summed up per model.

Everything a view shows from a row is data from outside: a model's output, a server's error, a
span name an HTTP client chose. It is shown as text, never as terminal control sequences or rich
markup, and a view never fails on a row:

- `printable(value)` is the one point every piece of row data goes through before it is shown:
  control characters (and the other characters that move or reorder what a terminal shows)
  become visible escapes. Views build rich `Text` from it, never markup strings (a `str` given
  to `Console.print` or to a `Table` cell is parsed as markup: `[/INST]` fails, `[link=...]`
  becomes a hyperlink).
- `json_text(value)` is JSON output (`--json`): the same characters as JSON escapes, so the text
  is safe on a terminal and loads back to exactly the rows (lone surrogates included), at any
  depth.

Views lay themselves out at render time for the console's width: names and texts are shortened
or wrapped, figures (times, counts, durations, tokens) never cut. Rendered with rich; colours and
styles follow rich's terminal detection (none when the output is not a terminal, none with
NO_COLOR set).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeGuard

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from braintrust_ollama.local.stats import ModelStats
from braintrust_ollama.local.store import TraceSummary, span_name, summarize

__all__ = ["json_text", "make_console", "printable", "stats_table", "trace_table", "trace_tree"]

_ERROR_CHARS = 160
# Levels of the tree shown by indentation; deeper spans show their depth as a number.
INDENT_LEVELS = 12
# A name is cut to this many characters before it is measured: no line shows more.
_NAME_CHARS = 1000
# JSON nested deeper than this is shown as a note when it is too deep to print whole.
_JSON_DEPTH = 500

# C0 controls, DEL, C1 controls, lone surrogates, the Arabic letter mark, left-to-right and
# right-to-left marks, line and paragraph separators, bidirectional embeddings, overrides and
# isolates: what can move the cursor, start a terminal sequence or reorder the text after it.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def printable(value: Any) -> str:
    """`value` (any row data; not a `str`: its `str()`) as text that is safe to show: each
    control character, lone surrogate, line separator or bidirectional control replaced by a
    visible escape (`\\n`, `\\t`, `\\u001b`, `\\u009b`, `\\udcff`, `\\u202e`: JSON's own
    escapes, so JSON text stays valid JSON). Everything else, markup-like brackets included, is
    kept: show the result as `rich.text.Text`, never as markup."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)


def json_text(value: Any) -> str:
    """`value` as indented JSON that is safe to show and loads back to exactly `value`: the
    characters `printable` escapes are JSON escapes (`json.dumps` leaves DEL, C1 controls, lone
    surrogates and the bidirectional controls as they are). A value nested too deep for Python
    to print whole is printed with what lies deeper than 500 levels as a note."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except RecursionError:
        text = json.dumps(_depth_capped(value), indent=2, ensure_ascii=False, default=str)
    # JSON strings hold no raw line ends (json.dumps escapes them): each line is escaped alone.
    return "\n".join(printable(line) for line in text.split("\n"))


def _depth_capped(value: Any) -> Any:
    """A copy of `value` whose objects and arrays deeper than `_JSON_DEPTH` are replaced by a
    note; built with a stack, not recursion."""
    top: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(value, top, 0, 0)]
    while stack:
        item, parent, key, depth = stack.pop()
        if isinstance(item, (dict, list)) and depth >= _JSON_DEPTH:
            parent[key] = f"[nested deeper than {_JSON_DEPTH} levels: not shown]"
        elif isinstance(item, dict):
            parent[key] = fields = dict.fromkeys(item)
            stack.extend((child, fields, name, depth + 1) for name, child in item.items())
        elif isinstance(item, list):
            parent[key] = items = [None] * len(item)
            stack.extend((child, items, i, depth + 1) for i, child in enumerate(item))
        else:
            parent[key] = item
    return top[0]


def make_console() -> Console:
    """A stdout console; 120 columns wide when stdout is not a terminal (so pipes don't wrap)
    and `COLUMNS` is not set."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(highlight=False, width=120)
    return console


def _fit(text: Text, width: int) -> Text:
    """`text` on one line, cut with an ellipsis at `width` cells."""
    text.no_wrap = True
    text.overflow = "ellipsis"
    if cell_len(text.plain) > width:
        text.truncate(max(width, 1), overflow="ellipsis")
    return text


# --- the table of recent traces ---------------------------------------------------------------

_GAP = "  "
_NAME_MIN = 16  # the narrowest name column worth keeping on the figures' line


def trace_table(traces: Sequence[TraceSummary]) -> _TraceTable:
    """Recent traces. A trace id is never shortened (it is what `traces show` takes), nor is any
    figure; names are. When the terminal is too narrow for a name column, each trace is two
    lines: its id and name, then its figures."""
    return _TraceTable(traces)


class _TraceTable:
    def __init__(self, traces: Sequence[TraceSummary]) -> None:
        self.traces = traces

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        rows = [_figures(t) for t in self.traces]
        names = [printable(t.name[:_NAME_CHARS]) for t in self.traces]
        headers = ("trace", "started", "spans", "duration", "tokens", "errors")
        widths = [
            max([len(h), *(cell_len(r[i].plain) for r in rows)]) for i, h in enumerate(headers)
        ]
        figures_width = sum(widths) + len(_GAP) * (len(widths) - 1)
        longest = max([len("name"), *map(cell_len, names)])
        name_width = min(longest, width - figures_width - len(_GAP))
        if name_width >= min(longest, _NAME_MIN):
            yield from self._one_line_each(rows, names, headers, widths, name_width, width)
        else:
            yield from self._two_lines_each(rows, names, width)

    def _one_line_each(
        self,
        rows: list[list[Text]],
        names: list[str],
        headers: Sequence[str],
        widths: list[int],
        name_width: int,
        width: int,
    ) -> Iterator[Text]:
        cells = [[Text(h, style="bold") for h in headers], *rows]
        for i, row in enumerate(cells):
            line = Text()
            for column, (cell, cell_width) in enumerate(zip(row, widths, strict=True)):
                if column:
                    line.append(_GAP)
                if column == 2:  # the name, after the start time
                    name = Text("name", style="bold") if i == 0 else Text(names[i - 1])
                    line.append_text(_fit(name, name_width))
                    line.append(" " * (name_width - cell_len(name.plain)) + _GAP)
                right = headers[column] in ("spans", "tokens")
                padding = " " * (cell_width - cell_len(cell.plain))
                line.append_text(Text(padding) + cell if right else cell + Text(padding))
            line.rstrip()
            yield _fit(line, width)

    def _two_lines_each(
        self, rows: list[list[Text]], names: list[str], width: int
    ) -> Iterator[Text]:
        for t, row, name in zip(self.traces, rows, names, strict=True):
            trace_id, started, _, duration, _, _ = row
            yield _fit(Text.assemble(trace_id, _GAP, (name, "bold")), width)
            errors = Text(_count(t.errors, "error"), style="red" if t.errors else "")
            line = Text.assemble("  ", started, _GAP, _count(t.spans, "span"), _GAP, duration)
            line.append_text(Text.assemble(_GAP, _count(t.tokens, "token"), _GAP, errors))
            yield _fit(line, width)


def _count(number: int, what: str) -> str:
    return f"{number or 'no'} {what}{'' if number == 1 else 's'}"


def _figures(t: TraceSummary) -> list[Text]:
    return [
        Text(printable(t.root_span_id)),
        Text(_clock(t.start)),
        Text(str(t.spans)),
        Text(_duration(t.duration_s)),
        Text(str(t.tokens) if t.tokens else "-"),
        Text(str(t.errors), style="red") if t.errors else Text("-"),
    ]


# --- one trace as a tree ----------------------------------------------------------------------


def trace_tree(rows: Sequence[dict[str, Any]], root_span_id: str) -> _TraceTree:
    """One trace: a line per span (name, type, model with its size and quantization, duration,
    tokens, time to first token, error), then a `⚠` line per warning the span carries
    (`metadata.warnings`), children in start order under their first parent.

    A span's figures that do not fit on its line go on the next, indented under its name; a name
    or error too long for the line is shortened. Any depth prints (no recursion). Guides indent
    the first `INDENT_LEVELS` levels; deeper spans stay at that indent and show their depth
    (`(depth 37)`, the top span's being 0), so names are never pushed off the line.
    """
    return _TraceTree(rows, root_span_id)


class _TraceTree:
    def __init__(self, rows: Sequence[dict[str, Any]], root_span_id: str) -> None:
        self.rows = rows
        self.root_span_id = root_span_id

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        yield _fit(self._heading(), width)
        for prefix, continuation, row in self._walk():
            yield from _span_lines(prefix, continuation, row, width)
            yield from _warning_lines(console, continuation, row, width)

    def _heading(self) -> Text:
        heading = Text.assemble(("trace ", "dim"), (printable(self.root_span_id), "bold"))
        try:
            summary = summarize(self.root_span_id, self.rows)
        except Exception:  # a malformed row: the tree below still shows every span
            return heading
        return heading.append(f"  {summary.spans} spans, {_duration(summary.duration_s)}", "dim")

    def _walk(self) -> Iterator[tuple[Text, Text, dict[str, Any]]]:
        """Each span, depth first, with its first line's guides and its other lines' guides."""
        by_span_id = {_key(r.get("span_id")): r for r in self.rows}
        children: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for row in self.rows:
            parents = row.get("span_parents")
            first = _key(parents[0]) if isinstance(parents, list) and parents else None
            children[first if first in by_span_id else None].append(row)
        # Depth-first with an explicit stack: (row, depth, guides of its ancestors, is last).
        stack: list[tuple[dict[str, Any], int, str, bool]] = []

        def push_children(parent: Any, depth: int, guides: str) -> None:
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
            prefix = Text().append(guides + ("└── " if last else "├── "), style="dim")
            if depth > INDENT_LEVELS:
                prefix.append(f"(depth {depth - 1}) ", style="dim")  # the trace's top span is 0
            child_guides = (
                guides + ("    " if last else "│   ") if depth < INDENT_LEVELS else guides
            )
            span_id = _key(row.get("span_id"))
            below = "│ " if children.get(span_id) else "  "
            yield prefix, Text().append(child_guides + below, style="dim"), row
            push_children(span_id, depth + 1, child_guides)


def _key(value: Any) -> Any:
    """A span id as a dict key (a malformed row's id may be a list)."""
    return value if isinstance(value, (str, int, float, type(None))) else printable(value)


def _span_lines(prefix: Text, continuation: Text, row: dict[str, Any], width: int) -> list[Text]:
    """A span's label after `prefix`, its parts filled into lines of `width`; the lines after
    the first start with `continuation`."""
    try:
        name, kind, parts = _label(row)
    except Exception:  # a malformed row is shown, not a failure
        name, kind, parts = (
            Text(f"(a span that cannot be shown: {printable(row.get('id'))})"),
            "",
            [],
        )
    room = max(width - cell_len(prefix.plain) - cell_len(kind), 1)
    first = prefix + _fit(name, room)
    if kind:
        first.append(kind, style="dim")
    lines = [first]
    for part in parts:
        line = lines[-1]
        if cell_len(line.plain) + len(_GAP) + cell_len(part.plain) <= width:
            line.append(_GAP)
            line.append_text(part)
        else:
            lines.append(continuation + part)
    return [_fit(line, width) for line in lines]


def _label(row: dict[str, Any]) -> tuple[Text, str, list[Text]]:
    """The span's name, its type (` [llm]`) and its other parts: model, duration, tokens, time
    to first token, error. Only the name, the model and the error are ever shortened."""
    attributes = _mapping(row.get("span_attributes"))
    metrics = _mapping(row.get("metrics"))
    metadata = _mapping(row.get("metadata"))
    name = Text(printable(span_name({"span_attributes": attributes})[:_NAME_CHARS]), "bold")
    kind = f" [{printable(attributes['type'])[:20]}]" if attributes.get("type") else ""
    parts: list[Text] = []
    if metadata.get("model"):
        model = printable(metadata["model"])[:_NAME_CHARS]
        size = _model_size(metadata.get("model_details"))
        parts.append(Text(f"{model} ({size})" if size else model, style="cyan"))
    start, end = _seconds(metrics, "start"), _seconds(metrics, "end")
    duration = end - start if start is not None and end is not None else None
    server = _seconds(metrics, "total_duration")
    if duration is not None:
        timing = Text(_duration(duration))
        if server is not None:
            timing.append(f" (ollama {_duration(server)})", style="dim")
        parts.append(timing)
    elif start is not None:
        parts.append(Text("(not ended)", style="yellow"))
    tokens = _tokens(metrics)
    if tokens:
        parts.append(Text(tokens, style="green"))
    ttft = _seconds(metrics, "time_to_first_token")
    # A stream's first token says something; a whole reply's arrival repeats the duration.
    streamed = metadata.get("stream", ttft is not None and (duration or 0) > ttft / 0.9)
    if ttft is not None and streamed is True:
        parts.append(Text(f"first token {_duration(ttft)}", style="magenta"))
    error = _error_line(row.get("error"))
    if error:
        if len(error) > _ERROR_CHARS:
            error = error[: _ERROR_CHARS - 3] + "..."
        parts.append(Text(f"error: {error}", style="bold red"))
    return name, kind, parts


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _model_size(details: Any) -> str:
    """`8.2B Q4_K_M`: the model's size and quantization (`metadata.model_details`), if known."""
    details = _mapping(details)
    size = " ".join(
        printable(details[key])[:20] for key in ("parameter_size", "quantization_level")
        if details.get(key)
    )  # fmt: skip
    return size


def _warning_lines(
    console: Console, indent: Text, row: dict[str, Any], width: int
) -> Iterator[Text]:
    """A `⚠` line per warning of the span (`metadata.warnings`), under it, each wrapped to the
    width left after `indent`."""
    warnings = _mapping(row.get("metadata")).get("warnings")
    if not isinstance(warnings, list):
        return
    for warning in warnings:
        yield from _wrapped(console, indent, "⚠ ", Text(printable(warning), style="yellow"), width)


def _wrapped(console: Console, indent: Text, marker: str, text: Text, width: int) -> Iterator[Text]:
    """`text` wrapped to the width left after `indent` and `marker`: its first line behind
    both, the others behind the indent and blanks as wide as the marker."""
    inset = cell_len(indent.plain) + cell_len(marker)
    for i, line in enumerate(text.wrap(console, max(width - inset, 20))):
        line.rstrip()
        lead = Text(marker if i == 0 else " " * cell_len(marker), style=line.style)
        yield Text.assemble(indent, lead, line)


# --- the Ollama calls per model ---------------------------------------------------------------

# What the columns of `stats_table` hold, printed under it.
_STATS_LEGEND = (
    "in / out: prompt / output tokens; p50 / p95: duration of a call; tok/s: median output"
    " tokens per second; cold: cold starts; trunc: truncated prompts; fmt: format errors"
)


def stats_table(stats: Sequence[ModelStats]) -> _StatsTable:
    """One row per model: calls, errors, median and p95 duration, prompt and output tokens,
    median output tokens per second, cold starts, truncated prompts, format errors; then what
    the columns hold. Model names are folded onto more lines when long, figures never cut."""
    return _StatsTable(stats)


class _StatsTable:
    def __init__(self, stats: Sequence[ModelStats]) -> None:
        self.stats = stats

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0))
        table.add_column("model", overflow="fold")
        for column in ("calls", "err", "p50", "p95", "in", "out", "tok/s", "cold", "trunc", "fmt"):
            table.add_column(column, justify="right", no_wrap=True)
        for s in self.stats:
            table.add_row(
                Text(printable(s.model)[:_NAME_CHARS]),
                Text(str(s.calls)),
                Text(str(s.errors), style="red") if s.errors else Text("-"),
                Text(_duration(s.median_s)),
                Text(_duration(s.p95_s)),
                Text(_short_count(s.prompt_tokens)),
                Text(_short_count(s.completion_tokens)),
                Text(f"{s.median_tokens_per_second:.1f}" if s.median_tokens_per_second else "-"),
                Text(str(s.cold_starts) if s.cold_starts else "-"),
                _flagged(s.truncated_prompts),
                _flagged(s.format_errors),
            )
        yield table
        yield from _wrapped(
            console, Text(), "", Text(_STATS_LEGEND, style="dim"), options.max_width
        )


def _flagged(count: int) -> Text:
    return Text(str(count), style="yellow") if count else Text("-")


def _short_count(tokens: int) -> str:
    """`950`, `12.3k`, `4.10M`: a token count in at most 6 characters."""
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
    lines = [line for line in str(error).strip().split("\n") if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        # The exception starts at the first line the last frame does not indent.
        frames = [i for i, line in enumerate(lines) if line.startswith("  File ")]
        after = lines[frames[-1] + 1 :] if frames else lines[1:]
        start = next((i for i, line in enumerate(after) if not line[0].isspace()), None)
        if start is not None:  # `ollama._types.ResponseError: ...` is shown as `ResponseError: ...`
            name, colon, text = " ".join(after[start:]).partition(": ")
            lines = [name.rpartition(".")[2] + colon + text]
    return printable(re.sub(r"[ \t]+", " ", " ".join(lines)).strip())


def _tokens(metrics: dict[str, Any]) -> str:
    prompt, completion = metrics.get("prompt_tokens"), metrics.get("completion_tokens")
    total = metrics.get("tokens")
    parts = []
    if _is_number(prompt):
        parts.append(f"{int(prompt)} in")
    if _is_number(completion):
        parts.append(f"{int(completion)} out")
    if not parts and _is_number(total):
        parts.append(f"{int(total)}")
    return "tokens " + " / ".join(parts) if parts else ""


def _is_number(value: Any) -> TypeGuard[float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value  # not NaN
        and abs(value) != float("inf")
    )


def _seconds(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if _is_number(value) else None


def _start(row: dict[str, Any]) -> float:
    start = _mapping(row.get("metrics")).get("start")
    return float(start) if _is_number(start) else float("inf")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    try:
        return datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):  # a start no calendar holds
        return "-"
