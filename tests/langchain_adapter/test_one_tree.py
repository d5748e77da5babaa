"""However many Braintrust handlers a LangChain run has (a global one and a per-call one, two
per-call ones, Braintrust's and ours), it is traced once: one span tree, one `ChatOllama` span per
model call with its `ollama.chat` span under it, and each call's tokens on the SDK span only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from braintrust import start_span
from braintrust_ollama_langchain import BraintrustCallbackHandler, setup_langchain
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import tool
from langchain_ollama import ChatOllama
from support.ollama_server import Chat, FakeOllama
from support.spans import by_name, span_tree

from .traces import (
    assert_sdk_spans_own_tokens,
    braintrust_handler_class,
    braintrust_setup_langchain,
)

pytestmark = pytest.mark.usefixtures("traced")


def ours() -> Any:
    return BraintrustCallbackHandler()


def braintrusts() -> Any:
    return braintrust_handler_class()()


# name -> (global set-up or None, the per-call handlers)
SET_UPS: dict[str, tuple[Callable[[], bool] | None, Callable[[], list[Any]]]] = {
    "setup_langchain() + ours per call": (setup_langchain, lambda: [ours()]),
    "setup_langchain() + Braintrust's per call": (setup_langchain, lambda: [braintrusts()]),
    "Braintrust's set-up + ours per call": (braintrust_setup_langchain, lambda: [ours()]),
    "two of ours per call": (None, lambda: [ours(), ours()]),
    "Braintrust's and ours per call": (None, lambda: [braintrusts(), ours()]),
    "ours and Braintrust's per call, with both set-ups": (
        lambda: braintrust_setup_langchain() and setup_langchain(),
        lambda: [ours(), braintrusts()],
    ),
}


@pytest.fixture(params=list(SET_UPS))
def attach(request: pytest.FixtureRequest, memory_logger: Any) -> Callable[[], dict[str, Any]]:
    """Runs the set-up and returns the RunnableConfig of a run with several Braintrust handlers."""

    def set_up_and_config() -> dict[str, Any]:
        set_up, per_call = SET_UPS[request.param]
        if set_up is not None:
            assert set_up() is True
        return {"callbacks": per_call()}

    return set_up_and_config


@pytest.fixture
def config(attach: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return attach()


def translate(chat: ChatOllama) -> Runnable[dict[str, str], str]:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Translate to French."), ("user", "{text}")]
    )
    return prompt | chat | StrOutputParser()


CHAIN_TREE = [
    "RunnableSequence",
    "  ChatPromptTemplate",
    "  ChatOllama",
    "    ollama.chat",
    "  StrOutputParser",
]


def test_invoke_of_a_chain_is_one_tree(
    chat: ChatOllama, ollama_server: FakeOllama, config: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("Bonjour", prompt_eval_count=14, eval_count=2))
    assert translate(chat).invoke({"text": "Hello"}, config=config) == "Bonjour"

    rows = memory_logger.pop()
    assert span_tree(rows) == CHAIN_TREE
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


async def test_ainvoke_of_a_chain_is_one_tree(
    chat: ChatOllama, ollama_server: FakeOllama, config: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("Bonjour", prompt_eval_count=14, eval_count=2))
    with start_span(name="request"):
        assert await translate(chat).ainvoke({"text": "Hello"}, config=config) == "Bonjour"

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", *("  " + line for line in CHAIN_TREE)]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


def test_stream_is_one_tree(
    chat: ChatOllama, ollama_server: FakeOllama, config: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("one two three", prompt_eval_count=7, eval_count=3))
    assert "".join(str(c.content) for c in chat.stream("Count", config=config)) == "one two three"

    rows = memory_logger.pop()
    assert span_tree(rows) == ["ChatOllama", "  ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


async def test_astream_of_a_chain_is_one_tree(
    chat: ChatOllama, ollama_server: FakeOllama, config: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("Bon jour", prompt_eval_count=14, eval_count=2))
    chunks = [c async for c in translate(chat).astream({"text": "Hello"}, config=config)]
    assert "".join(chunks) == "Bon jour"

    rows = memory_logger.pop()
    assert span_tree(rows) == CHAIN_TREE
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


def test_batch_is_one_tree_per_input(
    chat: ChatOllama, ollama_server: FakeOllama, config: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply(
        "/api/chat",
        Chat("A", prompt_eval_count=5, eval_count=1),
        Chat("B", prompt_eval_count=6, eval_count=2),
        Chat("C", prompt_eval_count=7, eval_count=3),
    )
    with start_span(name="request"):
        replies = chat.batch(["a", "b", "c"], config={**config, "max_concurrency": 3})
    assert sorted(str(r.content) for r in replies) == ["A", "B", "C"]

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", *["  ChatOllama", "    ollama.chat"] * 3]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=3)


def test_chain_invoked_inside_a_chain_is_one_tree(
    chat: ChatOllama, ollama_server: FakeOllama, config: dict[str, Any], memory_logger: Any
) -> None:
    """The inner `invoke` gets no config: LangChain hands it the outer run's callbacks, and
    adds the global handler again, when one is registered, as it configures the inner run."""
    ollama_server.reply(
        "/api/chat",
        Chat("Bonjour", prompt_eval_count=14, eval_count=2),
        Chat("Au revoir", prompt_eval_count=15, eval_count=3),
    )
    inner = translate(chat)

    def both(texts: list[str]) -> list[str]:
        return [inner.invoke({"text": text}) for text in texts]

    outer = RunnableLambda(both).with_config(run_name="translate both")
    assert outer.invoke(["Hello", "Goodbye"], config=config) == ["Bonjour", "Au revoir"]

    rows = memory_logger.pop()
    assert span_tree(rows) == ["translate both", *("  " + line for line in CHAIN_TREE * 2)]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=2)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_langgraph_agent_is_the_same_tree_as_with_one_handler(
    chat: ChatOllama,
    ollama_server: FakeOllama,
    attach: Callable[[], dict[str, Any]],
    memory_logger: Any,
) -> None:
    from langgraph.prebuilt import create_react_agent

    def run(config: dict[str, Any]) -> list[dict[str, Any]]:
        ollama_server.served.clear()
        ollama_server.reply(
            "/api/chat",
            Chat("", tool_calls=[{"function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]),
            Chat("2 + 3 = 5.", prompt_eval_count=80, eval_count=8),
        )
        agent = create_react_agent(chat, [add])
        state = agent.invoke({"messages": [("user", "What is 2 + 3?")]}, config=config)
        assert state["messages"][-1].content == "2 + 3 = 5."
        rows: list[dict[str, Any]] = memory_logger.pop()
        assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=2)
        return rows

    one_handler = run({"callbacks": [BraintrustCallbackHandler()]})
    several = run(attach())
    assert span_tree(several) == span_tree(one_handler)
    assert len(by_name(several, "ChatOllama")) == 2
    assert len(by_name(several, "add")) == 1
