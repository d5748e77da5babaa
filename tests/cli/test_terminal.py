"""The CLI in an ordinary terminal and pipe, with what a model, a server or an HTTP client can
put into a span (tests/support/hostile.py): every view shows it as text, fits 80 columns with
no figure cut, goes quietly when its reader goes, and names itself as the user ran it.

The terminal cases run under a real pseudo-terminal (`User.in_terminal`, tests/support/runner.py)."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import threading
from pathlib import Path

import pytest
from braintrust_ollama.local.store import LocalStore
from rich.cells import cell_len
from support import hostile
from support.ollama_server import Chat, FakeOllama
from support.runner import CLI, User
from support.spans import roots

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a POSIX pseudo-terminal")

VIEWS = [
    ("traces",),
    ("traces", "--json"),
    ("traces", "show", "last"),
    ("traces", "show", "last", "--json"),
]


@pytest.fixture(scope="module")
def hostile_user(tmp_path_factory: pytest.TempPathFactory, closed_port: int) -> User:
    """A user whose store holds the hostile trace."""
    user = User(tmp_path_factory.mktemp("home"), f"127.0.0.1:{closed_port}")
    writer = user.run_python(Path(hostile.__file__), str(user.store_path))
    assert writer.returncode == 0, writer.stderr
    return user


def _visible_text_checks(view: tuple[str, ...], shown: str) -> None:
    """Markup and control characters from the rows are shown as the text they are."""
    if view == ("traces",):  # the root's name, shortened
        assert "root [/INST] summarise the" in shown
    else:
        assert "[/INST] summarise the thread [link=https://evil.example/phish]" in shown
        assert "GET \\u001b[2J\\u001b]0;owned" in shown


@pytest.mark.parametrize("view", VIEWS, ids=" ".join)
def test_every_view_shows_hostile_rows_as_text_in_a_pipe(hostile_user: User, view) -> None:
    result = hostile_user.cli(*view)  # decoded strictly: valid UTF-8, whatever the rows hold
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr == ""
    shown = result.stdout
    assert hostile.unsafe_characters(shown) == []
    if "--json" not in view:
        _visible_text_checks(view, shown)
        return
    if view[1] == "show":  # the raw rows, exactly: JSON escapes lose nothing
        store = LocalStore(hostile_user.store_path)
        assert json.loads(shown) == store.rows(store.resolve("last") or "")
    else:
        (listed,) = json.loads(shown)
        assert listed["name"] == f"root {hostile.HOSTILE}"


@pytest.mark.parametrize("view", VIEWS, ids=" ".join)
def test_every_view_shows_hostile_rows_as_text_in_an_80_column_terminal(
    hostile_user: User, view
) -> None:
    shown = hostile_user.in_terminal([str(CLI), *view], columns=80)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stderr == ""
    assert hostile.unsafe_characters(shown.stdout, terminal=True) == []
    assert "\x1b]" not in shown.stdout  # no title, clipboard or hyperlink sequence at all
    text = re.sub(r"\x1b\[[0-9;]*m", "", shown.stdout)
    lines = text.replace("\r\n", "\n").split("\n")
    if "--json" in view:  # JSON is not cut: the terminal wraps its long lines
        assert json.loads(text.replace("\r\n", "\n"))
    else:
        assert max(cell_len(line) for line in lines) <= 80
        _visible_text_checks(view, text)


def test_the_tree_shortens_a_200000_character_name_and_shows_every_span(hostile_user: User) -> None:
    shown = hostile_user.in_terminal([str(CLI), "traces", "show", "last"], columns=80)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", shown.stdout).splitlines()
    (long_line,) = [line for line in lines if "longnnnn" in line]
    assert cell_len(long_line) == 80 and long_line.endswith("…")
    assert len(lines) < 40  # one or two lines a span, not 200,000 characters' worth
    (chat,) = [line for line in lines if "ollama.chat" in line]
    assert "[/INST]" in chat and chat.endswith("… [llm]")  # the name is shortened, not its type
    assert any("tokens 12 in / 34 out" in line for line in lines)
    (error,) = [line for line in lines if "error: " in line]
    assert "error: ValueError: model said [/INST] summarise the thread" in error
    assert error.endswith("…")


def test_an_ambiguous_prefix_lists_hostile_trace_ids_as_text(new_user: User) -> None:
    for suffix in ("1", "2"):
        trace_id = f"c4\x1b]0;owned\x07{suffix}"
        LocalStore(new_user.store_path).append(
            [
                {
                    "id": trace_id,
                    "span_id": trace_id,
                    "root_span_id": trace_id,
                    "span_attributes": {"name": "x", "type": "task"},
                    "metrics": {"start": 1_700_000_000.0, "end": 1_700_000_001.0},
                }
            ]
        )
    result = new_user.cli("traces", "show", "c4")
    assert result.returncode == 1
    assert hostile.unsafe_characters(result.stderr) == []
    assert "c4\\u001b]0;owned\\u00071, c4\\u001b]0;owned\\u00072" in result.stderr


# --- pipes closed early ------------------------------------------------------------------------


@pytest.mark.parametrize("view", VIEWS, ids=" ".join)
def test_a_reader_that_goes_away_is_no_error(hostile_user: User, view) -> None:
    """`... | head` where head has already gone: the command ends quietly, exit status 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write
    process = hostile_user.run([str(CLI), *view], stdout=write_end)
    os.close(write_end)
    assert (process.returncode, process.stderr) == (0, "")


