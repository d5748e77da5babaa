"""The adapters' README quick starts and every file in `examples/` work offline (see
tests/cli/test_quick_starts.py for how they are run): no key, no traceback, the trace readable
with `braintrust-ollama traces show last`.
"""

from __future__ import annotations

import json

from cli.test_quick_starts import (
    ROOT,
    assert_ollama_spans_under_one_root,
    quick_start,
    run_offline,
    store_line,
)
from support.runner import User
from support.spans import roots

# The FastAPI quick start defines an app; a client calls it once, as a user would with curl.
CALL_APP = """
from fastapi.testclient import TestClient as _TestClient
print(_TestClient(app).get({path!r}).text)
"""


def test_langchain_quick_start_offline(user: User) -> None:
    code = quick_start("packages/langchain/README.md", "## Quick start")
    result = run_offline(user, code)
    assert result.stderr.splitlines() == [store_line(user)]
    assert_ollama_spans_under_one_root(user.last_trace(), "RunnableSequence", "ollama.chat")


def test_llamaindex_quick_start_offline(user: User) -> None:
    code = quick_start("packages/llamaindex/README.md", "## Quick start")
    result = run_offline(user, code)  # its Ollama at OLLAMA_HOST, as it says
    assert result.stderr.splitlines() == [store_line(user)]
    rows = user.last_trace()
    (root,) = roots(rows)
    assert [
        r["span_attributes"]["name"]
        for r in rows
        if r["span_attributes"]["name"].startswith("ollama.")
    ] == ["ollama.chat"]
    assert root["span_attributes"]["name"] != "ollama.chat"  # under LlamaIndex's span


def test_fastapi_quick_start_offline(user: User) -> None:
    code = quick_start("packages/fastapi/README.md", "## Quick start")
    result = run_offline(user, code + CALL_APP.format(path="/ask/sky"))
    assert result.stderr.splitlines() == [store_line(user)]
    assert json.loads(result.stdout.splitlines()[-1])["answer"]
    assert_ollama_spans_under_one_root(user.last_trace(), "GET /ask/{topic}", "ollama.chat")


def test_langchain_example_offline(user: User) -> None:
    code = (ROOT / "examples/langchain_chain.py").read_text()
    result = run_offline(user, code, "Why is the sky blue?")
    # LangGraph's own deprecation warning may follow (its prebuilt agent, before LangChain 1.x).
    assert result.stderr.splitlines()[0] == store_line(user)
    assert not [line for line in result.stderr.splitlines()[1:] if "braintrust" in line]
    rows = user.last_trace()  # the agent's run
    assert any(r["span_attributes"]["name"] == "ollama.chat" for r in rows)
    assert len(roots(rows)) == 1


def test_llamaindex_example_offline(user: User) -> None:
    code = (ROOT / "examples/llamaindex_rag.py").read_text()
    result = run_offline(user, code)
    assert result.stderr.splitlines() == [store_line(user)]
    rows = user.last_trace()
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "ask-streamed"
    called = sorted(
        r["span_attributes"]["name"]
        for r in rows
        if r["span_attributes"]["name"].startswith("ollama.")
    )
    assert called == ["ollama.chat", "ollama.embed"]


def test_fastapi_example_offline(user: User) -> None:
    code = (ROOT / "examples/fastapi_app.py").read_text()
    result = run_offline(user, code + CALL_APP.format(path="/chat?q=Why"))
    assert result.stderr.splitlines() == [store_line(user)]
    assert_ollama_spans_under_one_root(user.last_trace(), "GET /chat", "ollama.chat")
