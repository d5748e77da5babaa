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
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from braintrust_ollama.local.stats import model_stats
from braintrust_ollama.local.store import (
    HOME_ENV,
    LocalStore,
    default_store_path,
    save_trace_attachments,
)
from braintrust_ollama.local.view import make_console, stats_table, trace_table, trace_tree

__all__ = ["main"]

_CANDIDATES = 5  # an ambiguous prefix lists this many of the traces it matches


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braintrust-ollama",
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
    )
    traces.add_argument(
        "-n", "--limit", type=_positive_int, default=20, help="how many (default 20)"
    )
    traces.add_argument("--json", action="store_true", help="print JSON instead of a table")
    actions = traces.add_subparsers(dest="action", metavar="{show,push,stats}")
    show = actions.add_parser("show", help="print one trace as a tree")
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
        help="every trace started since WHEN: an ISO date or time (2026-05-01, 2026-05-01T09:00)"
        " or an age (30m, 2h, 7d)",
    )
    push.add_argument("--project", required=True, help="the Braintrust project to send them to")
    stats = actions.add_parser(
        "stats",
        help="one row per model: calls, errors, latency, tokens, speed, cold starts, truncations",
        description="Per-model statistics of the Ollama calls in the local store: calls and"
        " errors, median and 95th-percentile duration, prompt and output tokens, median output"
        " tokens per second, cold starts, truncated prompts and format errors.",
    )
    stats.add_argument(
        "--since",
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
    try:
        if args.command == "demo":
            from braintrust_ollama.local.demo import run_demo

            return run_demo(make_console(), model=args.model, embed_model=args.embed_model)
        if args.action == "push":
            return _push(args.trace, since=args.since, project=args.project)
        if args.action == "show":
            return _show(args.trace, as_json=args.json, save_attachments=args.save_attachments)
        if args.action == "stats":
            return _stats(since=args.since, as_json=args.json)
        return _list(args.limit, as_json=args.json)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # one line, not a traceback, for a command-line user
        print(f"braintrust-ollama: error: {error}", file=sys.stderr)
        return 1


def _list(limit: int, *, as_json: bool) -> int:
    store = LocalStore()
    traces = store.traces(limit)
    if as_json:
        print(json.dumps([t.__dict__ for t in traces], indent=2))
    elif not traces:
        print(f"No traces yet in {store.path}. Make one: braintrust-ollama demo")
    else:
        make_console().print(trace_table(traces))
    return 0


def _show(trace: str, *, as_json: bool, save_attachments: Path | None = None) -> int:
    store = LocalStore()
    root_span_id = store.resolve(trace)
    if root_span_id is None:
        print(f"braintrust-ollama: {_not_found(store, trace)}", file=sys.stderr)
        return 1
    rows = store.rows(root_span_id)
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
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
        print(json.dumps([s.as_dict() for s in stats], indent=2, ensure_ascii=False))
    elif not stats:
        when = f" since {since}" if since else ""
        print(f"No Ollama calls{when} in {store.path}. Make some: braintrust-ollama demo")
    else:
        make_console().print(stats_table(stats))
    return 0


def _push(trace: str | None, *, since: str | None, project: str) -> int:
    from braintrust_ollama.local.push import push_traces

    store = LocalStore()
    if (trace is None) == (since is None):
        print("braintrust-ollama: push takes a trace (ID or last) or --since", file=sys.stderr)
        return 2
    if trace is not None:
        root_span_id = store.resolve(trace)
        if root_span_id is None:
            print(f"braintrust-ollama: no trace {trace!r} in {store.path}", file=sys.stderr)
            return 1
        roots = [root_span_id]
    else:
        roots = store.roots_since(_since(since or ""))
        if not roots:
            print(f"braintrust-ollama: no trace since {since} in {store.path}", file=sys.stderr)
            return 1
    report = push_traces(store, roots, project=project)
    for root_span_id in roots:
        print(f"pushed {root_span_id}")
    attachments = f", {report.attachments} attachments" if report.attachments else ""
    print(
        f"Pushed {report.traces} traces ({report.spans} spans{attachments}) to Braintrust"
        f" project {report.project!r} (id {report.project_id})."
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
        return f"the local store {store.path} is empty. Make a trace: braintrust-ollama demo"
    candidates = store.trace_ids(trace, limit=_CANDIDATES + 1) if trace != "last" else []
    if len(candidates) > 1:
        shown = candidates[:_CANDIDATES] + (["..."] if len(candidates) > _CANDIDATES else [])
        return f"{trace!r} matches more than one trace: " + ", ".join(shown)
    return f"no trace {trace!r} in {store.path}"


if __name__ == "__main__":
    sys.exit(main())
