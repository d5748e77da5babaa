"""`braintrust-ollama` argument handling: what a user types that is not the happy path."""

from __future__ import annotations

import json
from importlib.metadata import version

from braintrust_ollama.local.store import LocalStore
from support.ollama_server import Chat, Embed, FakeOllama, Generate
from support.runner import User
from support.spans import by_name, only


def _store_trace(user: User, root_span_id: str, name: str) -> None:
    """One finished one-span trace in the user's store, as the local logger writes it."""
    LocalStore(user.store_path).append(
        [
            {
                "id": root_span_id,
                "span_id": root_span_id,
                "root_span_id": root_span_id,
                "span_attributes": {"name": name, "type": "task"},
                "metrics": {"start": 1_700_000_000.0, "end": 1_700_000_001.0},
            }
        ]
    )


def test_version_names_the_package_and_the_sdks_it_traces(new_user: User) -> None:
    result = new_user.cli("--version")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == (
        f"braintrust-ollama {version('braintrust-ollama')}"
        f" (ollama {version('ollama')}, braintrust {version('braintrust')})\n"
    )


def test_an_ambiguous_prefix_lists_the_traces_it_matches(new_user: User) -> None:
    _store_trace(new_user, "c4ef66cd-1111", "first")
    _store_trace(new_user, "c4ef66cd-2222", "second")
    _store_trace(new_user, "0a0a0a0a-3333", "other")

    result = new_user.cli("traces", "show", "c4ef")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        "braintrust-ollama: 'c4ef' matches more than one trace: c4ef66cd-1111, c4ef66cd-2222\n"
    )
    chosen = new_user.cli("traces", "show", "c4ef66cd-2")
    assert chosen.returncode == 0 and "second" in chosen.stdout
    missing = new_user.cli("traces", "show", "ffff")
    assert missing.returncode == 1
    assert missing.stderr == f"braintrust-ollama: no trace 'ffff' in {new_user.store_path}\n"


def test_traces_show_last_on_an_empty_store_says_it_is_empty_and_where(new_user: User) -> None:
    result = new_user.cli("traces", "show", "last")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"braintrust-ollama: the local store {new_user.store_path} is empty."
        " Make a trace: braintrust-ollama demo\n"
    )


def test_traces_n_0_is_a_usage_error_not_an_empty_store(new_user: User) -> None:
    _store_trace(new_user, "c4ef66cd-1111", "first")
    for bad in ("0", "-3", "many"):
        result = new_user.cli("traces", "-n", bad)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.splitlines()[-1] == (
            "braintrust-ollama traces: error: argument -n/--limit: expected a whole number of"
            f" traces, at least 1: {bad!r}"
        )
    one = new_user.cli("traces", "-n", "1")
    assert one.returncode == 0 and "c4ef66cd-1111" in one.stdout


def test_demo_records_a_tool_call_with_other_argument_names_and_goes_on(new_user: User) -> None:
    with FakeOllama() as server:
        server.reply(
            "/api/chat",
            Chat("Rayleigh scattering."),
            Chat(
                "",
                tool_calls=[
                    {
                        "function": {
                            "name": "get_current_weather",
                            "arguments": {"location": "Paris"},
                        }
                    }
                ],
            ),
            Chat("1 2 3 4 5"),
        )
        server.reply("/api/generate", Generate("A joke."))
        server.reply("/api/embed", Embed(dimensions=3))
        new_user.ollama_host = server.url
        result = new_user.cli("demo", "--model", "tiny-model")

    assert result.returncode == 1  # one demo call failed
    assert "Traceback" not in result.stderr
    assert "get_current_weather" in result.stdout and "ollama.embed" in result.stdout  # the tree
    assert "tool call      tiny-model       error: get_current_weather() got an unexpected" in (
        result.stdout
    )

    rows = json.loads(new_user.cli("traces", "show", "last", "--json").stdout)
    tool = only(rows, "get_current_weather")
    assert tool["span_attributes"]["type"] == "tool"
    assert tool["input"] == {"location": "Paris"}
    assert "unexpected keyword argument 'location'" in tool["error"]
    assert len(by_name(rows, "ollama.chat")) == 3 and only(rows, "ollama.embed")
    root = only(rows, "braintrust-ollama demo")
    assert root["output"] == {"calls": 5, "failed": 1} and "error" not in root
