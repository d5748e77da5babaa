"""Token ownership does not depend on which set-up functions were called, nor in which order:
Braintrust's own LangChain set-up (its `auto_instrument()`, its global handler, its handler
passed per call) plus our core `setup_ollama()`, with this adapter installed and
`setup_langchain()` never called, counts each Ollama call's tokens once. Each order runs in a
fresh interpreter, so "before" and "after" Braintrust's handler module is imported are real;
and `setup_ollama()` does not import LangChain to get there."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import braintrust
import pytest
from support.spans import only, span_tree

from .traces import TOKEN_KEYS, assert_tokens_counted_once, sdk_spans

PROGRAM = Path(__file__).parent / "programs" / "set_up_in_order.py"
TESTS = Path(__file__).parent.parent

# Each a fresh interpreter (seconds each): the orders that differ in what is imported when.
ORDERS = [
    ("setup_ollama", "braintrust set-up"),
    ("braintrust set-up", "setup_ollama"),
    ("setup_ollama", "per-call"),
    ("setup_ollama", "braintrust set-up", "setup_langchain", "per-call"),
]
# Braintrust's auto_instrument() sets LangChain up since its handler moved into braintrust (0.12).
if (
    "langchain"
    in inspect.signature(getattr(braintrust, "auto_instrument", lambda: None)).parameters
):
    ORDERS += [
        ("setup_ollama", "braintrust.auto_instrument"),
        ("braintrust.auto_instrument", "setup_ollama"),
    ]


def run_program(steps: tuple[str, ...]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("OLLAMA_HOST", None)
    done = subprocess.run(
        [sys.executable, str(PROGRAM), *steps],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("steps", ORDERS, ids=" then ".join)
def test_any_order_of_set_up_counts_tokens_once(steps: tuple[str, ...]) -> None:
    result = run_program(steps)

    rows = result["rows"]
    assert span_tree(rows) == [
        "RunnableSequence",
        "  ChatPromptTemplate",
        "  ChatOllama",
        "    ollama.chat",
    ]
    assert not set(only(rows, "ChatOllama").get("metrics") or {}) & set(TOKEN_KEYS)
    assert only(rows, "ollama.chat")["metrics"]["prompt_tokens"] == 21
    assert len(sdk_spans(rows)) == 1
    assert_tokens_counted_once(rows, tuple(result["served"]))
    if steps[0] == "setup_ollama":  # the hand-off waits for whoever imports Braintrust's handler
        imported = result["imported"]
        assert imported["setup_ollama"] is imported["before set-up"]
