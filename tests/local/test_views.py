"""`braintrust-ollama traces` and `traces show` on deep, wide and failing traces."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import braintrust
import pytest
from braintrust.logger import SpanImpl
from braintrust_ollama.local import logger as local_logger
from braintrust_ollama.local.store import LocalStore
from braintrust_ollama.local.view import json_text, printable
from support.runner import CLI, User


@pytest.fixture
def user(user: User, restore_braintrust: None) -> User:
    """The user (tests/local/conftest.py) whose store this process writes to (init_local_logger),
    read by the CLI."""
    local_logger.init_local_logger("views", path=user.store_path)
    return user


def _nested(depth: int) -> str:
    """A trace `depth` spans deep below its root (level 0); returns its root span id."""
    spans: list[Any] = [braintrust.start_span(name="level 0")]
    for level in range(1, depth + 1):
        spans.append(spans[-1].start_span(name=f"level {level}"))
    for span in reversed(spans):
        span.end()
    braintrust.flush()
    return cast(SpanImpl, spans[0]).root_span_id


def _show(user: User, *args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    return user.cli(*args, env={"COLUMNS": str(columns) if columns else None})


def test_a_2000_level_trace_prints(user: User) -> None:
    root = _nested(2000)
    shown = _show(user, "traces", "show", root)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stderr == ""
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"trace {root}  2001 spans")
    names = [re.search(r"level \d+", line).group(0) for line in lines[1:]]  # type: ignore[union-attr]
    assert names == [f"level {level}" for level in range(2001)]


def test_a_50_level_trace_shows_all_51_names_at_120_columns(user: User) -> None:
    _nested(50)
    shown = _show(user, "traces", "show", "last", columns=120)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()[1:]
    assert len(lines) == 51
    for level, line in enumerate(lines):
        assert len(line) <= 120
        assert re.search(rf"(── |\) )level {level}( \[task\])?  \d", line), line  # name, duration
        if level >= 12:  # past the indented levels, the depth is a number
            assert f"(depth {level}) level {level} " in line


def test_an_error_shows_its_exception_line_not_the_traceback_heading(user: User) -> None:
    with (
        pytest.raises(ValueError),
        braintrust.start_span(name="request"),
        braintrust.start_span(name="parse"),
    ):
        raise ValueError("boom")
    braintrust.flush()
    shown = _show(user, "traces", "show", "last")
    (parse,) = [line for line in shown.stdout.splitlines() if "parse" in line]
    assert parse.endswith("error: ValueError: boom")
    assert "Traceback" not in shown.stdout


def _in_terminal(user: User, *args: str, columns: int) -> str:
    """What the command prints in a terminal `columns` wide (colours removed)."""
    shown = user.in_terminal([str(CLI), *args], columns=columns)
    assert shown.returncode == 0, shown.stderr
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", shown.stdout)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")
def test_trace_ids_are_never_cut_in_a_60_column_terminal(user: User) -> None:
    with braintrust.start_span(name="a request with a rather long descriptive name") as span:
        span.log(output="fine")
    braintrust.flush()
    root = cast(SpanImpl, span).root_span_id
    assert root in _in_terminal(user, "traces", columns=60)
    assert root in _in_terminal(user, "traces", "show", "last", columns=60)


# --- what every view shows a row's data through -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ("plain text, [bold]markup[/bold] and ünïcode 漢字 👩‍💻", None),  # kept as it is
        ("\x1b[2J\x1b]0;owned\x07", "\\u001b[2J\\u001b]0;owned\\u0007"),
        ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
        ("\x00\x7f\x85\x9b\x9d", "\\u0000\\u007f\\u0085\\u009b\\u009d"),  # NUL, DEL, C1
        ("\u202eevil\u2066\u2028", "\\u202eevil\\u2066\\u2028"),  # reordering, separators
        (os.fsdecode(b"report-\xff.txt"), "report-\\udcff.txt"),  # a lone surrogate
        (12.5, "12.5"),
    ],
)
def test_printable_escapes_what_moves_or_reorders_the_terminal_and_nothing_else(data, shown):
    assert printable(data) == (data if shown is None else shown)


def test_json_text_is_terminal_safe_and_loads_back_to_exactly_the_rows() -> None:
    rows = [
        {
            "name": "".join(map(chr, range(0xA0))) + "\u202e\u2028" + os.fsdecode(b"\xff"),
            "nested": {"list": [1, 2.5, None, True, "[link=x]y[/link]"]},
        }
    ]
    text = json_text(rows)
    assert re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\ud800-\udfff]", text) is None
    text.encode("utf-8")  # no lone surrogate left
    assert json.loads(text) == rows


def test_json_text_prints_json_nested_deeper_than_python_can_recurse() -> None:
    deep: dict = {}
    inner = deep
    for _ in range(5000):
        inner["k"] = {}
        inner = inner["k"]
    loaded = json.loads(json_text([{"id": "deep", "input": deep}]))
    assert loaded[0]["id"] == "deep"
    level, depth = loaded[0]["input"], 0
    while isinstance(level, dict) and level:
        level, depth = level["k"], depth + 1
    if level == {}:  # this Python's json nests that deep (3.13 on): printed whole
        assert depth == 5000
    else:
        assert level == "[nested deeper than 500 levels: not shown]"
        assert depth == 498  # the list and the row are the first two of the 500 levels


def _trace_with_warnings(store: Path) -> None:
    start = 1_800_000_000.0
    root = {
        "id": "root",
        "span_id": "root",
        "root_span_id": "root",
        "created": "2026-08-12T10:11:12Z",
        "span_attributes": {"name": "summarise report", "type": "task"},
        "metrics": {"start": start, "end": start + 2.5},
    }
    chat = {
        "id": "chat",
        "span_id": "chat",
        "root_span_id": "root",
        "span_parents": ["root"],
        "created": "2026-08-12T10:11:12Z",
        "span_attributes": {"name": "ollama.chat", "type": "llm"},
        "metadata": {
            "provider": "ollama",
            "model": "qwen3:8b",
            "stream": False,
            "model_details": {
                "family": "qwen3",
                "parameter_size": "8.2B",
                "quantization_level": "Q4_K_M",
            },
            "prompt_truncated": True,
            "warnings": [
                "prompt truncated: Ollama kept 2050 of about 6004 prompt tokens (context window"
                " 4096); raise num_ctx",
                "[bold red]not markup[/]",
            ],
        },
        "metrics": {
            "start": start + 0.1,
            "end": start + 2.0,
            "total_duration": 1.9,
            "prompt_tokens": 2050,
            "completion_tokens": 128,
        },
    }
    generate = {
        **chat,
        "id": "gen",
        "span_id": "gen",
        "metrics": {"start": start + 2.1, "end": start + 2.4},
        "metadata": {
            "provider": "ollama",
            "model": "llama3.2",
            "model_details": {"family": "llama"},
            "warnings": ["output cut short: num_predict (128) reached"],
        },
    }
    LocalStore(store).append([root, chat, generate])


def test_a_span_shows_its_models_size_and_a_line_per_warning(user: User) -> None:
    _trace_with_warnings(user.store_path)
    shown = _show(user, "traces", "show", "root", columns=80)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "trace root  3 spans, 2.50 s",
        "└── summarise report [task]  2.50 s",
        "    ├── ollama.chat [llm]  qwen3:8b (8.2B Q4_K_M)  1.90 s (ollama 1.90 s)",
        "    │     tokens 2050 in / 128 out",  # a figure that does not fit goes below, whole
        "    │     ⚠ prompt truncated: Ollama kept 2050 of about 6004 prompt tokens",
        "    │       (context window 4096); raise num_ctx",
        "    │     ⚠ [bold red]not markup[/]",
        "    └── ollama.chat [llm]  llama3.2  300.0 ms",
        "          ⚠ output cut short: num_predict (128) reached",
    ]
