"""Every README quick start and every file in `examples/` works offline: run as a new user with no
Braintrust key (a subprocess, fresh HOME, an in-process Ollama), it prints no traceback, exits
at once, and its trace can be read back with `braintrust-ollama traces show last`.

The core quick starts are here (they run on the oldest braintrust too); the adapters' quick
starts and `examples/` are in tests/examples, which needs every package installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.ollama_server import FakeOllama
from support.spans import children_of, names, roots

ROOT = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("braintrust-ollama")
EXIT_S = 30.0  # generous: importing LangChain / LlamaIndex on a busy machine


def quick_start(readme: str, heading: str) -> str:
    """The first Python block after `heading` in `readme`."""
    text = (ROOT / readme).read_text()
    section = text[text.index(heading) :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"no Python block under {heading!r} in {readme}"
    return found.group(1)


def run_offline(
    tmp_path: Path, code: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`code` as a script run by a new user with no Braintrust key, against a FakeOllama."""
    home = tmp_path / "home"
    script = tmp_path / "program.py"
    script.write_text(code)
    with FakeOllama() as server:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "BRAINTRUST_OLLAMA_HOME": str(home),
            "OLLAMA_HOST": server.url,
            "LANG": "C.UTF-8",
        }
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, str(script), *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < EXIT_S
    return result, home


def last_trace(home: Path) -> list[dict]:
    shown = subprocess.run(
        [str(CLI), "traces", "show", "last", "--json"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(home),
             "BRAINTRUST_OLLAMA_HOME": str(home)},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(shown.stdout)


def store_line(home: Path) -> str:
    return (
        f"braintrust-ollama: traces go to the local store {home / 'traces.db'}"
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
def test_core_quick_start_offline(tmp_path: Path, readme: str) -> None:
    heading = "## Quick start (core)" if readme == "README.md" else "## Quick start"
    result, home = run_offline(tmp_path, quick_start(readme, heading))
    assert result.stderr.splitlines() == [store_line(home)]
    rows = last_trace(home)
    assert_ollama_spans_under_one_root(rows, "answer", "ollama.chat", "ollama.generate")
    assert names(children_of(rows, roots(rows)[0])) == ["ollama.chat", "ollama.generate"]
