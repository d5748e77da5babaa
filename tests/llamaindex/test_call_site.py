"""`context` of an `ollama.*` span made through LlamaIndex names the user's line, not
LlamaIndex's: the call, the loop reading a stream, a workflow step of the user's; for an agent's
steps, which LlamaIndex runs as tasks of their own, the line that ran the agent."""

from __future__ import annotations

from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step
from llama_index.embeddings.ollama import OllamaEmbedding
from llama_index.llms.ollama import Ollama
from support.call_site import caller_of, line_above
from support.ollama_server import Chat, FakeOllama
from support.spans import by_name, only

QUESTION = [ChatMessage(role="user", content="Capital of France?")]


def multiply(a: float, b: float) -> float:
    """Useful for multiplying two numbers."""
    return a * b


def test_chat_and_a_stream(llm: Ollama, memory_logger: Any) -> None:
    llm.chat(QUESTION)
    chatted = line_above()
    for _ in llm.stream_complete("Capital of France?"):
        loop = line_above()  # the `for` line: LlamaIndex calls the SDK as the loop asks
    first, second = by_name(memory_logger.pop(), "ollama.chat")
    assert caller_of(first) == chatted
    assert caller_of(second) == loop


async def test_achat(llm: Ollama, memory_logger: Any) -> None:
    await llm.achat(QUESTION)
    chatted = line_above()
    assert caller_of(only(memory_logger.pop(), "ollama.chat")) == chatted


async def test_embedding_batch_run_as_tasks_names_the_line_that_asked(
    embed_model: OllamaEmbedding, memory_logger: Any
) -> None:
    await embed_model.aget_text_embedding_batch(["sky", "sea", "sand"])
    asked = line_above()
    spans = by_name(memory_logger.pop(), "ollama.embed")
    assert spans
    assert [caller_of(span) for span in spans] == [asked] * len(spans)


async def test_agent_steps_name_the_line_that_ran_the_agent(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply(
        "/api/chat",
        Chat("", tool_calls=[{"function": {"name": "multiply", "arguments": {"a": 2, "b": 3}}}]),
        Chat("2 times 3 is 6."),
    )
    agent = FunctionAgent(tools=[multiply], llm=llm)
    await agent.run(user_msg="What is 2 times 3?")
    ran = line_above()
    spans = by_name(memory_logger.pop(), "ollama.chat")
    assert [caller_of(span) for span in spans] == [ran, ran]


async def test_a_workflow_step_of_the_users_is_the_caller(llm: Ollama, memory_logger: Any) -> None:
    called: dict[str, Any] = {}

    class Ask(Workflow):
        @step
        async def ask(self, ev: StartEvent) -> StopEvent:
            reply = await llm.acomplete(ev.question)
            called.update(line_above())
            return StopEvent(result=str(reply))

    await Ask(timeout=10).run(question="Capital of France?")
    assert caller_of(only(memory_logger.pop(), "ollama.chat")) == called
