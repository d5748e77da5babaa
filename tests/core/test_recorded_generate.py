"""`ollama.generate` over real recorded Ollama traffic: one whole `ollama.generate` span per call."""

from __future__ import annotations

import braintrust
import ollama
import pytest
from core.cassettes import (
    cached_prompt_metrics,
    expected_span,
    final_reply,
    metrics_of,
    replay,
    replies,
    server_metrics,
    whole,
)
from ollama import AsyncClient, Client
from support.spans import only

JOKE = "Tell me a joke about OpenTelemetry"
# A generate span in Braintrust's chat schema: the prompt as a user message, the text as the reply.
JOKE_INPUT = [{"role": "user", "content": JOKE}]


def answer(text: str) -> list[dict]:
    """A generate span's output: the text as the one choice's assistant message (every
    recording here stopped on its own: `done_reason` "stop")."""
    return [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
    ]


def streamed_text(name: str) -> str:
    return "".join(chunk["response"] for chunk in replies(name))


def test_module_generate_span_holds_the_prompt_and_the_text(memory_logger, traced):
    with replay("generate_plain"), braintrust.start_span(name="test") as parent:
        response = ollama.generate(model="llama3", prompt=JOKE)

    reply = final_reply("generate_plain")
    assert response.response == reply["response"]
    span = only(memory_logger.pop(), "ollama.generate")
    # This recording loaded llama3 for the call (load_duration 2.0 s): a cold start.
    assert reply["load_duration"] == 2_037_300_208
    assert span["metadata"]["cold_start"] is True
    assert whole(span) == expected_span(
        "generate_plain",
        parent,
        name="ollama.generate",
        input=JOKE_INPUT,
        output=answer(reply["response"]),
        model="llama3",
    )
    assert metrics_of(span) == pytest.approx(server_metrics(reply))


def test_client_generate_stream_joins_the_text(memory_logger, traced):
    with replay("generate_stream"), braintrust.start_span(name="test") as parent:
        chunks = list(Client().generate(model="gemma3:1b", prompt=JOKE, stream=True))

    text = streamed_text("generate_stream")
    assert "".join(c.response for c in chunks) == text
    span = only(memory_logger.pop(), "ollama.generate")
    assert whole(span) == expected_span(
        "generate_stream",
        parent,
        name="ollama.generate",
        input=JOKE_INPUT,
        output=answer(text),
        model="gemma3:1b",
        stream=True,
    )
    assert metrics_of(span) == pytest.approx(server_metrics(final_reply("generate_stream")))


async def test_async_generate_with_cached_prompt_has_no_prompt_tokens(memory_logger, traced):
    with replay("async_generate_cached_prompt"), braintrust.start_span(name="test") as parent:
        await AsyncClient().generate(model="llama3", prompt=JOKE)

    reply = final_reply("async_generate_cached_prompt")
    span = only(memory_logger.pop(), "ollama.generate")
    assert whole(span) == expected_span(
        "async_generate_cached_prompt",
        parent,
        name="ollama.generate",
        input=JOKE_INPUT,
        output=answer(reply["response"]),
        model="llama3",
    )
    assert metrics_of(span) == pytest.approx(cached_prompt_metrics(reply))


async def test_async_generate_stream_with_cached_prompt(memory_logger, traced):
    name = "async_generate_stream_cached_prompt"
    with replay(name), braintrust.start_span(name="test") as parent:
        stream = await AsyncClient().generate(model="llama3", prompt=JOKE, stream=True)
        chunks = [chunk async for chunk in stream]

    assert "".join(c.response for c in chunks) == streamed_text(name)
    span = only(memory_logger.pop(), "ollama.generate")
    assert whole(span) == expected_span(
        name,
        parent,
        name="ollama.generate",
        input=JOKE_INPUT,
        output=answer(streamed_text(name)),
        model="llama3",
        stream=True,
    )
    assert metrics_of(span) == pytest.approx(cached_prompt_metrics(final_reply(name)))
