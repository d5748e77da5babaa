"""The `braintrust-ollama` command: the demo, and the local traces.

    braintrust-ollama demo                  run a short traced Ollama app, print its trace
    braintrust-ollama traces                list recent traces in the local store
    braintrust-ollama traces show [ID|last] print one trace as a tree (--json: the raw rows;
                                            --save-attachments DIR: its images as files)
    braintrust-ollama traces push [ID|last|--since WHEN] --project NAME
                                            send stored traces to Braintrust (no duplicates)
    braintrust-ollama traces stats [--since WHEN] [--json]
                                            one row per model: calls, errors, latency, tokens,
                                            speed, cold starts, truncated prompts, format errors

Exit codes: 0 success, 1 a demo call failed or no single trace matched, 2 bad usage.
Errors are one line on stderr, never a traceback. When the reader of the output goes away
(`| head`), the rest of the output is dropped quietly and the command ends as it would have.
Hints name the command as the user ran it (`uv run braintrust-ollama`, `python -m
braintrust_ollama`, ...: `_command.cli_command`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TextIO

from braintrust_ollama._command import cli_command
from braintrust_ollama._delivery import DEFAULT_TIMEOUT_S
from braintrust_ollama.local.stats import model_stats
from braintrust_ollama.local.store import (
    HOME_ENV,
    MAX_STORE_MB_ENV,
    LocalStore,
    default_store_path,
    save_trace_attachments,
)
from braintrust_ollama.local.view import (
    json_text,
    make_console,
    printable,
    stats_table,
    trace_table,
    trace_tree,
)

__all__ = ["main"]

_CANDIDATES = 5  # an ambiguous prefix lists this many of the traces it matches


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=cli_command(),
        description="Braintrust tracing for Ollama: a demo and the local trace store.",
        epilog=f"Local traces live in {default_store_path()} (set {HOME_ENV} to move them).",
    )
    parser.add_argument("--version", action="version", version=_versions())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="run a short traced Ollama app and print its trace",
        description="Run a short traced Ollama app (chat, tool call, streamed chat, generate,"
        " embed) under one root span and print the trace. Uses the Ollama at OLLAMA_HOST when"
        " it answers, otherwise replays recorded Ollama traffic. Sends spans to Braintrust"
        " when BRAINTRUST_API_KEY is set, otherwise to the local store.",
    )
    demo.add_argument("--model", help="chat/generate model on a live Ollama (default: one it has)")
    demo.add_argument("--embed-model", help="embedding model on a live Ollama")

    traces = commands.add_parser(
        "traces",
        help="list recent local traces, show one, sum them up per model, or push them to Braintrust",
        description="List the recent traces in the local store, newest first: id, start, name,"
        " spans, duration, tokens and errors. `traces show` prints one as a tree, `traces stats`"
        " sums up the Ollama calls per model, `traces push` sends traces to Braintrust.",
    )
    traces.add_argument(
        "-n", "--limit", type=_positive_int, default=20, metavar="N", help="how many (default 20)"
    )
    traces.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions = traces.add_subparsers(dest="action", metavar="{show,push,stats}")
    show = actions.add_parser(
        "show",
        help="print one trace as a tree",
        description="Print one trace as a tree: each span with its type, model, duration,"
        " tokens, time to first token and error. Everything shown from a span is text: control"
        " characters are shown as escapes (\\u001b).",
    )
    show.add_argument("trace", nargs="?", default="last", help="a trace id (or prefix), or last")
    show.add_argument("--json", action="store_true", help="print the trace's raw span rows")
    show.add_argument(
        "--save-attachments",
        metavar="DIR",
        type=Path,
        help="also write the trace's attachments (images) into DIR, one file each",
    )
    push = actions.add_parser(
        "push",
        help="send local traces to a Braintrust project (once online)",
        description="Send local traces to a Braintrust project, with their span ids: pushing"
        " a trace again replaces it in Braintrust, it is never duplicated. Needs"
        " BRAINTRUST_API_KEY (and BRAINTRUST_APP_URL for a self-hosted Braintrust).",
    )
    push.add_argument("trace", nargs="?", help="a trace id (or prefix), or last")
    push.add_argument(
        "--since",
        metavar="WHEN",
        help="every trace started since WHEN: an ISO date or time (2026-05-01, 2026-05-01T09:00)"
        " or an age (30m, 2h, 7d)",
    )
    push.add_argument(
        "--project", required=True, metavar="NAME", help="the Braintrust project to send them to"
    )
    push.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="how long to wait for Braintrust's answer to the login and to each batch before"
        f" stopping (default {DEFAULT_TIMEOUT_S:g})",
    )
    stats = actions.add_parser(
        "stats",
        help="one row per model: calls, errors, latency, tokens, speed, cold starts, truncations",
        description="Per-model statistics of the Ollama calls in the local store: calls and"
        " errors, median and 95th-percentile duration, prompt and output tokens, median output"
        " tokens per second, cold starts, truncated prompts and format errors.",
    )
    stats.add_argument(
        "--since",
        metavar="WHEN",
        help="only calls started since WHEN: an ISO date or time (2026-05-01, 2026-05-01T09:00)"
        " or an age (30m, 2h, 7d)",
    )
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _versions() -> str:
    """`braintrust-ollama X (ollama Y, braintrust Z)`: what a bug report needs."""

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    return (
        f"braintrust-ollama {of('braintrust-ollama')}"
        f" (ollama {of('ollama')}, braintrust {of('braintrust')})"
    )


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of traces, at least 1: {text!r}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with _quiet_when_the_reader_goes():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "demo":
            from braintrust_ollama.local.demo import run_demo

            return run_demo(make_console(), model=args.model, embed_model=args.embed_model)
        if args.action == "push":
            return _push(args.trace, since=args.since, project=args.project, timeout=args.timeout)
        if args.action == "show":
            return _show(args.trace, as_json=args.json, save_attachments=args.save_attachments)
        if args.action == "stats":
            return _stats(since=args.since, as_json=args.json)
        return _list(args.limit, as_json=args.json)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # one line, not a traceback, for a command-line user
        print(f"braintrust-ollama: error: {printable(error)}", file=sys.stderr)
        return 1


class _QuietStdout:
    """stdout, until its reader goes away (`| head`): from then on output is dropped, quietly.

    Its file descriptor is pointed at the null device, so that what is still buffered, rich's
    own writes and the interpreter's last flush all succeed. The command then ends as it would
    have: the demo finishes its calls and stores its whole trace.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._reader_gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._stream.fileno())
        finally:
            os.close(null)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...: the stream's
        return getattr(self._stream, name)


