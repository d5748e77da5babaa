"""LlamaIndex trace roots hold the question and the answer; workflow steps hold their names.

A user opening the trace of an agent run, a workflow run, a query or a chat sees at the top what
was asked and what came back (Braintrust's handler leaves a workflow run's input and output
empty and names every step `llamaindex`).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step
from llama_index.llms.ollama import Ollama
from support.ollama_server import Chat, FakeOllama
from support.spans import by_name, names, only, parent_of, roots, span_tree


class JokeEvent(Event):
    joke: str


class JokeFlow(Workflow):
    """Two steps, each asking the model once."""

    llm: Any = None

    @step
    async def write_joke(self, ev: StartEvent) -> JokeEvent:
        joke = await self.llm.acomplete(f"A joke about {ev.topic}")
        return JokeEvent(joke=str(joke))

    @step
    async def rate_joke(self, ev: JokeEvent) -> StopEvent:
        rating = await self.llm.acomplete(f"Rate this joke: {ev.joke}")
        return StopEvent(result=str(rating))


def multiply(a: float, b: float) -> float:
    """Useful for multiplying two numbers."""
    return a * b


MULTIPLY_CALL = Chat(
    "", tool_calls=[{"function": {"name": "multiply", "arguments": {"a": 2, "b": 3}}}]
)


async def test_workflow_run_holds_its_arguments_and_result_and_steps_their_names(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", Chat("Pirates say arr."), Chat("Seven out of ten."))
    flow = JokeFlow(timeout=10)
    flow.llm = llm

    result = await flow.run(topic="pirates")

    assert result == "Seven out of ten."
    rows = memory_logger.pop()
    # (llama-index-workflows 1.x also runs an internal `_done` step)
    assert [line for line in span_tree(rows) if line != "  _done"] == [
        "JokeFlow",
        "  write_joke",
        "    Ollama",
        "      Ollama",
        "        ollama.chat",
        "  rate_joke",
        "    Ollama",
        "      Ollama",
        "        ollama.chat",
    ]
    (root,) = roots(rows)
    assert root["input"] == {"topic": "pirates"}
    assert root["output"] == "Seven out of ten."


async def test_agent_run_holds_the_question_and_the_answer(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", MULTIPLY_CALL, Chat("2 times 3 is 6."))
    agent = FunctionAgent(tools=[multiply], llm=llm)

    response = await agent.run(user_msg="What is 2 times 3?")

    assert str(response) == "2 times 3 is 6."
    rows = memory_logger.pop()
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "FunctionAgent"
    assert root["input"] == {"user_msg": "What is 2 times 3?"}
    assert root["output"] == {"response": "2 times 3 is 6."}
    assert "llamaindex" not in names(rows)
    # each model call is made by the step that runs the agent, and named after it
    for sdk in by_name(rows, "ollama.chat"):
        model_span = parent_of(rows, sdk)
        assert model_span is not None
        step_span = parent_of(rows, model_span)
        assert step_span is not None
        assert step_span["span_attributes"]["name"] == "run_agent_step"
        assert parent_of(rows, step_span) == root


async def test_react_agent_run_holds_the_question_and_the_answer(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", Chat("Thought: I can answer without any tool.\nAnswer: 6"))
    agent = ReActAgent(tools=[multiply], llm=llm)

    response = await agent.run(user_msg="What is 2 times 3?")

    assert str(response) == "6"
    (root,) = roots(memory_logger.pop())
    assert root["span_attributes"]["name"] == "ReActAgent"
    assert root["input"] == {"user_msg": "What is 2 times 3?"}
    assert root["output"] == {"response": "6"}


async def test_failed_workflow_run_holds_the_question_and_its_step_the_error(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    class Failing(Workflow):
        @step
        async def fail(self, ev: StartEvent) -> StopEvent:
            raise ValueError("no joke today")

    try:
        await Failing(timeout=10).run(topic="pirates")
    except Exception as error:
        assert "no joke today" in str(error)
    else:
        raise AssertionError("the run did not fail")
    rows = memory_logger.pop()
    (root,) = roots(rows)
    assert root["input"] == {"topic": "pirates"}
    # The step's span holds the error (and the run's too, from llama-index-workflows 2: before,
    # LlamaIndex ended a failed run's span with no result).
    assert "no joke today" in only(rows, "fail")["error"]


def test_chat_engine_holds_the_question_and_the_answer(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", Chat("Paris."))

    response = SimpleChatEngine.from_defaults(llm=llm).chat("Capital of France?")

    assert str(response) == "Paris."
    (root,) = roots(memory_logger.pop())
    assert root["span_attributes"]["name"] == "SimpleChatEngine"
    assert root["input"] == "Capital of France?"
    assert root["output"] == {"response": "Paris."}
