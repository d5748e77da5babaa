"""`context` of an `ollama.*` span made through LangChain or LangGraph names the user's line,
not LangChain's: the call, the loop reading a stream, or the graph's node that made it; for a
node LangGraph runs as a task of its own, the line that started the graph."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_ollama import ChatOllama
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import create_react_agent
from support.call_site import caller_of, line_above
from support.ollama_server import FakeOllama
from support.spans import by_name, only

pytestmark = pytest.mark.usefixtures("traced")


def test_invoke_and_a_chain(
    chat: ChatOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    chat.invoke("Capital of France?", config=registration)
    invoked = line_above()
    chain = ChatPromptTemplate.from_template("Capital of {country}?") | chat | StrOutputParser()
    chain.invoke({"country": "Peru"}, config=registration)
    chained = line_above()
    first, second = by_name(memory_logger.pop(), "ollama.chat")
    assert caller_of(first) == invoked
    assert caller_of(second) == chained


def test_stream_names_the_loop_reading_it(
    chat: ChatOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    for _ in chat.stream("Capital of France?", config=registration):
        loop = line_above()  # the `for` line: LangChain calls the SDK as the loop asks
    assert caller_of(only(memory_logger.pop(), "ollama.chat")) == loop


async def test_ainvoke(chat: ChatOllama, registration: dict[str, Any], memory_logger: Any) -> None:
    await chat.ainvoke("Capital of France?", config=registration)
    invoked = line_above()
    assert caller_of(only(memory_logger.pop(), "ollama.chat")) == invoked


def test_graph_node_is_the_caller(
    chat: ChatOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    called: dict[str, Any] = {}

    def answer(state: MessagesState) -> dict[str, Any]:
        reply = chat.invoke(state["messages"])
        called.update(line_above())
        return {"messages": [reply]}

    graph = StateGraph(MessagesState)
    graph.add_node("answer", answer)
    graph.add_edge(START, "answer")
    graph.add_edge("answer", END)
    graph.compile().invoke({"messages": [("user", "Capital of France?")]}, config=registration)
    assert caller_of(only(memory_logger.pop(), "ollama.chat")) == called


async def test_prebuilt_agent_run_as_tasks_names_the_line_that_ran_it(
    ollama_server: FakeOllama, registration: dict[str, Any], memory_logger: Any
) -> None:
    chat = ChatOllama(model="llama3.2", base_url=ollama_server.url)
    agent = create_react_agent(chat, tools=[])
    await agent.ainvoke({"messages": [("user", "Capital of France?")]}, config=registration)
    ran = line_above()
    assert caller_of(only(memory_logger.pop(), "ollama.chat")) == ran
