"""Token ownership does not depend on which set-up functions were called, nor in which order:
Braintrust's own LangChain set-up (its `auto_instrument()`, its global handler, its handler
passed per call) plus our core `setup_ollama()`, with this adapter installed and
`setup_langchain()` never called, counts each Ollama call's tokens once. Each order runs in a
fresh interpreter, so "before" and "after" Braintrust's handler module is imported are real;
and `setup_ollama()` does not import LangChain to get there."""

from __future__ import annotations

import inspect
from pathlib import Path

import braintrust
import pytest
from support.runner import TESTS, User, report
from support.spans import only, span_tree

from .traces import TOKEN_KEYS, assert_tokens_counted_once, sdk_spans

PROGRAM = Path(__file__).parent / "programs" / "set_up_in_order.py"

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


@pytest.mark.parametrize("steps", ORDERS, ids=" then ".join)
def test_any_order_of_set_up_counts_tokens_once(steps: tuple[str, ...], user: User) -> None:
    result = report(user.run_python(PROGRAM, *steps, env={"PYTHONPATH": str(TESTS)}))

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