@contextlib.contextmanager
def _quiet_when_the_reader_goes() -> Iterator[None]:
    stdout = sys.stdout
    if stdout is None or isinstance(stdout, _QuietStdout):
        yield
        return
    sys.stdout = _QuietStdout(stdout)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = stdout


def _list(limit: int, *, as_json: bool) -> int:
    store = LocalStore()
    traces = store.traces(limit)
    if as_json:
        print(json_text([t.__dict__ for t in traces]))
    elif not traces:
        print(f"No traces yet in {printable(store.path)}. Make one: {cli_command()} demo")
    else:
        make_console().print(trace_table(traces))
    dropped = store.dropped()
    if dropped.traces and not as_json:
        when = datetime.fromtimestamp(dropped.last_at or 0).strftime("%Y-%m-%d %H:%M")
        print(
            f"{dropped.traces} older traces ({dropped.rows} rows) were dropped to keep the store"
            f" under {(dropped.bound_bytes or store.max_bytes) / 1_000_000:g} MB"
            f" ({MAX_STORE_MB_ENV}), last at {when}."
        )
    return 0


def _show(trace: str, *, as_json: bool, save_attachments: Path | None = None) -> int:
    store = LocalStore()
    root_span_id = store.resolve(trace)
    if root_span_id is None:
        print(f"braintrust-ollama: {printable(_not_found(store, trace))}", file=sys.stderr)
        return 1
    rows = store.rows(root_span_id)
    if as_json:
        print(json_text(rows))
    else:
        make_console().print(trace_tree(rows, root_span_id))
    if save_attachments is not None:
        for path in save_trace_attachments(store, rows, save_attachments):
            print(f"braintrust-ollama: saved {path}", file=sys.stderr)
    return 0


