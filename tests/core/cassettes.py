"""Replaying recorded Ollama traffic: which cassette folder, how requests match, how to re-record.

Cassettes live in `tests/cassettes/core/ollama-<major.minor>/<name>.yaml`, one folder per `ollama`
SDK version family. A run uses the folder of the installed SDK's family, or the nearest newer one
when that family has none (what a newer SDK sends is a superset of what an older one sends).

Requests match on method, path and what was asked (model, whether to stream, and the messages'
text / prompt / input), not on the exact body: SDK versions serialise the same call differently
(`"format": ""`, `"keep_alive": null`, key order...), and a recording made by an older SDK is still
the server's answer to the same question.

Most cassettes are real traffic copied from other projects' recordings; the few hand-made ones
start with a `# HAND-MADE exchange (hand_made: true)` comment. See tests/cassettes/core/NOTICE.md.

Re-record every cassette against a live Ollama with one command (see scripts/record_cassettes.sh):

    OLLAMA_HOST=http://127.0.0.1:11434 scripts/record_cassettes.sh

which runs these tests with `BRAINTRUST_OLLAMA_RECORD=1`: every request then goes to the server
and each cassette is rewritten, into the folder of the installed SDK's family. The expected span
values are read back from the cassette after the call, so the tests hold for a new recording too.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

import ollama
import vcr
from ollama._client import _parse_host
from ollama._types import ChatRequest
from vcr.request import Request
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

__all__ = [
    "HOST",
    "RECORDING",
    "SDK_HAS_THINK",
    "SDK_PARSES_THINKING",
    "SDK_TAKES_SCHEMA_FORMAT",
    "SDK_VERSION",
    "cassette_path",
    "cold_start",
    "final_reply",
    "metrics_of",
    "recorded_request",
    "replay",
    "replies",
    "server_metrics",
    "whole",
]

ROOT = Path(__file__).resolve().parents[1] / "cassettes" / "core"
RECORD_ENV = "BRAINTRUST_OLLAMA_RECORD"
RECORDING = os.environ.get(RECORD_ENV, "") not in ("", "0")


def _family(text: str) -> tuple[int, int]:
    major, minor, *_ = text.removeprefix("ollama-").split(".")
    return int(major), int(minor)


SDK_VERSION: tuple[int, int] = _family(version("ollama"))


def _folder() -> Path:
    if RECORDING:
        return ROOT / f"ollama-{SDK_VERSION[0]}.{SDK_VERSION[1]}"
    families = sorted(
        (_family(p.name), p) for p in ROOT.glob("ollama-*") if p.is_dir() and any(p.glob("*.yaml"))
    )
    newer_or_same = [path for family, path in families if family >= SDK_VERSION]
    return newer_or_same[0] if newer_or_same else families[-1][1]


FOLDER = _folder()


def cassette_path(name: str) -> Path:
    return FOLDER / f"{name}.yaml"


def _asked(request: Request) -> dict[str, Any]:
    """What a request asks Ollama, ignoring how a given SDK version serialises it."""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {"unparsed": request.body}
    return {
        "model": body.get("model"),
        "stream": bool(body.get("stream", False)),
        "messages": [(m.get("role"), m.get("content") or "") for m in body.get("messages") or []],
        "prompt": body.get("prompt"),
        "input": body.get("input"),
    }


def _same_question(r1: Request, r2: Request) -> None:
    a1, a2 = _asked(r1), _asked(r2)
    assert a1 == a2, f"request asks {a1}, the cassette holds {a2}"


_vcr = vcr.VCR(
    record_mode="all" if RECORDING else "none",
    match_on=("method", "path", "ollama_question"),
    filter_headers=("authorization", "cookie"),
    decode_compressed_response=True,
)
_vcr.register_matcher("ollama_question", _same_question)


@contextmanager
def replay(name: str) -> Iterator[None]:
    """Serve the SDK's HTTP requests from cassette `name` (or record it, when re-recording).

    Every interaction in the cassette must be played: a test that makes fewer calls than were
    recorded fails, as does one that makes a call the cassette does not hold.
    """
    with _vcr.use_cassette(str(cassette_path(name))) as cassette:
        yield
    if not RECORDING:
        assert cassette.all_played, f"{name}: not every recorded interaction was played"


def replies(name: str) -> list[dict[str, Any]]:
    """The JSON objects the server sent in the cassette's (single) response, in order.

    One object for a plain reply; one per line for a stream.
    """
    _, responses = deserialize(cassette_path(name).read_text(), yamlserializer)
    (response,) = responses
    body = response["body"]["string"]
    text = body.decode() if isinstance(body, bytes) else body
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def final_reply(name: str) -> dict[str, Any]:
    """The server's last JSON object: the whole reply, or a stream's `done` chunk."""
    return replies(name)[-1]


# --- What the recordings say a span must hold -------------------------------------------------

# The server a client made in a test talks to, as Ollama's SDK resolves it (127.0.0.1:11434
# unless OLLAMA_HOST says otherwise, e.g. when re-recording). Replay ignores the host.
HOST = _parse_host(os.environ.get("OLLAMA_HOST"))

# What the installed SDK can do. Tests of a feature an SDK lacks are not collected for it (see
# conftest.py): ollama 0.4 has no `think` and does not parse `thinking`; 0.4.0 rejects a JSON
# schema as `format`.
SDK_PARSES_THINKING = "thinking" in ollama.Message.model_fields
SDK_HAS_THINK = "think" in inspect.signature(ollama.Client.generate).parameters


def _takes_schema_format() -> bool:
    try:
        ChatRequest(model="m", format={"type": "object"})
    except ValueError:  # pydantic's ValidationError
        return False
    return True


SDK_TAKES_SCHEMA_FORMAT = _takes_schema_format()
_SERVER_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")


def recorded_request(name: str) -> dict[str, Any]:
    """The JSON body of the cassette's (single) request, as the recording SDK sent it."""
    requests, _ = deserialize(cassette_path(name).read_text(), yamlserializer)
    (request,) = requests
    parsed: dict[str, Any] = json.loads(request.body)
    return parsed


