"""`logprobs` / `top_logprobs` (ollama >= 0.6.1): kept on the span's metadata when requested,
for whole responses and streams (gathered chunk by chunk), bounded to LOGPROBS_LIMIT tokens.

FakeOllama answers with hand-made bodies built from the SDK's own response types.
"""

from __future__ import annotations

from typing import Any

import braintrust
import ollama
import pytest
from braintrust_ollama import tracing
from core.cassettes import metrics_of, replay, replies, server_metrics
from ollama._types import Logprob, TokenLogprob
from support.ollama_server import Lines
from support.spans import choices, only

MESSAGES = [{"role": "user", "content": "Say hi"}]
TOKENS = [("Hi", -0.01, [("Hi", -0.01), ("Hello", -4.6)]), ("!", -0.3, [("!", -0.3), (".", -1.4)])]


def logprob(token: str, value: float, top: list[tuple[str, float]]) -> Logprob:
    return Logprob(
        token=token, logprob=value, top_logprobs=[TokenLogprob(token=t, logprob=v) for t, v in top]
    )


LOGPROBS = [logprob(*entry) for entry in TOKENS]
LOGGED = [entry.model_dump(exclude_none=True) for entry in LOGPROBS]
FINAL = {"done": True, "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 2}


def chat_chunk(content: str, logprobs: list[Logprob] | None, **final: Any) -> dict[str, Any]:
    return ollama.ChatResponse(
        model="llama3.2",
        created_at="2026-08-12T10:11:12Z",
        message=ollama.Message(role="assistant", content=content),
        logprobs=logprobs,
        **{"done": False, **final},
    ).model_dump(exclude_none=True)


def generate_chunk(text: str, logprobs: list[Logprob] | None, **final: Any) -> dict[str, Any]:
    return ollama.GenerateResponse(
        model="llama3.2", response=text, logprobs=logprobs, **{"done": False, **final}
    ).model_dump(exclude_none=True)


def test_chat_logprobs_are_kept_when_requested(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/chat", chat_chunk("Hi!", LOGPROBS, **FINAL))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(model="llama3.2", messages=MESSAGES, logprobs=True, top_logprobs=2)
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["output"] == choices({"role": "assistant", "content": "Hi!"})
    assert span["metadata"]["token_logprobs"] == LOGGED
    assert span["metadata"]["top_logprobs"] == 2
    assert "token_logprobs_omitted" not in span["metadata"]


def test_streamed_chat_gathers_logprobs_from_every_chunk(memory_logger, ollama_server, traced):
    ollama_server.reply(
        "/api/chat",
        Lines(
            [
                chat_chunk("Hi", LOGPROBS[:1]),
                chat_chunk("!", LOGPROBS[1:]),
                chat_chunk("", None, **FINAL),
            ]
        ),
    )
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        stream = client.chat(
            model="llama3.2", messages=MESSAGES, stream=True, logprobs=True, top_logprobs=2
        )
        assert [chunk.message.content for chunk in stream] == ["Hi", "!", ""]
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["output"] == choices({"role": "assistant", "content": "Hi!"})
    assert span["metadata"]["token_logprobs"] == LOGGED
    assert span["metrics"]["completion_tokens"] == 2


async def test_async_streamed_generate_logprobs_are_bounded(
    memory_logger, ollama_server, traced, monkeypatch
):
    monkeypatch.setattr(tracing, "LOGPROBS_LIMIT", 3)
    chunks = [generate_chunk(str(i), [logprob(str(i), -0.1 * i, [])]) for i in range(5)]
    ollama_server.reply("/api/generate", Lines([*chunks, generate_chunk("", None, **FINAL)]))
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        stream = await client.generate(model="llama3.2", prompt="Count", stream=True, logprobs=True)
        text = "".join([chunk.response async for chunk in stream])
    span = only(memory_logger.pop(), "ollama.generate")
    assert text == "01234"
    assert span["output"] == choices({"role": "assistant", "content": "01234"})
    assert [entry["token"] for entry in span["metadata"]["token_logprobs"]] == ["0", "1", "2"]
    assert span["metadata"]["token_logprobs_omitted"] == 2
    assert span["metadata"]["token_logprobs"][1] == {
        "token": "1",
        "logprob": pytest.approx(-0.1),
        "top_logprobs": [],
    }


def test_no_logprobs_on_the_span_when_not_requested(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.generate(model="llama3.2", prompt="Hi")
    span = only(memory_logger.pop(), "ollama.generate")
    assert "token_logprobs" not in span["metadata"]


def test_recorded_chat_stream_keeps_the_logprobs_of_every_chunk(memory_logger, traced):
    question = [{"role": "user", "content": "What is the capital of France? One word."}]
    with replay("chat_stream_logprobs"), braintrust.start_span(name="request"):
        for _ in ollama.chat(
            model="llama3.2", messages=question, stream=True, logprobs=True, top_logprobs=2
        ):
            pass
    lines = replies("chat_stream_logprobs")
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["output"] == choices(
        {"role": "assistant", "content": "".join(line["message"]["content"] for line in lines)}
    )
    assert span["metadata"]["token_logprobs"] == [
        entry for line in lines for entry in line.get("logprobs") or []
    ]
    assert span["metadata"]["top_logprobs"] == 2
    assert metrics_of(span) == pytest.approx(server_metrics(lines[-1]))


def test_logprobs_are_content_and_stay_out_when_content_is_off(memory_logger, ollama_server):
    from braintrust_ollama import setup_ollama, unpatch_ollama

    ollama_server.reply("/api/chat", chat_chunk("Hi!", LOGPROBS, **FINAL))
    setup_ollama(record_content=False)
    try:
        with braintrust.start_span(name="request"):
            ollama.Client(host=ollama_server.url).chat(
                model="llama3.2", messages=MESSAGES, logprobs=True, top_logprobs=2
            )
    finally:
        unpatch_ollama()
    span = only(memory_logger.pop(), "ollama.chat")
    assert "token_logprobs" not in span["metadata"] and "output" not in span
    assert span["metrics"]["completion_tokens"] == 2