def test_demo_piped_into_head_exits_quietly_and_stores_its_whole_trace(new_user: User) -> None:
    """`braintrust-ollama demo | head -2`: head leaves while the demo runs its calls."""
    held = threading.Semaphore(0)
    with FakeOllama() as server:
        call = {"function": {"name": "get_current_weather", "arguments": {"city": "Paris"}}}
        server.reply(
            "/api/chat", Chat("Rayleigh."), Chat("", tool_calls=[call]), Chat("1 2", gate=held)
        )
        new_user.ollama_host = server.url
        demo = new_user.start([str(CLI), "demo"])
        assert demo.stdout is not None and demo.stderr is not None
        head = [demo.stdout.readline(), demo.stdout.readline()]
        demo.stdout.close()  # head -2 exits; the streamed chat is still waiting for its chunks
        for _ in range(10):
            held.release()
        assert demo.wait(timeout=60) == 0
        stderr = demo.stderr.read()
    assert head[0] == f"Using the Ollama server at {server.url}.\n"
    assert head[1].startswith("  chat ")
    assert "Traceback" not in stderr and "error" not in stderr
    assert len(stderr.splitlines()) == 1  # where the traces go
    store = LocalStore(new_user.store_path)
    rows = store.rows(store.resolve("last") or "")
    (root,) = roots(rows)
    assert root.get("error") is None
    assert root["output"] == {"calls": 5, "failed": 0}
    assert len(rows) == 7


# --- the demo at 80 columns ---------------------------------------------------------------------


def test_the_demo_fits_an_80_column_terminal_and_cuts_no_figure(new_user: User) -> None:
    shown = new_user.in_terminal([str(CLI), "demo"], columns=80)
    assert shown.returncode == 0, shown.stderr
    lines = re.sub(r"\x1b\[[0-9;]*m", "", shown.stdout).replace("\r\n", "\n").splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    text = "\n".join(lines)
    for figure in (
        "tokens 21 in / 369 out",
        "tokens 292 in / 143 out",
        "tokens 21 in / 889 out",
        "tokens 17 in / 63 out",
        "tokens 7 in",
        "(ollama 8.31 s)",
        "(ollama 14.1 ms)",
        "first token",
    ):
        assert figure in text, figure
    steps = [
        line
        for line in lines
        if re.match(r"  (chat|tool call|streamed chat|generate|embed) ", line)
    ]
    assert len(steps) == 5  # one line each, cut rather than wrapped
    assert "(714 chunks" in text or "chunks," in text


# --- hints and help -----------------------------------------------------------------------------


def _see_it_again(stdout: str) -> str:
    (hint,) = [line for line in stdout.splitlines() if line.startswith("See it again: ")]
    return hint.removeprefix("See it again: ")


def test_hints_name_the_command_on_path_as_it_is(new_user: User) -> None:
    demo = new_user.cli("demo")
    command = _see_it_again(demo.stdout)
    assert command.startswith("braintrust-ollama traces show ")
    assert new_user.cli(*shlex.split(command)[1:]).returncode == 0
    empty = User(new_user.home.with_name("empty"), new_user.ollama_host)
    assert empty.cli("traces").stdout.endswith("Make one: braintrust-ollama demo\n")


def test_hints_name_python_m_when_started_that_way(new_user: User) -> None:
    env = {"PATH": "/usr/bin:/bin"}  # the console script is not on PATH
    demo = new_user.run([sys.executable, "-m", "braintrust_ollama", "demo"], env=env)
    assert demo.returncode == 0, demo.stderr
    command = _see_it_again(demo.stdout)
    assert command.startswith(f"{shlex.quote(sys.executable)} -m braintrust_ollama traces show ")
    again = new_user.run(shlex.split(command), env=env)
    assert again.returncode == 0 and "braintrust-ollama demo" in again.stdout
    # The line saying where traces go names it the same way.
    assert f"{shlex.quote(sys.executable)} -m braintrust_ollama traces show last" in demo.stderr


def test_hints_name_the_script_by_its_path_when_it_is_not_on_path(new_user: User) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    demo = new_user.cli("demo", env=env)
    command = _see_it_again(demo.stdout)
    assert command.startswith(f"{shlex.quote(str(CLI))} traces show ")
    again = new_user.run(shlex.split(command), env=env)
    assert again.returncode == 0


def test_hints_under_uv_run_say_uv_run(new_user: User) -> None:
    """`uv run braintrust-ollama demo`, as the README says: uv runs the script with the project's
    environment on PATH and tells its children so (`UV_RUN_RECURSION_DEPTH`); the user's own
    shell has neither, so a bare `braintrust-ollama` there is `command not found`."""
    env = {"UV_RUN_RECURSION_DEPTH": "1", "UV": "/usr/local/bin/uv"}
    demo = new_user.cli("demo", env=env)
    assert _see_it_again(demo.stdout).startswith("uv run braintrust-ollama traces show ")
    assert "(view them: uv run braintrust-ollama traces show last)" in demo.stderr
    usage = new_user.cli("traces", "--help", env=env)
    assert usage.stdout.startswith("usage: uv run braintrust-ollama traces ")


def test_help_texts_are_complete_and_fit_80_columns(new_user: User) -> None:
    def help_of(*args: str) -> str:
        result = new_user.cli(*args, "--help", env={"COLUMNS": "80"})
        assert result.returncode == 0 and result.stderr == ""
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
        return result.stdout

    traces = help_of("traces")
    assert traces.split("\n\n")[1].startswith("List the recent traces in the local store")
    show = help_of("traces", "show")
    assert show.split("\n\n")[1].startswith("Print one trace")
    push = help_of("traces", "push")
    assert "--since WHEN" in push and "SINCE" not in push
    assert "--project NAME" in push
    # argparse writes the metavar once from Python 3.13 on
    assert "-n N, --limit N" in traces or "-n, --limit N" in traces
