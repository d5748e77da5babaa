"""A LangChain chain and a tool-calling agent over Ollama, traced with each call's tokens once.

    ollama pull llama3.2                      # any chat model with tool support
    uv run python examples/langchain_chain.py "Why is the sky blue?"

With BRAINTRUST_API_KEY set, traces go to the Braintrust project `ollama-langchain-example` (and
a copy to the local store); without it, to the local trace store only. Either way:
`braintrust-ollama traces show last`.
Set OLLAMA_HOST / OLLAMA_MODEL to use another server or model.

Each run makes two traces, one per `invoke`. The chain's: `answer` (its run name) > `ChatOllama` >
`ollama.chat`. The `ollama.chat` span
carries the tokens (prompt, completion, time to first token) and the `ChatOllama` span keeps
what LangChain knows (prompt messages, run name, tags, invocation params), with no tokens, so
Braintrust's totals count each call once. The agent run adds one `ChatOllama` > `ollama.chat`
pair per model turn and an `add` tool span between them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import braintrust
from braintrust_ollama import init_logger, setup_ollama
from braintrust_ollama_langchain import setup_langchain
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_ollama import ChatOllama

PROJECT = "ollama-langchain-example"
MODEL = os.environ.get("OLLAMA_MODEL", "llama3.2")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _agent(llm: ChatOllama) -> Any:
    """LangChain 1.x's `create_agent`, or LangGraph's prebuilt ReAct agent before it."""
    try:
        from langchain.agents import create_agent  # pip install langchain (1.x)
    except ImportError:
        from langgraph.prebuilt import create_react_agent  # pip install langgraph

        return create_react_agent(llm, [add])
    return create_agent(llm, [add])


def main(question: str) -> None:
    init_logger(project=PROJECT)  # Braintrust with BRAINTRUST_API_KEY, else the local store
    setup_ollama()  # ollama.chat / ollama.generate / ollama.embed spans
    setup_langchain()  # LangChain runs as spans; the Ollama span under a run owns its tokens

    # ChatOllama reads OLLAMA_HOST through the ollama SDK when base_url is not given.
    llm = ChatOllama(model=MODEL, temperature=0)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer in two sentences."), ("user", "{question}")]
    )
    chain = prompt | llm | StrOutputParser()
    print(chain.invoke({"question": question}, config={"run_name": "answer", "tags": ["demo"]}))

    agent = _agent(llm)
    state = agent.invoke({"messages": [("user", "Use the add tool: what is 1234 + 4321?")]})
    print(state["messages"][-1].content)
    braintrust.flush()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "Why is the sky blue?")
