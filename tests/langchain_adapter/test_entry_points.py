"""Every LangChain entry point over the real ChatOllama / OllamaLLM / OllamaEmbeddings and HTTP:
each `ollama.*` SDK span sits under its LangChain model run, and the trace counts each call's
tokens once (on the SDK span), for both ways of registering Braintrust's handler."""

from __future__ import annotations

import json
from typing import Any

import pytest
from braintrust import start_span
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings, OllamaLLM
from pydantic import BaseModel
from support.ollama_server import Chat, Embed, FakeOllama, Generate
from support.spans import by_name, only, span_tree

from .traces import assert_one_trace, assert_sdk_spans_own_tokens, assert_tokens_counted_once

pytestmark = pytest.mark.usefixtures("traced")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class City(BaseModel):
    name: str
    population: int


def add_call(a: int, b: int) -> dict[str, Any]:
    return {"function": {"name": "add", "arguments": {"a": a, "b": b}}}


def test_invoke_nests_sdk_span_under_chat_run(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("Paris.", prompt_eval_count=12, eval_count=3))
    with start_span(name="request"):
        reply = chat.invoke("Capital of France?", config=registration)
    assert reply.content == "Paris."

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  ChatOllama", "    ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)
    run = only(rows, "ChatOllama")
    assert run["input"][0][0]["content"] == "Capital of France?"
    assert run["output"]["generations"][0][0]["text"] == "Paris."
    assert only(rows, "ollama.chat")["metrics"]["prompt_tokens"] == 12


def test_run_span_keeps_langchain_name_tags_and_invocation_params(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    config = {**registration, "run_name": "geography", "tags": ["eu"], "metadata": {"user": "u1"}}
    chat.bind(stop=["\n"]).invoke("Capital of France?", config=config)

    rows = memory_logger.pop()
    assert span_tree(rows) == ["geography", "  ollama.chat"]
    run = only(rows, "geography")
    assert run["span_attributes"]["type"] == "llm"
    assert run["metadata"]["tags"] == ["eu"]
    assert run["metadata"]["metadata"]["user"] == "u1"
    assert run["metadata"]["invocation_params"]["stop"] == ["\n"]
    assert run["metadata"]["invocation_params"]["_type"] == "chat-ollama"
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


async def test_ainvoke_nests_sdk_span_under_chat_run(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    with start_span(name="request"):
        reply = await chat.ainvoke("Hi", config=registration)
    assert reply.content == "Hello! How can I help you today?"

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  ChatOllama", "    ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


def test_stream_nests_sdk_span_and_keeps_time_to_first_token(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("one two three", prompt_eval_count=7, eval_count=3))
    with start_span(name="request"):
        text = "".join(str(c.content) for c in chat.stream("Count", config=registration))
    assert text == "one two three"

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  ChatOllama", "    ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)
    assert only(rows, "ChatOllama")["metrics"]["time_to_first_token"] >= 0
    assert only(rows, "ollama.chat")["metrics"]["completion_tokens"] == 3


async def test_astream_nests_sdk_span_under_chat_run(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("one two three", prompt_eval_count=7, eval_count=3))
    with start_span(name="request"):
        text = "".join([str(c.content) async for c in chat.astream("Count", config=registration)])
    assert text == "one two three"

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  ChatOllama", "    ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


def test_batch_in_thread_pool_nests_each_sdk_span_under_its_own_run(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply(
        "/api/chat",
        Chat("A", prompt_eval_count=5, eval_count=1),
        Chat("B", prompt_eval_count=6, eval_count=2),
        Chat("C", prompt_eval_count=7, eval_count=3),
    )
    with start_span(name="request"):
        replies = chat.batch(["a", "b", "c"], config={**registration, "max_concurrency": 3})
    assert sorted(str(r.content) for r in replies) == ["A", "B", "C"]

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", *["  ChatOllama", "    ollama.chat"] * 3]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=3)


async def test_abatch_nests_each_sdk_span_under_its_own_run(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply(
        "/api/chat",
        Chat("A", prompt_eval_count=5, eval_count=1),
        Chat("B", prompt_eval_count=6, eval_count=2),
    )
    with start_span(name="request"):
        replies = await chat.abatch(["a", "b"], config=registration)
    assert sorted(str(r.content) for r in replies) == ["A", "B"]

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", *["  ChatOllama", "    ollama.chat"] * 2]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=2)


def test_lcel_chain_nests_sdk_span_under_chat_run_in_the_sequence(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("Bonjour", prompt_eval_count=14, eval_count=2))
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Translate to French."), ("user", "{text}")]
    )
    chain = prompt | chat | StrOutputParser()
    assert chain.invoke({"text": "Hello"}, config=registration) == "Bonjour"

    rows = memory_logger.pop()
    assert span_tree(rows) == [
        "RunnableSequence",
        "  ChatPromptTemplate",
        "  ChatOllama",
        "    ollama.chat",
        "  StrOutputParser",
    ]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)
    sent = ollama_server.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]


