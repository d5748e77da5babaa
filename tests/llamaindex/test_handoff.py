"""Braintrust's own LlamaIndex set-up plus `setup_ollama()`, without `setup_llamaindex()`: what
someone following Braintrust's docs and then this suite's core quick start writes.

In any order, every model call is one `Ollama` span with its `ollama.chat` span under it (streams
included), and the trace's tokens are the server's. Braintrust's LlamaIndex handler logs no
tokens on its spans (braintrust 0.48 and later), so the SDK spans are the only ones counting.
Each program runs in its own process: the hand-off is process-wide import-time state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from braintrust.integrations.llamaindex import BraintrustSpanHandler
from braintrust_ollama import setup_ollama
from braintrust_ollama_llamaindex import unpatch_llamaindex
from llama_index.core.llms.llm import LLM
from llama_index.core.llms.structured_llm import StructuredLLM
from llama_index.llms.ollama import Ollama
from support.ollama_server import Chat, FakeOllama
from support.runner import TESTS, User, report
from support.spans import assert_tokens_counted_once, by_name, children_of, choices, roots

PROGRAM = Path(__file__).with_name("handoff_program.py")

ORDERS = {
    "auto_instrument_then_setup_ollama": ["auto_instrument", "setup_ollama"],
    # setup_ollama() first: the adapter is installed as LlamaIndex is imported (here by
    # auto_instrument(), from inside Braintrust's integration module).
    "setup_ollama_then_auto_instrument": ["setup_ollama", "auto_instrument"],
    "setup_ollama_then_handler_by_hand": [
        "setup_ollama",
        "import_llamaindex",
        "braintrust_handler",
    ],
}


def run_program(user: User, server: FakeOllama, steps: list[str]) -> dict[str, Any]:
    """What handoff_program.py reports, run by `user` against `server` with these steps."""
    done = user.run_python(PROGRAM, server.url, *steps, env={"PYTHONPATH": str(TESTS)})
    result: dict[str, Any] = report(done)
    return result


@pytest.mark.parametrize("order", ORDERS)
def test_braintrust_setup_and_setup_ollama_in_any_order_make_one_tree(
    order: str, ollama_server: FakeOllama, user: User
) -> None:
    tool_call = {"function": {"name": "multiply", "arguments": {"a": 2, "b": 3}}}
    ollama_server.reply(
        "/api/chat",
        Chat("Paris is the capital.", prompt_eval_count=12, eval_count=5),
        Chat("", tool_calls=[tool_call], prompt_eval_count=50, eval_count=14),
        Chat("2 times 3 is 6.", prompt_eval_count=70, eval_count=8),
    )

    result = run_program(user, ollama_server, ORDERS[order])

    assert result["setup_imported_llamaindex"] is False
    rows = result["rows"]
    stream_chat, agent = roots(rows)
    assert stream_chat["span_attributes"]["name"] == "Ollama"
    assert agent["span_attributes"]["name"] == "FunctionAgent"
    outputs = [
        choices({"role": "assistant", "content": "Paris is the capital."}),
        choices(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "ollama_call_multiply_0",
                        "type": "function",
                        "function": {"name": "multiply", "arguments": '{"a":2,"b":3}'},
                    }
                ],
            },
            "tool_calls",
        ),
        choices({"role": "assistant", "content": "2 times 3 is 6."}),
    ]
    llm_spans = by_name(rows, "Ollama")
    assert len(llm_spans) == 3  # one per model call
    for span, output in zip(llm_spans, outputs, strict=True):
        (sdk,) = children_of(rows, span)
        assert sdk["span_attributes"]["name"] == "ollama.chat"
        assert span["output"] == sdk["output"] == output
        assert span["metrics"]["end"] >= sdk["metrics"]["end"]
    assert_tokens_counted_once(rows, ollama_server.tokens_served())


PATCHED = {
    BraintrustSpanHandler: ("new_span", "prepare_to_exit_span", "prepare_to_drop_span"),
    Ollama: (
        "stream_chat",
        "astream_chat",
        "stream_complete",
        "astream_complete",
        "stream_structured_predict",
        "astream_structured_predict",
    ),
    StructuredLLM: ("stream_chat", "astream_chat"),
    LLM: ("stream", "astream"),
}


def test_setup_ollama_installs_the_adapter_and_unpatch_restores_exactly(traced: None) -> None:
    unpatch_llamaindex()
    originals = {
        (cls, name): cls.__dict__[name] for cls, names in PATCHED.items() for name in names
    }

    setup_ollama()

    for (cls, name), original in originals.items():
        patched = cls.__dict__[name]
        assert patched is not original, f"{cls.__name__}.{name} not patched"
        assert patched.__wrapped__ is original
    setup_ollama()  # idempotent: patched once
    assert all(
        cls.__dict__[name].__wrapped__ is original for (cls, name), original in originals.items()
    )

    unpatch_llamaindex()

    assert all(cls.__dict__[name] is original for (cls, name), original in originals.items())


def test_after_unpatch_llamaindex_imported_later_is_left_unpatched(
    ollama_server: FakeOllama, user: User
) -> None:
    """`unpatch_llamaindex()` removes the adapter until the next set-up, also from a LlamaIndex
    imported after it: a streamed call's `ollama.chat` span is then not under its `Ollama` span
    (as without the adapter), and its tokens are still counted once."""
    ollama_server.reply(
        "/api/chat",
        Chat("Paris is the capital.", prompt_eval_count=12, eval_count=5),
        Chat("", tool_calls=[{"function": {"name": "multiply", "arguments": {"a": 2, "b": 3}}}]),
        Chat("2 times 3 is 6."),
    )

    steps = ["setup_ollama", "unpatch_llamaindex", "import_llamaindex", "braintrust_handler"]
    rows = run_program(user, ollama_server, steps)["rows"]

    stream_chat = roots(rows)[0]
    assert stream_chat["span_attributes"]["name"] == "Ollama"
    assert children_of(rows, stream_chat) == []
    assert by_name(rows, "ollama.chat")[0] in roots(rows)
    assert_tokens_counted_once(rows, ollama_server.tokens_served())
