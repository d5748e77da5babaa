"""Our spans read as Braintrust's own Ollama integration writes them, for the same exchanges.

Braintrust's JavaScript SDK traces Ollama too (`wrapOllama`, `ollama-plugin.ts`). Its spans for
the exchanges of tests/support/plugin_exchanges.py (chat, streamed chat, tools and tool-result
rounds, thinking, images, generate, embed) are recorded in
tests/cassettes/plugin/braintrust-js.json (scripts/record_plugin_spans.py ran them through the
real npm packages against the same FakeOllama replies). Each test here makes the same calls with
the Python SDK and compares: our span, less what the README's table of differences says this
project adds or writes differently, is the plugin's span, field for field.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import braintrust
import ollama
import pytest
from support.plugin_exchanges import EXCHANGES, PATHS, Exchange
from support.sdk import HAS_SYNC_GENERATE_THINK, HAS_THINK

RECORDED = json.loads(
    (Path(__file__).parents[1] / "cassettes" / "plugin" / "braintrust-js.json").read_text()
)

# The README's "Differences from Braintrust's Ollama plugin", as data. What we record beyond it:
# Settings the plugin does not keep, and what a span says of a local model's answer (README:
# "Why did my local model answer badly?"), which no other tracer says.
INSIGHT = frozenset(
    {"context_length", "prompt_truncated", "output_truncated", "format_error", "model_details",
     "gpu_offload", "warnings"}
)  # fmt: skip
EXTRA_METADATA = INSIGHT | {
    "options", "stream", "think", "keep_alive", "done_reason", "cold_start", "host",
}  # fmt: skip
SERVER_METRICS = frozenset(
    {
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
        "prompt_tokens_per_second",
        "completion_tokens_per_second",
    }
)


def as_the_plugin_writes(span: dict[str, Any]) -> dict[str, Any]:
    """Our span less the documented differences: the extra settings and server metrics, a
    plain call's `time_to_first_token` (the plugin times streams only), the schema's
    `reasoning` list (the plugin writes a string), a tool result's `tool_name`, an
    attachment's file name, and the number of vectors beside `embedding_length`."""
    streamed = bool(span["metadata"].get("stream"))
    metrics = {
        name: value if name.endswith("tokens") else "<seconds>"
        for name, value in span["metrics"].items()
        if name not in SERVER_METRICS | {"start", "end", "prompt_cached_tokens"}
        and (streamed or name != "time_to_first_token")
    }
    output = span["output"]
    if span["span_attributes"]["name"] == "ollama.embed":
        output = {k: v for k, v in output.items() if k != "embeddings"}
    else:
        output = [{**choice, "message": _message(choice["message"])} for choice in output]
    return {
        "name": span["span_attributes"]["name"],
        "type": span["span_attributes"]["type"],
        "input": [_message(m) for m in span["input"]]
        if isinstance(span["input"], list) and span["input"] and isinstance(span["input"][0], dict)
        else span["input"],
        "output": output,
        "metadata": {k: v for k, v in span["metadata"].items() if k not in EXTRA_METADATA},
        "metrics": metrics,
    }


def _message(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if not (k == "tool_name" and message["role"] == "tool")}
    if "reasoning" in out:
        out["reasoning"] = "".join(part["content"] for part in out["reasoning"])
    if isinstance(out.get("content"), list):
        out["content"] = [_part(part) for part in out["content"]]
    return out


def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] != "image_url":
        return part
    reference = part["image_url"]["url"]
    return {"type": "image_url", "image_url": {"url": {**_without_name(reference)}}}


def _without_name(reference: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in reference.items() if k not in ("filename", "key")}


def _recorded(exchange: str) -> list[dict[str, Any]]:
    spans = RECORDED["spans"][exchange]
    for span in spans:  # attachment file names differ (see as_the_plugin_writes)
        for message in span["input"] if isinstance(span["input"], list) else ():
            if isinstance(message, dict) and isinstance(message.get("content"), list):
                message["content"] = [_part(part) for part in message["content"]]
    return spans


def _sdk_can_send(exchange: Exchange) -> bool:
    """Whether the installed SDK sends (and parses) what the exchange needs."""
    can = {
        "think": HAS_THINK
        and HAS_SYNC_GENERATE_THINK
        and "thinking" in ollama.Message.model_fields,
        "tool_name": "tool_name" in ollama.Message.model_fields,  # ollama >= 0.4.8
    }
    return all(can[need] for need in exchange.needs)


SENDABLE = [e for e in EXCHANGES if _sdk_can_send(e)]


def test_every_exchange_was_recorded_with_the_replies_served_now():
    assert set(RECORDED["spans"]) == {e.name for e in EXCHANGES}
    for exchange in EXCHANGES:
        recorded = RECORDED["replies"][exchange.name]
        served = [asdict(c.reply) for c in exchange.calls]
        # Fields FakeOllama has gained since the recording are at their defaults (unset).
        assert recorded == [{k: r[k] for k in old} for r, old in zip(served, recorded, strict=True)]
        assert all(
            r[k] in (None, 0.0)
            for r, old in zip(served, recorded, strict=True)
            for k in r.keys() - old
        )


@pytest.mark.parametrize("exchange", SENDABLE, ids=[e.name for e in SENDABLE])
def test_span_reads_as_braintrusts_ollama_plugin_writes_it(
    exchange, memory_logger, ollama_server, traced
):
    client = ollama.Client(host=ollama_server.url)
    for call in exchange.calls:
        ollama_server.reply(PATHS[call.method], call.reply)
    with braintrust.start_span(name=exchange.name):
        for call in exchange.calls:
            result = getattr(client, call.method)(**call.request)
            if call.request.get("stream"):
                for _ in result:
                    pass
    spans = sorted(
        (r for r in memory_logger.pop() if r["span_attributes"]["name"].startswith("ollama.")),
        key=lambda r: r["metrics"]["start"],
    )
    assert [as_the_plugin_writes(span) for span in spans] == _recorded(exchange.name)


@pytest.mark.parametrize("exchange", SENDABLE, ids=[e.name for e in SENDABLE])
async def test_async_and_streamed_spans_read_the_same(
    exchange, memory_logger, ollama_server, traced
):
    """The same exchange through `AsyncClient`, each call streamed where it was not and not
    where it was: the spans differ only in `stream` and what a stream adds (its time to first
    token)."""
    client = ollama.AsyncClient(host=ollama_server.url)
    for call in exchange.calls:
        ollama_server.reply(PATHS[call.method], call.reply)
    with braintrust.start_span(name=exchange.name):
        for call in exchange.calls:
            request = dict(call.request)
            if call.method != "embed":
                request["stream"] = not request.get("stream", False)
            result = await getattr(client, call.method)(**request)
            if request.get("stream"):
                async for _ in result:
                    pass
    spans = sorted(
        (r for r in memory_logger.pop() if r["span_attributes"]["name"].startswith("ollama.")),
        key=lambda r: r["metrics"]["start"],
    )
    for span, recorded in zip(spans, _recorded(exchange.name), strict=True):
        ours = as_the_plugin_writes(span)
        assert ours["input"] == recorded["input"]
        assert ours["output"] == recorded["output"]
        assert ours["metadata"] == recorded["metadata"]
        tokens = {k: v for k, v in recorded["metrics"].items() if k.endswith("tokens")}
        assert {k: v for k, v in ours["metrics"].items() if k.endswith("tokens")} == tokens