def test_llm_invoke_nests_generate_span_under_llm_run(
    llm: OllamaLLM, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/generate", Generate("Blue.", prompt_eval_count=9, eval_count=2))
    with start_span(name="request"):
        assert llm.invoke("Sky colour?", config=registration) == "Blue."

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  OllamaLLM", "    ollama.generate"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)


def test_bind_tools_call_nests_sdk_span_and_returns_tool_calls(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    ollama_server.reply("/api/chat", Chat("", tool_calls=[add_call(2, 3)], eval_count=18))
    with start_span(name="request"):
        reply = chat.bind_tools([add]).invoke("What is 2 + 3?", config=registration)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("add", {"a": 2, "b": 3})]

    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  ChatOllama", "    ollama.chat"]
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)
    run_metadata = only(rows, "ChatOllama")["metadata"]
    tools = run_metadata.get("tools") or run_metadata["invocation_params"]["tools"]
    assert tools[0]["function"]["name"] == "add"
    assert ollama_server.requests[-1].body["tools"][0]["function"]["name"] == "add"


def test_with_structured_output_nests_sdk_span_under_chat_run(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    # One reply that serves either method langchain-ollama may use: JSON content for
    # json_schema (the 0.3+ default), a `City` tool call for function calling (older releases).
    city_args = {"name": "Paris", "population": 2102650}
    ollama_server.reply(
        "/api/chat",
        Chat(
            json.dumps(city_args),
            tool_calls=[{"function": {"name": "City", "arguments": city_args}}],
            prompt_eval_count=40,
            eval_count=15,
        ),
    )
    with start_span(name="request"):
        city = chat.with_structured_output(City).invoke("Largest city?", config=registration)
    assert city == City(name="Paris", population=2102650)

    rows = memory_logger.pop()
    assert span_tree(rows)[:2] == ["request", "  RunnableSequence"]
    assert "      ollama.chat" in span_tree(rows)
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=1)
    assert only(rows, "ollama.chat")["metrics"]["prompt_tokens"] == 40
    body = ollama_server.requests[-1].body
    assert "population" in json.dumps(body.get("format") or body.get("tools"))


def test_react_agent_loop_nests_every_sdk_span_under_its_model_run(
    chat: ChatOllama, ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    from langgraph.prebuilt import create_react_agent

    ollama_server.reply(
        "/api/chat",
        Chat("", tool_calls=[add_call(2, 3)], prompt_eval_count=50, eval_count=20),
        Chat("2 + 3 = 5.", prompt_eval_count=80, eval_count=8),
    )
    agent = create_react_agent(chat, [add])
    with start_span(name="request"):
        state = agent.invoke({"messages": [("user", "What is 2 + 3?")]}, config=registration)
    assert state["messages"][-1].content == "2 + 3 = 5."
    assert state["messages"][-2].content == "5"  # the tool's answer went back to the model

    rows = memory_logger.pop()
    assert len(by_name(rows, "ChatOllama")) == 2
    assert only(rows, "add")["output"] is not None
    assert_sdk_spans_own_tokens(rows, ollama_server, sdk_calls=2)
    assert len(ollama_server.requests[-1].body["messages"]) == 3  # user, tool call, tool result


def test_embeddings_nest_under_the_callers_span(
    embeddings: OllamaEmbeddings,
    ollama_server: FakeOllama,
    registration: dict[str, Any],
    memory_logger: Any,
) -> None:
    ollama_server.reply("/api/embed", Embed(dimensions=3, prompt_eval_count=11))
    with start_span(name="index documents"):
        vectors = embeddings.embed_documents(["a cat", "a dog"])
    assert [len(v) for v in vectors] == [3, 3]

    rows = memory_logger.pop()
    assert span_tree(rows) == ["index documents", "  ollama.embed"]
    assert_one_trace(rows)
    # FakeOllama records an embed reply only after sending it: use the scripted counters.
    assert_tokens_counted_once(rows, (11, 0))
    assert only(rows, "ollama.embed")["metrics"]["prompt_tokens"] == 11
