"""`braintrust-ollama demo` end to end: a new user's first command, with and without Ollama."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.ollama_server import Chat, Embed, Error, FakeOllama, Generate
from support.runner import User
from support.sdk import HAS_THINK
from support.spans import by_name, children_of, choices, names, only, reply_of, roots

STORE_LINE = (
    "braintrust-ollama: traces go to the local store {store}"
    " (view them: braintrust-ollama traces show last)\n"
)
CALLS = ["ollama.chat", "ollama.chat", "get_current_weather", "ollama.chat", "ollama.generate",
         "ollama.embed"]  # fmt: skip


@pytest.fixture(scope="module")
def replayed(
    tmp_path_factory: pytest.TempPathFactory, closed_port: int
) -> tuple[User, subprocess.CompletedProcess[str]]:
    """One demo run by a new user with no Ollama server: the replay path."""
    user = User(tmp_path_factory.mktemp("home"), f"127.0.0.1:{closed_port}")
    return user, user.cli("demo")


def _tree_lines(stdout: str) -> dict[str, list[str]]:
    """The printed tree's span lines, by span name; a span's figures that went on to the next
    line (under its name) are joined to its line."""
    lines: dict[str, list[str]] = {}
    last: tuple[str, int] | None = None
    for line in stdout.splitlines():
        match = re.match(r"^[\s│├└─]*[├└]── (.+?) \[", line)
        if match:
            lines.setdefault(match.group(1), []).append(line)
            last = (match.group(1), len(lines[match.group(1)]) - 1)
        elif last is not None and re.match(r"^[\s│]+\S", line):
            name, i = last
            lines[name][i] += "  " + line.lstrip(" │")
        else:
            last = None
    return lines


def test_demo_without_ollama_replays_and_prints_the_trace(
    replayed: tuple[User, subprocess.CompletedProcess[str]],
) -> None:
    user, result = replayed
    assert result.returncode == 0, result.stderr
    first, *_ = result.stdout.splitlines()
    assert first == (
        f"No Ollama answered at http://{user.ollama_host}, so the demo replays real Ollama"
        " traffic recorded by open-source projects."
    )
    tree = _tree_lines(result.stdout)
    assert list(tree) == ["braintrust-ollama demo", *dict.fromkeys(CALLS)]
    chat, tool_chat, streamed = tree["ollama.chat"]
    assert "qwen3.6:latest" in chat and "tokens 21 in / 369 out" in chat
    assert "tokens 292 in / 143 out" in tool_chat
    assert "tokens 21 in / 889 out" in streamed and "first token" in streamed
    assert (
        "llama3" in tree["ollama.generate"][0]
        and "tokens 17 in / 63 out" in tree["ollama.generate"][0]
    )
    assert "all-minilm" in tree["ollama.embed"][0] and "tokens 7 in" in tree["ollama.embed"][0]
    assert "\x1b[" not in result.stdout  # no colours when stdout is not a terminal


def test_demo_prints_nothing_on_stderr_but_where_traces_go(
    replayed: tuple[User, subprocess.CompletedProcess[str]],
) -> None:
    user, result = replayed
    assert result.stderr == STORE_LINE.format(store=user.store_path)
    assert user.store_path.is_file()


def test_traces_lists_the_demo_trace(
    replayed: tuple[User, subprocess.CompletedProcess[str]],
) -> None:
    user, demo = replayed
    root_span_id = demo.stdout.rsplit("traces show ", 1)[1].strip()
    listed = user.cli("traces")
    assert listed.returncode == 0 and listed.stderr == ""
    header, row = listed.stdout.splitlines()
    assert header.split() == ["trace", "started", "name", "spans", "duration", "tokens", "errors"]
    assert row.startswith(root_span_id) and "braintrust-ollama demo" in row
    spans, _, _, tokens, errors = row.split()[-5:]  # spans, "48.1 ms", tokens, errors
    assert (spans, tokens, errors) == ("7", "1822", "-")

    as_json = json.loads(user.cli("traces", "--json").stdout)
    assert [(t["root_span_id"], t["spans"], t["tokens"], t["errors"]) for t in as_json] == [
        (root_span_id, 7, 390 + 435 + 910 + 80 + 7, 0)
    ]


def test_traces_show_last_prints_the_same_tree(
    replayed: tuple[User, subprocess.CompletedProcess[str]],
) -> None:
    user, demo = replayed
    root_span_id = demo.stdout.rsplit("traces show ", 1)[1].strip()
    shown = user.cli("traces", "show", "last")
    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout.splitlines()[0].startswith(f"trace {root_span_id}  7 spans")
    tree_in_demo = demo.stdout.split("\n\n")[1]
    assert shown.stdout.strip() == tree_in_demo.strip()
    by_prefix = user.cli("traces", "show", root_span_id[:8])
    assert by_prefix.stdout == shown.stdout


def test_traces_show_json_is_the_merged_rows(
    replayed: tuple[User, subprocess.CompletedProcess[str]],
) -> None:
    user, _ = replayed
    shown = user.cli("traces", "show", "last", "--json")
    assert shown.returncode == 0 and shown.stderr == ""
    rows = json.loads(shown.stdout)
    assert len({r["id"] for r in rows}) == len(rows) == 7  # one row per span
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "braintrust-ollama demo"
    assert names(children_of(rows, root)) == CALLS
    assert root["metrics"]["end"] >= root["metrics"]["start"]
    streamed = by_name(rows, "ollama.chat")[2]
    assert streamed["metadata"]["stream"] is True
    assert reply_of(streamed)["content"] == "1\n2\n3\n4\n5"
    if HAS_THINK:  # SDKs before ollama 0.5.2 drop the thinking the server sends
        (reasoning,) = reply_of(streamed)["reasoning"]
        assert reasoning["content"].startswith("Here's a thinking process:")
    else:
        assert "reasoning" not in reply_of(streamed)
    assert streamed["metrics"]["completion_tokens"] == 889
    assert (
        0
        < streamed["metrics"]["time_to_first_token"]
        < streamed["metrics"]["end"] - streamed["metrics"]["start"]
    )
    tool_call = reply_of(by_name(rows, "ollama.chat")[1])["tool_calls"][0]
    assert tool_call["function"] == {
        "name": "get_current_weather",
        "arguments": '{"city":"Paris"}',
    }
    tool = only(rows, "get_current_weather")
    assert tool["span_attributes"]["type"] == "tool"
    assert tool["output"] == "Paris: 18 C, light rain"
    embed = only(rows, "ollama.embed")
    assert embed["input"] == ["Why is the sky blue?"] and embed["metrics"]["prompt_tokens"] == 7


def test_demo_against_a_live_ollama(new_user: User) -> None:
    with FakeOllama() as server:
        server.reply(
            "/api/chat",
            Chat("Rayleigh scattering.", prompt_eval_count=14, eval_count=4),
            Chat(
                "",
                tool_calls=[
                    {"function": {"name": "get_current_weather", "arguments": {"city": "Paris"}}}
                ],
                prompt_eval_count=90,
                eval_count=20,
            ),
            Chat(
                "1 2 3 4 5", thinking="Counting, one at a time.", prompt_eval_count=12, eval_count=9
            ),
        )
        server.reply("/api/generate", Generate("Why did the span cross the trace?", eval_count=8))
        server.reply("/api/embed", Embed(dimensions=3, prompt_eval_count=6))
        new_user.ollama_host = server.url
        result = new_user.cli("demo")
        paths = [r.path for r in server.requests]

    assert result.returncode == 0, result.stderr
    assert result.stderr == STORE_LINE.format(store=new_user.store_path)
    assert result.stdout.splitlines()[0] == f"Using the Ollama server at {server.url}."
    assert paths == [
        "/api/version",
        "/api/tags",
        "/api/chat",
        "/api/chat",
        "/api/chat",
        "/api/generate",
        "/api/embed",
    ]
    assert 'get_current_weather({"city": "Paris"}) -> Paris: 18 C, light rain' in result.stdout
    tree = _tree_lines(result.stdout)
    assert list(tree) == ["braintrust-ollama demo", *dict.fromkeys(CALLS)]
    chat, tool_chat, streamed = tree["ollama.chat"]
    assert "llama3.2" in chat and "tokens 14 in / 4 out" in chat
    assert "tokens 90 in / 20 out" in tool_chat
    assert "tokens 12 in / 9 out" in streamed and "first token" in streamed
    assert "tokens 31 in / 8 out" in tree["ollama.generate"][0]
    assert "tokens 6 in" in tree["ollama.embed"][0]

    rows = json.loads(new_user.cli("traces", "show", "last", "--json").stdout)
    streamed_row = by_name(rows, "ollama.chat")[2]
    expected = {"role": "assistant", "content": "1 2 3 4 5"}
    if HAS_THINK:
        expected["reasoning"] = [{"content": "Counting, one at a time."}]
    assert streamed_row["output"] == choices(expected)


def test_demo_shows_a_failed_call_and_exits_1(new_user: User) -> None:
    with FakeOllama() as server:
        server.reply(
            "/api/generate", Error(404, 'model "llama3.2" not found, try pulling it first')
        )
        new_user.ollama_host = server.url
        result = new_user.cli("demo")

    assert result.returncode == 1
    assert result.stderr == STORE_LINE.format(store=new_user.store_path)  # no traceback
    generate_line = _tree_lines(result.stdout)["ollama.generate"][0]
    assert 'error: ResponseError: model "llama3.2" not found, try pulling it first' in generate_line
    assert "ollama.embed" in _tree_lines(result.stdout)  # the app carried on


def test_braintrust_ollama_home_moves_the_store(new_user: User, tmp_path: Path) -> None:
    result = new_user.cli("traces", env={"BRAINTRUST_OLLAMA_HOME": str(tmp_path / "elsewhere")})
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == (
        f"No traces yet in {tmp_path / 'elsewhere' / 'traces.db'}. Make one: braintrust-ollama demo\n"
    )