def _stats(*, since: str | None, as_json: bool) -> int:
    store = LocalStore()
    stats = model_stats(store.model_spans(_since(since) if since else None))
    if as_json:
        print(json_text([s.as_dict() for s in stats]))
    elif not stats:
        when = f" since {printable(since)}" if since else ""
        print(f"No Ollama calls{when} in {printable(store.path)}. Make some: {cli_command()} demo")
    else:
        make_console().print(stats_table(stats))
    return 0


def _push(trace: str | None, *, since: str | None, project: str, timeout: float) -> int:
    from braintrust_ollama.local.push import PushError, push_traces

    store = LocalStore()
    if (trace is None) == (since is None):
        print("braintrust-ollama: push takes a trace (ID or last) or --since", file=sys.stderr)
        return 2
    if trace is not None:
        root_span_id = store.resolve(trace)
        if root_span_id is None:
            print(
                f"braintrust-ollama: no trace {printable(repr(trace))} in {printable(store.path)}",
                file=sys.stderr,
            )
            return 1
        roots = [root_span_id]
    else:
        roots = store.roots_since(_since(since or ""))
        if not roots:
            print(
                f"braintrust-ollama: no trace since {printable(since)} in {printable(store.path)}",
                file=sys.stderr,
            )
            return 1
    try:
        report = push_traces(store, roots, project=project, timeout_s=timeout)
    except PushError as error:
        for root_span_id in error.report.traces:
            print(f"pushed {printable(root_span_id)}")
        print(
            f"braintrust-ollama: Braintrust did not take every trace ({printable(error.reason)}):"
            " pushed"
            f" {len(error.report.traces)} of {len(roots)} traces ({error.report.spans} spans);"
            " push again to send the rest: nothing is duplicated",
            file=sys.stderr,
        )
        return 1
    for root_span_id in report.traces:
        print(f"pushed {printable(root_span_id)}")
    attachments = f", {report.attachments} attachments" if report.attachments else ""
    print(
        f"Pushed {len(report.traces)} traces ({report.spans} spans{attachments}) to Braintrust"
        f" project {printable(repr(report.project))} (id {printable(report.project_id)})."
    )
    return 0


def _since(when: str) -> float:
    """Epoch seconds from an ISO date/time (local time unless it says) or an age: 30m, 2h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if when[:-1].isdigit() and when[-1:] in units:
        return time.time() - int(when[:-1]) * units[when[-1]]
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"--since {when!r}: expected a date, a time or an age like 2h") from None
    return moment.astimezone().timestamp()


def _not_found(store: LocalStore, trace: str) -> str:
    """Why `trace` names no single trace: an empty store, an ambiguous prefix, or no match."""
    if not store.trace_ids(limit=1):
        return f"the local store {store.path} is empty. Make a trace: {cli_command()} demo"
    candidates = store.trace_ids(trace, limit=_CANDIDATES + 1) if trace != "last" else []
    if len(candidates) > 1:
        shown = candidates[:_CANDIDATES] + (["..."] if len(candidates) > _CANDIDATES else [])
        return f"{trace!r} matches more than one trace: " + ", ".join(shown)
    return f"no trace {trace!r} in {store.path}"


if __name__ == "__main__":
    sys.exit(main())
