"""LlamaIndex agents over Ollama, as the agent tutorials write them: one `Ollama` span per model
call, its `ollama.chat` span under it, and its output the message the model sent (tool calls
included, streamed or not).

The agents stream each turn (`astream_chat_with_tools`); the first turn asks for a tool, the
second answers with its result.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.ollama import Ollama
from support.ollama_server import Chat, FakeOllama
from support.spans import by_name, children_of, choices, parent_of, roots, token_sums

MULTIPLY_CALL = Chat(
    "",
    tool_calls=[{"function": {"name": "multiply", "arguments": {"a": 2, "b": 3}}}],
    prompt_eval_count=50,
    eval_count=14,
)
ANSWER = Chat("2 times 3 is 6.", prompt_eval_count=70, eval_count=8)
TOOL_CALL_OUTPUT = choices(
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
)
ANSWER_OUTPUT = choices({"role": "assistant", "content": "2 times 3 is 6."})


def multiply(a: float, b: float) -> float:
    """Useful for multiplying two numbers."""
    return a * b


def assert_one_ollama_span_per_model_call(
    rows: list[dict[str, Any]], server: FakeOllama, outputs: list[Any]
) -> list[dict[str, Any]]:
    """Each model call is one `Ollama` span holding exactly its `ollama.chat` span, whose output
    it carries; no other `Ollama` span; tokens summed over the trace are the server's."""
    model_calls = [s for s in server.served if s.path == "/api/chat"]
    llm_spans = by_name(rows, "Ollama")
    assert len(llm_spans) == len(model_calls) == len(outputs)
    for span, output in zip(llm_spans, outputs, strict=True):
        (sdk,) = children_of(rows, span)
        assert sdk["span_attributes"]["name"] == "ollama.chat"
        assert sdk["output"] == output
        assert span["output"] == output
        assert span["metrics"]["end"] >= sdk["metrics"]["end"]
        assert "tokens" not in span["metrics"]
    prompt, completion = server.tokens_served()
    assert token_sums(rows) == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens": prompt + completion,
    }
    return llm_spans


async def test_function_agent_turns_are_one_ollama_span_each_with_their_tool_calls(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", MULTIPLY_CALL, ANSWER)
    agent = FunctionAgent(tools=[multiply], llm=llm, system_prompt="You are a helpful calculator.")

    response = await agent.run(user_msg="What is 2 times 3?")

    assert str(response) == "2 times 3 is 6."
    rows = memory_logger.pop()
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "FunctionAgent"
    assert_one_ollama_span_per_model_call(rows, ollama_server, [TOOL_CALL_OUTPUT, ANSWER_OUTPUT])
    (tool,) = by_name(rows, "FunctionTool")
    assert tool["span_attributes"]["type"] == "tool"
    assert tool["input"] == {"a": 2, "b": 3}
    assert tool["output"] == "6"


async def test_agent_workflow_turns_are_one_ollama_span_each_with_their_tool_calls(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", MULTIPLY_CALL, ANSWER)
    calculator = FunctionAgent(
        name="calculator",
        description="Multiplies numbers.",
        tools=[FunctionTool.from_defaults(fn=multiply)],
        llm=llm,
        system_prompt="You are a helpful calculator.",
    )
    workflow = AgentWorkflow(agents=[calculator], root_agent="calculator")

    response = await workflow.run(user_msg="What is 2 times 3?")

    assert str(response) == "2 times 3 is 6."
    rows = memory_logger.pop()
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "AgentWorkflow"
    assert_one_ollama_span_per_model_call(rows, ollama_server, [TOOL_CALL_OUTPUT, ANSWER_OUTPUT])


def test_predict_and_call_is_one_ollama_chat_span_with_its_tool_calls(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", MULTIPLY_CALL)
    tool = FunctionTool.from_defaults(fn=multiply)

    output = llm.predict_and_call([tool], user_msg="What is 2 times 3?")

    assert output.response == "6"
    rows = memory_logger.pop()
    (predict,) = roots(rows)
    assert predict["span_attributes"]["name"] == "Ollama"
    assert predict["output"] == {"response": "6"}
    chat_and_tools = children_of(rows, predict)
    assert [r["span_attributes"]["name"] for r in chat_and_tools] == ["Ollama", "FunctionTool"]
    chat = chat_and_tools[0]
    assert chat["input"] == [{"role": "user", "content": "What is 2 times 3?"}]
    # The chat span is the one model call; predict_and_call itself is not a model call.
    (sdk,) = children_of(rows, chat)
    assert sdk["span_attributes"]["name"] == "ollama.chat"
    assert chat["output"] == sdk["output"] == TOOL_CALL_OUTPUT
    prompt, completion = ollama_server.tokens_served()
    assert token_sums(rows)["tokens"] == prompt + completion
    assert all(parent_of(rows, r) is not None for r in rows if r is not predict)


async def test_streamed_tool_call_turn_carries_its_tool_calls(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    # Async, as agents stream: the sync `stream_chat` of llama-index-llms-ollama 0.7.0 (the
    # oldest supported) itself fails on streamed tool calls (`list(set(<dicts>))`).
    ollama_server.reply("/api/chat", MULTIPLY_CALL)
    tool = FunctionTool.from_defaults(fn=multiply)

    stream = await llm.astream_chat_with_tools([tool], user_msg="What is 2 times 3?")
    responses = [response async for response in stream]

    (selection,) = llm.get_tool_calls_from_response(responses[-1])
    assert selection.tool_kwargs == {"a": 2, "b": 3}
    rows = memory_logger.pop()
    (root,) = roots(rows)
    assert_one_ollama_span_per_model_call(rows, ollama_server, [TOOL_CALL_OUTPUT])
    assert root["span_attributes"]["name"] == "Ollama"
