"""LlamaIndex's `Ollama` LLM: every `ollama.chat` span under the LlamaIndex span that made it.

Each test drives the real `llama_index.llms.ollama.Ollama` over HTTP against `FakeOllama` and
checks the whole span tree Braintrust's in-memory logger holds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ollama
import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.ollama import Ollama
from pydantic import BaseModel
from support.ollama_server import Chat, FakeOllama, Fault
from support.spans import (
    assert_tokens_counted_once,
    by_name,
    children_of,
    choices,
    only,
    parent_of,
    reply_of,
    root_of,
    roots,
    span_tree,
)

QUESTION = [ChatMessage(role="user", content="Capital of France?")]
QUESTION_INPUT = [{"role": "user", "content": "Capital of France?"}]
ANSWER = Chat("Paris is the capital.", prompt_eval_count=12, eval_count=5)
ANSWER_OUTPUT = choices({"role": "assistant", "content": "Paris is the capital."})


def _chat_span(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The LlamaIndex `Ollama.chat`-level span: the direct parent of the single SDK span."""
    sdk = only(rows, "ollama.chat")
    parent = parent_of(rows, sdk)
    assert parent is not None, "ollama.chat has no parent span"
    assert parent["span_attributes"]["name"] == "Ollama"
    return parent


def _assert_show_not_traced(server: FakeOllama, rows: list[dict[str, Any]]) -> None:
    assert "/api/show" in [r.path for r in server.requests]
    names = {r["span_attributes"]["name"] for r in rows}
    assert names <= {"Ollama", "ollama.chat", "FunctionTool"}, names


# --- whole responses -------------------------------------------------------------------------


def test_chat_puts_sdk_span_under_llamaindex_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    response = llm.chat(QUESTION)

    assert response.message.content == "Paris is the capital."
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  ollama.chat"]
    chat = _chat_span(rows)
    assert chat["input"] == QUESTION_INPUT
    assert chat["output"] == ANSWER_OUTPUT
    sdk = only(rows, "ollama.chat")
    assert sdk["output"] == ANSWER_OUTPUT
    assert sdk["metrics"]["prompt_tokens"] == 12
    assert sdk["metrics"]["completion_tokens"] == 5
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")
    _assert_show_not_traced(ollama_server, rows)


async def test_achat_puts_sdk_span_under_llamaindex_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    response = await llm.achat(QUESTION)

    assert response.message.content == "Paris is the capital."
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  ollama.chat"]
    assert _chat_span(rows)["output"] == ANSWER_OUTPUT
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


def test_complete_puts_sdk_span_under_its_chat_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    response = llm.complete("Capital of France?")

    assert response.text == "Paris is the capital."
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  Ollama", "    ollama.chat"]
    chat = _chat_span(rows)
    complete = parent_of(rows, chat)
    assert complete is not None
    assert complete["output"] == {"text": "Paris is the capital."}
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


async def test_acomplete_puts_sdk_span_under_its_chat_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    response = await llm.acomplete("Capital of France?")

    assert response.text == "Paris is the capital."
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  Ollama", "    ollama.chat"]
    complete = parent_of(rows, _chat_span(rows))
    assert complete is not None
    assert complete["output"] == {"text": "Paris is the capital."}
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


# --- streams ---------------------------------------------------------------------------------


async def _consume(llm: Ollama, method: str) -> str:
    """Call one of the four streaming entry points and drain it; the text it streamed."""
    call = getattr(llm, method)
    args: Any = "Capital of France?" if "complete" in method else QUESTION
    if method.startswith("a"):
        deltas = [chunk.delta async for chunk in await call(args)]
    else:
        deltas = [chunk.delta for chunk in call(args)]
    return "".join(deltas)


STREAMS = {
    "stream_chat": ["Ollama", "  ollama.chat"],
    "astream_chat": ["Ollama", "  ollama.chat"],
    "stream_complete": ["Ollama", "  Ollama", "    ollama.chat"],
    "astream_complete": ["Ollama", "  Ollama", "    ollama.chat"],
}


