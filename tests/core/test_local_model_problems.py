"""Whole spans of calls a local model answered badly, as a user's program makes them.

FakeOllama answers as Ollama does in each case (hand-made exchanges, from the documented server
behaviour: see tests/core/test_insight_unit.py for the rules one by one); the recorded real
traffic of tests/cassettes must raise no flag at all.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import braintrust
import ollama
import pytest
import yaml
from braintrust_ollama import setup_ollama, unpatch_ollama
from braintrust_ollama._insight import Answer, inspect_call
from support.ollama_server import Chat, Generate
from support.sdk import HAS_SCHEMA_FORMAT
from support.spans import only, reply_of

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes" / "core"
LONG = "The quarterly report says revenue grew. " * 600  # 24,000 characters: ~6,000 tokens
QUESTION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": LONG}]
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
}


def server_metrics(eval_count: int, prompt: int | None, **more: float) -> dict[str, float]:
    """The metrics FakeOllama's counters imply (its durations: 1.234567 s total, 12.345 ms
    load, 98.765 ms prompt eval, 20 ms per output token)."""
    metrics: dict[str, float] = {
        "completion_tokens": eval_count,
        "tokens": (prompt or 0) + eval_count,
        "total_duration": 1.234567,
        "load_duration": 0.012345,
        "prompt_eval_duration": 0.098765,
        "eval_duration": 0.02 * max(eval_count, 1),
        **more,
    }
    if eval_count:
        metrics["completion_tokens_per_second"] = eval_count / metrics["eval_duration"]
    if prompt:
        metrics["prompt_tokens"] = prompt
        metrics["prompt_tokens_per_second"] = prompt / 0.098765
    return metrics


def metrics_of(span: dict[str, Any]) -> dict[str, float]:
    return {
        k: v for k, v in span["metrics"].items() if k not in ("start", "end", "time_to_first_token")
    }


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_prompt_cut_to_fit_num_ctx_is_flagged_on_the_span(
    memory_logger, ollama_server, traced, stream
):
    # Ollama >= 0.15: the runner kept 2050 of ~6000 tokens (4 kept + the tail); 4 came from
    # the prompt cache.
    ollama_server.reply(
        "/api/chat",
        Chat("Revenue grew.", prompt_eval_count=2050, eval_count=4, prompt_eval_cached_count=4),
    )
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="summarise") as parent:
        result = client.chat(
            model="llama3.2:1b", messages=QUESTION, options={"num_ctx": 4096}, stream=stream
        )
        chunks = list(result) if stream else [result]
    assert "".join(c.message.content for c in chunks) == "Revenue grew."
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["span_parents"] == [parent.span_id]
    assert span["input"] == QUESTION
    assert reply_of(span) == {"role": "assistant", "content": "Revenue grew."}
    assert span["metadata"] == {
        "provider": "ollama",
        "model": "llama3.2:1b",
        "stream": stream,
        "options": {"num_ctx": 4096},
        "host": ollama_server.url,
        "done_reason": "stop",
        "cold_start": False,
        "context_length": 4096,
        "prompt_truncated": True,
        "warnings": [
            "prompt truncated: Ollama kept 2050 of about 6004 prompt tokens (context window"
            " 4096); raise num_ctx"
        ],
    }
    assert metrics_of(span) == pytest.approx(server_metrics(4, 2050, prompt_cached_tokens=4))


def test_a_generate_cut_at_the_servers_default_window_is_flagged_without_num_ctx(
    memory_logger, ollama_server, traced
):
    # No num_ctx and no model information: a server defaulting to 4096 (under 24 GiB of VRAM).
    ollama_server.reply("/api/generate", Generate("Grew.", prompt_eval_count=2050, eval_count=2))
    with braintrust.start_span(name="summarise"):
        ollama.Client(host=ollama_server.url).generate(model="llama3.2:1b", prompt=LONG)
    metadata = only(memory_logger.pop(), "ollama.generate")["metadata"]
    assert metadata["prompt_truncated"] is True
    assert "context_length" not in metadata  # not known: the cut tells the window was 4096
    assert metadata["warnings"] == [
        "prompt truncated: Ollama kept 2050 of about 6000 prompt tokens (context window 4096);"
        " raise num_ctx"
    ]


def test_an_older_server_cutting_to_num_ctx_is_flagged(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/chat", Chat("Grew.", prompt_eval_count=2048, eval_count=2))
    with braintrust.start_span(name="summarise"):
        ollama.Client(host=ollama_server.url).chat(
            model="llama3", messages=QUESTION, options={"num_ctx": 2048}
        )
    metadata = only(memory_logger.pop(), "ollama.chat")["metadata"]
    assert metadata["prompt_truncated"] is True
    assert metadata["context_length"] == 2048


def test_messages_dropped_at_the_chat_step_are_flagged(memory_logger, ollama_server, traced):
    history = [{"role": "user", "content": LONG}, {"role": "assistant", "content": "Noted."}] * 2
    messages = [*history, {"role": "user", "content": "So, did revenue grow?"}]
    # The server dropped the oldest messages: what it evaluated fits in the window.
    ollama_server.reply("/api/chat", Chat("Yes.", prompt_eval_count=3012, eval_count=2))
    with braintrust.start_span(name="chat"):
        ollama.Client(host=ollama_server.url).chat(
            model="llama3.2:1b", messages=messages, options={"num_ctx": 4096}
        )
    metadata = only(memory_logger.pop(), "ollama.chat")["metadata"]
    assert metadata["prompt_truncated"] is True
    assert metadata["warnings"] == [
        "prompt truncated: about 12009 prompt tokens do not fit the context window of 4096;"
        " Ollama dropped the oldest messages or cut the prompt"
    ]


@pytest.mark.parametrize(
    ("reply", "options"),
    [
        (Chat("Hi!", prompt_eval_count=26, eval_count=3), {"num_ctx": 4096}),
        # A long prompt in a window it fits in.
        (Chat("Grew.", prompt_eval_count=6010, eval_count=2), {"num_ctx": 8192}),
        # The prompt cache: an older server counts only what it evaluated.
        (Chat("Grew.", prompt_eval_count=11, eval_count=2), {"num_ctx": 8192}),
        (Chat("Grew.", prompt_eval_count=None, eval_count=2), {}),
        # A newer server: the whole prompt counted, most of it from the cache.
        (Chat("Grew.", prompt_eval_count=6010, eval_count=2, prompt_eval_cached_count=6000), {}),
    ],
    ids=["short", "fits", "cached-small-count", "cached-no-count", "cached-newer-server"],
)
def test_prompts_that_fit_or_come_from_the_cache_raise_no_flag(
    memory_logger, ollama_server, traced, reply, options
):
    ollama_server.reply("/api/chat", reply)
    with braintrust.start_span(name="chat"):
        ollama.Client(host=ollama_server.url).chat(
            model="llama3.2:1b", messages=QUESTION, options=options
        )
    metadata = only(memory_logger.pop(), "ollama.chat")["metadata"]
    assert "prompt_truncated" not in metadata
    assert "warnings" not in metadata


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_output_stopped_by_num_predict(memory_logger, ollama_server, traced, stream):
    ollama_server.reply(
        "/api/generate",
        Generate("Once upon a time there", eval_count=5, done_reason="length"),
    )
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="story"):
        result = client.generate(
            model="llama3.2:1b", prompt="Tell a story", options={"num_predict": 5}, stream=stream
        )
        if stream:
            list(result)
    metadata = only(memory_logger.pop(), "ollama.generate")["metadata"]
    assert metadata["output_truncated"] == "num_predict"
    assert metadata["warnings"] == ["output cut short: num_predict (5) reached"]


def test_output_stopped_by_the_context_window(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/chat", Chat("and then", eval_count=4000, done_reason="length"))
    with braintrust.start_span(name="story"):
        ollama.Client(host=ollama_server.url).chat(
            model="llama3.2:1b", messages=[{"role": "user", "content": "Go on"}]
        )
    metadata = only(memory_logger.pop(), "ollama.chat")["metadata"]
    assert metadata["output_truncated"] == "context"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_format_not_honoured_is_a_format_error(memory_logger, ollama_server, traced, stream):
    fmt = CITY if HAS_SCHEMA_FORMAT else "json"
    answer = '{"city": "Paris"}' if HAS_SCHEMA_FORMAT else "Paris, France."
    ollama_server.reply("/api/chat", Chat(answer, eval_count=7))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="extract"):
        result = client.chat(
            model="llama3.2:1b",
            messages=[{"role": "user", "content": "Capital of France?"}],
            format=fmt,
            stream=stream,
        )
        if stream:
            list(result)
    metadata = only(memory_logger.pop(), "ollama.chat")["metadata"]
    expected = (
        "output does not match the schema at $: missing 'country'"
        if HAS_SCHEMA_FORMAT
        else "output is not valid JSON (Expecting value at line 1 column 1)"
    )
    assert metadata["format_error"] == expected
    assert metadata["warnings"] == [f"format not honoured: {expected}"]


def test_a_format_honoured_is_no_error(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/chat", Chat('{"city": "Paris", "country": "France"}'))
    with braintrust.start_span(name="extract"):
        ollama.Client(host=ollama_server.url).chat(
            model="llama3.2:1b",
            messages=[{"role": "user", "content": "Capital of France?"}],
            format=CITY if HAS_SCHEMA_FORMAT else "json",
        )
    assert "format_error" not in only(memory_logger.pop(), "ollama.chat")["metadata"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_tool_call_the_server_could_not_parse_is_empty_output_with_tokens(
    memory_logger, ollama_server, traced, stream
):
    # ollama#17274: the model wrote a tool call, the server could not parse it, and the reply
    # has no content and no tool_calls, though 38 tokens were generated.
    ollama_server.reply("/api/chat", Chat("", eval_count=38))
    client = ollama.Client(host=ollama_server.url)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    with braintrust.start_span(name="agent"):
        result = client.chat(
            model="qwen3:8b",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[tool],
            stream=stream,
        )
        if stream:
            list(result)
    metadata = only(memory_logger.pop(), "ollama.chat")["metadata"]
    assert metadata["warnings"] == [
        "empty output: 38 tokens generated, no text and no tool calls came back"
    ]


def test_a_tool_call_is_not_empty_output(memory_logger, ollama_server, traced):
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ollama_server.reply("/api/chat", Chat("", tool_calls=[call], eval_count=20))
    with braintrust.start_span(name="agent"):
        list(
            ollama.Client(host=ollama_server.url).chat(
                model="qwen3:8b", messages=[{"role": "user", "content": "Weather?"}], stream=True
            )
        )
    assert "warnings" not in only(memory_logger.pop(), "ollama.chat")["metadata"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_cached_prompt_tokens_are_read_from_the_raw_response(
    memory_logger, ollama_server, traced, stream
):
    """The SDK's models drop `prompt_eval_cached_count` (undeclared); the span reads it from
    the JSON the SDK builds each response from. If an SDK release stops building responses as
    `cls(**json)` in `_request`, this fails (CI runs the newest release)."""
    ollama_server.reply(
        "/api/chat", Chat("Hi!", prompt_eval_count=900, prompt_eval_cached_count=850)
    )
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="chat"):
        result = client.chat(model="llama3.2:1b", messages=QUESTION[:1], stream=stream)
        chunks = list(result) if stream else [result]
    assert only(memory_logger.pop(), "ollama.chat")["metrics"]["prompt_cached_tokens"] == 850
    # What the user got is what the SDK builds untraced: its own types, its own fields.
    assert all(type(c) is ollama.ChatResponse for c in chunks)
    assert all(
        "prompt_eval_cached_count" not in c.model_dump()
        or "prompt_eval_cached_count" in ollama.ChatResponse.model_fields
        for c in chunks
    )


def test_cached_prompt_tokens_on_async_generate(memory_logger, ollama_server, traced):
    ollama_server.reply(
        "/api/generate", Generate("Hi", prompt_eval_count=40, prompt_eval_cached_count=0)
    )

    async def main() -> None:
        with braintrust.start_span(name="chat"):
            async for _ in await ollama.AsyncClient(host=ollama_server.url).generate(
                model="llama3.2:1b", prompt="Hi", stream=True
            ):
                pass

    asyncio.run(main())
    assert only(memory_logger.pop(), "ollama.generate")["metrics"]["prompt_cached_tokens"] == 0


def test_the_privacy_switch_keeps_flags_counts_and_details_but_no_content(
    memory_logger, ollama_server, model_info
):
    setup_ollama(record_content=False)
    try:
        ollama_server.load("llama3.2:1b")
        client = ollama.Client(host=ollama_server.url)
        with braintrust.start_span(name="extract"):
            client.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "Hi"}])
            assert model_info.wait(timeout=10)
            ollama_server.reply(
                "/api/chat",
                Chat(
                    "Paris is the capital",
                    prompt_eval_count=2050,
                    eval_count=5,
                    done_reason="length",
                ),
            )
            client.chat(
                model="llama3.2:1b",
                messages=QUESTION,
                format="json",
                options={"num_ctx": 4096, "num_predict": 5},
            )
    finally:
        unpatch_ollama()
    (span,) = [
        s
        for s in memory_logger.pop()
        if (s.get("metadata") or {}).get("options", {}).get("num_ctx")
    ]
    assert "input" not in span and "output" not in span
    metadata = span["metadata"]
    assert metadata["prompt_truncated"] is True
    assert metadata["output_truncated"] == "num_predict"
    assert metadata["format_error"].startswith("output is not valid JSON")
    assert metadata["model_details"]["family"] == "llama"
    assert len(metadata["warnings"]) == 3
    text = json.dumps(span)
    assert "quarterly report" not in text and "Paris is the capital" not in text


# --- the recorded real traffic raises no flag ---------------------------------------------------


def _exchanges() -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(cassette, request body, the reply's JSON objects) of every chat and generate in
    tests/cassettes: one object, or a stream's chunks."""
    found = []
    for path in sorted(CASSETTES.glob("ollama-*/*.yaml")):
        for interaction in yaml.safe_load(path.read_text())["interactions"]:
            request, response = interaction["request"], interaction["response"]
            if not request["uri"].endswith(("/api/chat", "/api/generate")):
                continue
            if response["status"]["code"] != 200:
                continue
            body = response["body"]["string"]
            body = body.decode() if isinstance(body, bytes) else body
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            name = f"{path.parent.name}/{path.stem}"
            sent = request["body"]
            found.append(
                (name, json.loads(sent.decode() if isinstance(sent, bytes) else sent), lines)
            )
    return found


EXCHANGES = _exchanges()


@pytest.mark.parametrize(
    ("request_body", "replies"),
    [(request, replies) for _, request, replies in EXCHANGES],
    ids=[name for name, _, _ in EXCHANGES],
)
def test_recorded_real_traffic_raises_no_flag(request_body, replies):
    final = replies[-1]
    response_type = ollama.ChatResponse if "message" in final else ollama.GenerateResponse
    messages = [r.get("message") or {} for r in replies]
    answer = Answer(
        "".join(m.get("content") or "" for m in messages)
        + "".join(r.get("response") or "" for r in replies),
        sum(len(m.get("tool_calls") or ()) for m in messages),
        any(m.get("thinking") or r.get("thinking") for m, r in zip(messages, replies, strict=True)),
        any(r.get("image") for r in replies),
    )
    metadata, _ = inspect_call(request_body, response_type(**final), answer, None)
    flags = {"prompt_truncated", "output_truncated", "format_error", "warnings"}
    assert not flags & set(metadata), metadata


def test_every_recorded_chat_and_generate_is_checked():
    assert len(EXCHANGES) == 38  # 19 per SDK folder
