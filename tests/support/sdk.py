"""What the installed `ollama` SDK can do: tests run on the oldest and the newest supported."""

from __future__ import annotations

import inspect

import ollama

# `think` (reasoning models) arrived in ollama 0.5.2; older SDKs neither send it nor parse it.
HAS_THINK = "think" in inspect.signature(ollama.Client.chat).parameters


def think(value: bool = True) -> dict[str, bool]:
    """`think=value` where the SDK supports it, nothing where it does not."""
    return {"think": value} if HAS_THINK else {}


# ollama 0.5.0's `Client.generate` lacks the `think` its chat and `AsyncClient.generate` take.
HAS_SYNC_GENERATE_THINK = "think" in inspect.signature(ollama.Client.generate).parameters


def sync_generate_think(value: bool = True) -> dict[str, bool]:
    """`think=value` for `Client.generate` where it takes it."""
    return {"think": value} if HAS_SYNC_GENERATE_THINK else {}


def _accepts_schema_format() -> bool:
    try:
        ollama._types.ChatRequest(model="m", format={"type": "object"})
    except Exception:
        return False
    return True


# Structured outputs (`format=<JSON schema>`) arrived in ollama 0.4.3; before, only "json".
HAS_SCHEMA_FORMAT = _accepts_schema_format()

# ollama 0.6.x surfaces, each on the SDK versions that have it.
HAS_WEB = hasattr(ollama.Client, "web_search")  # web_search / web_fetch: 0.6.0
HAS_LOGPROBS = "logprobs" in inspect.signature(ollama.Client.chat).parameters  # 0.6.1
HAS_IMAGE_GENERATION = "width" in inspect.signature(ollama.Client.generate).parameters  # 0.6.2
HAS_SYSTEMONE = hasattr(ollama.Client, "systemone")  # 0.6.3