@pytest.mark.parametrize("method", STREAMS)
async def test_stream_puts_sdk_span_under_llamaindex_span_that_ends_with_the_stream(
    method: str, llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    text = await _consume(llm, method)

    assert text == "Paris is the capital."
    rows = memory_logger.pop()
    assert span_tree(rows) == STREAMS[method]
    chat = _chat_span(rows)
    sdk = only(rows, "ollama.chat")
    assert chat["output"] == ANSWER_OUTPUT
    assert sdk["output"] == ANSWER_OUTPUT
    # Open until the stream was finished: no LlamaIndex span ends before its SDK span.
    for span in by_name(rows, "Ollama"):
        assert span["metrics"]["end"] >= sdk["metrics"]["end"]
    if "complete" in method:
        complete = parent_of(rows, chat)
        assert complete is not None
        assert complete["output"] == {"text": "Paris is the capital."}
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


def test_stream_span_stays_open_while_the_stream_is_consumed(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    stream = llm.stream_chat(QUESTION)
    first = next(stream)
    opened = memory_logger.pop()
    rest = list(stream)
    closed = memory_logger.pop()

    assert first.delta == "Paris "
    assert rest[-1].message.content == "Paris is the capital."
    (li_open,) = by_name(opened, "Ollama")
    assert "end" not in (li_open.get("metrics") or {})
    assert "output" not in li_open
    (li_closed,) = [r for r in closed if r["span_id"] == li_open["span_id"]]
    assert li_closed["output"] == ANSWER_OUTPUT
    assert li_closed["metrics"]["end"] >= only(closed, "ollama.chat")["metrics"]["end"]


def test_stream_broken_off_ends_span_with_partial_output(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    stream = llm.stream_chat(QUESTION)
    first = next(stream)
    stream.close()

    assert first.delta == "Paris "
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  ollama.chat"]
    chat = _chat_span(rows)
    assert chat["output"] == choices({"role": "assistant", "content": "Paris "})
    assert "error" not in chat
    assert chat["metrics"]["end"] >= chat["metrics"]["start"]


async def test_async_stream_broken_off_ends_spans_with_partial_output(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)

    stream = await llm.astream_complete("Capital of France?")
    first = await stream.__anext__()
    await stream.aclose()

    assert first.delta == "Paris "
    closed = memory_logger.pop()
    assert span_tree(closed) == ["Ollama", "  Ollama"]
    complete, chat = closed
    assert complete["output"] == {"text": "Paris "}
    assert chat["output"] == choices({"role": "assistant", "content": "Paris "})
    assert "end" in complete["metrics"] and "end" in chat["metrics"]
    # LlamaIndex's innermost generator never closes the SDK stream it iterates: the event loop
    # does, once that generator is dropped. Then the SDK span lands under the chat span.
    await asyncio.get_running_loop().shutdown_asyncgens()
    sdk = only(memory_logger.pop(), "ollama.chat")
    assert sdk["span_parents"] == [chat["span_id"]]
    assert sdk["output"] == choices({"role": "assistant", "content": "Paris "})


def test_stream_dropped_before_its_first_item_still_ends_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    stream = llm.stream_chat(QUESTION)
    del stream

    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama"]
    (span,) = rows
    assert span["input"] == QUESTION_INPUT
    assert "end" in span["metrics"]
    assert "/api/chat" not in [r.path for r in ollama_server.requests]  # never started


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
async def test_stream_failing_midway_ends_span_with_the_error(
    method: str, llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", Fault(chunks=1, then="error", message="model crashed"))

    with pytest.raises(ollama.ResponseError, match="model crashed"):
        await _consume(llm, method)

    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  ollama.chat"]
    chat = _chat_span(rows)
    assert "model crashed" in chat["error"]
    assert "model crashed" in only(rows, "ollama.chat")["error"]
    assert chat["metrics"]["end"] >= only(rows, "ollama.chat")["metrics"]["end"]


def test_stream_under_a_user_span_nests_in_order(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    import braintrust

    ollama_server.reply("/api/chat", ANSWER)

    with braintrust.start_span(name="request"):
        stream = llm.stream_complete("Capital of France?")
    text = "".join(chunk.delta or "" for chunk in stream)

    assert text == "Paris is the capital."
    rows = memory_logger.pop()
    assert span_tree(rows) == ["request", "  Ollama", "    Ollama", "      ollama.chat"]


# --- structured prediction and tools ---------------------------------------------------------


class City(BaseModel):
    name: str
    country: str


CITY_JSON = Chat('{"name": "Paris", "country": "France"}', prompt_eval_count=40, eval_count=9)
CITY_PROMPT = PromptTemplate("Name the capital of {country}.")
CITY_CHAT_OUTPUT = choices(
    {"role": "assistant", "content": '{"name": "Paris", "country": "France"}'}
)


def test_structured_predict_puts_sdk_span_under_its_chat_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", CITY_JSON)

    city = llm.structured_predict(City, CITY_PROMPT, country="France")

    assert city == City(name="Paris", country="France")
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  Ollama", "    ollama.chat"]
    chat = _chat_span(rows)
    assert chat["input"] == [{"role": "user", "content": "Name the capital of France."}]
    assert chat["output"] == CITY_CHAT_OUTPUT
    structured = parent_of(rows, chat)
    assert structured is not None
    assert structured["output"] == {"name": "Paris", "country": "France"}
    assert only(rows, "ollama.chat")["metadata"]["response_format"] == City.model_json_schema()
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


async def test_astructured_predict_puts_sdk_span_under_its_chat_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", CITY_JSON)

    city = await llm.astructured_predict(City, CITY_PROMPT, country="France")

    assert city == City(name="Paris", country="France")
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  Ollama", "    ollama.chat"]
    structured = parent_of(rows, _chat_span(rows))
    assert structured is not None
    assert structured["output"] == {"name": "Paris", "country": "France"}
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


@pytest.mark.parametrize("method", ["stream_structured_predict", "astream_structured_predict"])
async def test_stream_structured_predict_span_ends_with_the_last_object(
    method: str, llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", CITY_JSON)

    call = getattr(llm, method)
    if method.startswith("a"):
        objects = [o async for o in await call(City, CITY_PROMPT, country="France")]
    else:
        objects = list(call(City, CITY_PROMPT, country="France"))

    assert objects[-1].model_dump() == {"name": "Paris", "country": "France"}
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  Ollama", "    ollama.chat"]
    chat = _chat_span(rows)
    structured = parent_of(rows, chat)
    assert structured is not None
    assert structured["output"] == {"name": "Paris", "country": "France"}
    assert structured["metrics"]["end"] >= chat["metrics"]["end"]
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
async def test_structured_llm_stream_nests_its_model_call_and_ends_with_the_object(
    method: str, llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", CITY_JSON)
    structured_llm = llm.as_structured_llm(City)

    call = getattr(structured_llm, method)
    if method.startswith("a"):
        responses = [r async for r in await call(QUESTION)]
    else:
        responses = list(call(QUESTION))

    assert City.model_validate_json(responses[-1].message.content or "").name == "Paris"
    rows = memory_logger.pop()
    # StructuredLLM.stream_chat > Ollama.stream_structured_predict > Ollama.stream_chat
    assert span_tree(rows) == ["StructuredLLM", "  Ollama", "    Ollama", "      ollama.chat"]
    (structured_llm_span,) = roots(rows)
    assert structured_llm_span["input"] == QUESTION_INPUT
    assert structured_llm_span["output"] == {
        "role": "assistant",
        "content": responses[-1].message.content,
    }
    predict = parent_of(rows, _chat_span(rows))
    assert predict is not None
    assert predict["output"] == {"name": "Paris", "country": "France"}
    assert _chat_span(rows)["output"] == CITY_CHAT_OUTPUT
    for span in (structured_llm_span, predict):
        assert span["metrics"]["end"] >= only(rows, "ollama.chat")["metrics"]["end"]
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


@pytest.mark.parametrize("method", ["stream", "astream"])
async def test_llm_stream_span_ends_with_the_stream_and_holds_its_text(
    method: str, llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ANSWER)
    prompt = PromptTemplate("Capital of {country}?")

    if method == "astream":
        tokens = [t async for t in await llm.astream(prompt, country="France")]
    else:
        tokens = list(llm.stream(prompt, country="France"))

    assert "".join(tokens) == "Paris is the capital."
    rows = memory_logger.pop()
    assert span_tree(rows) == ["Ollama", "  Ollama", "    ollama.chat"]
    (stream_span,) = roots(rows)
    assert stream_span["output"] == "Paris is the capital."
    assert stream_span["metrics"]["end"] >= only(rows, "ollama.chat")["metrics"]["end"]
    assert _chat_span(rows)["output"] == ANSWER_OUTPUT
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


ADD_CALL = Chat(
    "",
    tool_calls=[{"function": {"name": "add", "arguments": {"a": 1, "b": 2}}}],
    prompt_eval_count=50,
    eval_count=14,
)


def test_chat_with_tools_puts_sdk_span_under_llamaindex_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ADD_CALL)
    tool = FunctionTool.from_defaults(fn=add)

    response = llm.chat_with_tools([tool], user_msg="What is 1 + 2?")

    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("add", {"a": 1, "b": 2})
    rows = memory_logger.pop()
    # One model call, one `Ollama` span: not one more for `_prepare_chat_with_tools`.
    assert span_tree(rows) == ["Ollama", "  ollama.chat"]
    assert _chat_span(rows)["input"] == [{"role": "user", "content": "What is 1 + 2?"}]
    sdk = only(rows, "ollama.chat")
    assert reply_of(sdk)["tool_calls"][0]["function"]["name"] == "add"
    assert _chat_span(rows)["output"] == sdk["output"]
    assert [t["function"]["name"] for t in sdk["metadata"]["tools"]] == ["add"]
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")


def test_predict_and_call_puts_sdk_span_under_its_chat_span(
    llm: Ollama, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", ADD_CALL)
    tool = FunctionTool.from_defaults(fn=add)

    output = llm.predict_and_call([tool], user_msg="What is 1 + 2?")

    assert output.response == "3"
    rows = memory_logger.pop()
    (predict,) = roots(rows)
    assert predict["span_attributes"]["name"] == "Ollama"
    assert predict["output"] == {"response": "3"}
    # ollama.chat sits under the chat span, under predict_and_call; the tool runs beside the
    # model call, under predict_and_call too.
    assert parent_of(rows, _chat_span(rows)) == predict
    assert [r["span_attributes"]["name"] for r in children_of(rows, predict)] == [
        "Ollama",
        "FunctionTool",
    ]
    assert _chat_span(rows)["output"] == only(rows, "ollama.chat")["output"]
    tool_spans = by_name(rows, "FunctionTool")
    assert tool_spans and all(root_of(rows, t) == predict for t in tool_spans)
    assert {t["span_attributes"]["type"] for t in tool_spans} == {"tool"}
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "Ollama")