def server_metrics(reply: dict[str, Any]) -> dict[str, float]:
    """The metrics a completion's final reply implies: both token counters, their sum, the four
    server timings in seconds, and the speeds (tokens per second of each eval duration). Fails
    (KeyError) if the reply lacks any of them; a cached prompt's: `cached_prompt_metrics`."""
    return {
        "prompt_tokens": reply["prompt_eval_count"],
        "completion_tokens": reply["eval_count"],
        "tokens": reply["prompt_eval_count"] + reply["eval_count"],
        **{name: reply[name] / 1e9 for name in _SERVER_TIMINGS},
        "prompt_tokens_per_second": reply["prompt_eval_count"]
        / (reply["prompt_eval_duration"] / 1e9),
        "completion_tokens_per_second": reply["eval_count"] / (reply["eval_duration"] / 1e9),
    }


def cached_prompt_metrics(reply: dict[str, Any]) -> dict[str, float]:
    """The metrics of a completion whose prompt was cached: Ollama omits `prompt_eval_count`
    (so there are no `prompt_tokens`, nor a prompt speed); the rest as `server_metrics`."""
    assert "prompt_eval_count" not in reply
    return {
        "completion_tokens": reply["eval_count"],
        "tokens": reply["eval_count"],
        **{name: reply[name] / 1e9 for name in _SERVER_TIMINGS},
        "completion_tokens_per_second": reply["eval_count"] / (reply["eval_duration"] / 1e9),
    }


def cold_start(name: str) -> bool:
    """Whether the recorded reply says the model was loaded for the call: a `load_duration` over
    the documented 0.5 s (the recordings hold warm calls of 1 ms to 0.15 s, loads of 1.2 s+)."""
    return bool(final_reply(name)["load_duration"] > 0.5e9)


def whole(span: dict[str, Any]) -> dict[str, Any]:
    """The span as a test compares it; metrics are checked on their own (timings vary)."""
    return {
        "name": span["span_attributes"]["name"],
        "type": span["span_attributes"]["type"],
        "input": span.get("input"),
        "output": span.get("output"),
        "metadata": span.get("metadata"),
        "error": span.get("error"),
        "span_parents": span.get("span_parents"),
    }


def expected_span(
    cassette: str,
    parent: Any,
    *,
    input: Any,
    output: Any,
    model: str,
    name: str = "ollama.chat",
    stream: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """The whole span (as `whole(span)` shows it) that a call replayed from `cassette` logs
    under `parent`: an `llm` span with no error, its metadata the call's model, `stream` and
    `settings` (temperature, options, tools, think, ...), what the recording's last reply says
    (`done_reason`, `cold_start`) and the host. A test compares the whole of it."""
    return {
        "name": name,
        "type": "llm",
        "input": input,
        "output": output,
        "metadata": {
            "provider": "ollama",
            "model": model,
            "stream": stream,
            **settings,
            "done_reason": final_reply(cassette)["done_reason"],
            "cold_start": cold_start(cassette),
            "host": HOST,
        },
        "error": None,
        "span_parents": [parent.span_id],
    }


def metrics_of(span: dict[str, Any]) -> dict[str, float]:
    """The span's metrics without the clock ones; checks time_to_first_token on the way (an
    `llm` completion span has one, an embedding span none)."""
    metrics = dict(span["metrics"])
    start, end = metrics.pop("start"), metrics.pop("end")
    if span["span_attributes"]["name"] in ("ollama.embed", "ollama.embeddings"):
        assert "time_to_first_token" not in metrics
    else:
        ttft = metrics.pop("time_to_first_token")
        assert 0 <= ttft <= end - start
    return metrics
