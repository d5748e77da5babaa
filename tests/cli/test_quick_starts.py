"""Every README quick start and every file in `examples/` works offline: run as a new user with no
Braintrust key (a subprocess, fresh HOME, an in-process Ollama), it prints no traceback, exits
at once, and its trace can be read back with `braintrust-ollama traces show last`.

The core quick starts are here (they run on the oldest braintrust too); the adapters' quick
starts and `examples/` are in tests/examples, which needs every package installed.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from support.ollama_server import FakeOllama
from support.runner import User
from support.spans import children_of, names, roots

ROOT = Path(__file__).resolve().parents[2]
EXIT_S = 30.0  # generous: importing LangChain / LlamaIndex on a busy machine


def quick_start(readme: str, heading: str) -> str:
    """The first Python block after `heading` in `readme`."""
    text = (ROOT / readme).read_text()
    section = text[text.index(heading) :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"no Python block under {heading!r} in {readme}"
    return found.group(1)


def run_offline(user: User, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`code` as a script run by a new user with no Braintrust key, against a FakeOllama."""
    with FakeOllama() as server:
        user.ollama_host = server.url
        started = time.monotonic()
        result = user.run_python(code, *args, name="program.py")
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < EXIT_S
    return result


def store_line(user: User) -> str:
    return (
        f"braintrust-ollama: traces go to the local store {user.store_path}"
        " (view them: braintrust-ollama traces show last)"
    )


def assert_ollama_spans_under_one_root(rows: list[dict], root_name: str, *calls: str) -> None:
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == root_name
    ollama_spans = [r for r in rows if r["span_attributes"]["name"].startswith("ollama.")]
    assert sorted(names(ollama_spans)) == sorted(calls)
    for span in ollama_spans:
        assert span["metrics"]["completion_tokens"] > 0
        assert not span.get("error")
    assert all(r["span_id"] == root["span_id"] or r.get("span_parents") for r in rows)


@pytest.mark.parametrize("readme", ["README.md", "packages/core/README.md"])
def test_core_quick_start_offline(user: User, readme: str) -> None:
    heading = "## Quick start (core)" if readme == "README.md" else "## Quick start"
    result = run_offline(user, quick_start(readme, heading))
    assert result.stderr.splitlines() == [store_line(user)]
    rows = user.last_trace()
    assert_ollama_spans_under_one_root(rows, "answer", "ollama.chat", "ollama.generate")
    assert names(children_of(rows, roots(rows)[0])) == ["ollama.chat", "ollama.generate"]
