"""The pure request/response -> span field functions of `tracing.py`, table-driven, no server.

Responses are built with the installed SDK's own types (`ollama.ChatResponse`, ...), so each row
is what the SDK would hand the tracer for that answer.
"""

from __future__ import annotations

from typing import Any

import ollama
import pytest
from braintrust_ollama.tracing import ENDPOINTS

CHAT = ENDPOINTS["/api/chat"]
GENERATE = ENDPOINTS["/api/generate"]
EMBED = ENDPOINTS["/api/embed"]
EMBEDDINGS = ENDPOINTS["/api/embeddings"]


def test_each_traced_path_has_one_endpoint_with_its_span_name_and_type():
    assert {path: (e.name, e.type) for path, e in ENDPOINTS.items()} == {
        "/api/chat": ("ollama.chat", "llm"),
        "/api/generate": ("ollama.generate", "llm"),
        "/api/embed": ("ollama.embed", "llm"),
        "/api/embeddings": ("ollama.embeddings", "llm"),
        "/v1/systemone": ("ollama.systemone", "llm"),
        "https://ollama.com/api/web_search": ("ollama.web_search", "tool"),
        "https://ollama.com/api/web_fetch": ("ollama.web_fetch", "tool"),
    }
    for management in ("/api/show", "/api/tags", "/api/ps", "/api/pull", "/api/delete"):
        assert management not in ENDPOINTS


@pytest.mark.parametrize(
    ("endpoint", "response", "output"),
    [
        (
            EMBED,
            ollama.EmbedResponse(embeddings=[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]),
            {"embeddings": 2, "dimensions": 3},
        ),
        (EMBED, ollama.EmbedResponse(embeddings=[]), {"embeddings": 0, "dimensions": 0}),
        (EMBEDDINGS, ollama.EmbeddingsResponse(embedding=[0.1] * 5), {"dimensions": 5}),
    ],
    ids=["embed", "embed-empty", "embeddings"],
)
def test_embedding_output_is_the_shape_never_the_vectors(endpoint, response, output):
    assert endpoint.output(response, {}) == output


@pytest.mark.parametrize(
    ("endpoint", "request_body", "metadata"),
    [
        (
            CHAT,
            {
                "model": "m",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": False,
                "options": {"seed": 1},
                "tools": [],
                "format": None,
            },
            {"provider": "ollama", "model": "m", "stream": False, "options": {"seed": 1}},
        ),
        (
            GENERATE,
            {"model": "m", "prompt": "Hi", "system": "S", "context": [1, 2], "raw": True},
            {"provider": "ollama", "model": "m", "raw": True},
        ),
        (
            EMBED,
            {"model": "m", "input": ["a"], "truncate": True, "dimensions": 8},
            {"provider": "ollama", "model": "m", "truncate": True, "dimensions": 8},
        ),
    ],
    ids=["chat", "generate", "embed"],
)
def test_metadata_holds_the_settings_sent_never_the_content(endpoint, request_body, metadata):
    assert endpoint.metadata(request_body, None, None) == metadata


def test_metadata_adds_the_host_and_done_reason():
    done = ollama.ChatResponse(
        model="m", done=True, done_reason="length", message={"role": "assistant", "content": ""}
    )
    assert CHAT.metadata({"model": "m"}, done, "http://127.0.0.1:11434") == {
        "provider": "ollama",
        "model": "m",
        "host": "http://127.0.0.1:11434",
        "done_reason": "length",
    }


COUNTERS: dict[str, Any] = {
    "prompt_eval_count": 26,
    "eval_count": 10,
    "total_duration": 2_000_000_000,
    "load_duration": 1_000_000,
    "prompt_eval_duration": 130_000_000,
    "eval_duration": 500_000_000,
}


@pytest.mark.parametrize(
    ("counters", "metrics"),
    [
        (
            COUNTERS,
            {
                "prompt_tokens": 26,
                "completion_tokens": 10,
                "tokens": 36,
                "total_duration": 2.0,
                "load_duration": 0.001,
                "prompt_eval_duration": 0.13,
                "eval_duration": 0.5,
            },
        ),
        ({"eval_count": 4}, {"completion_tokens": 4, "tokens": 4}),  # a cached prompt
        ({}, {}),
    ],
    ids=["all-counters", "cached-prompt", "none"],
)
def test_metrics_come_from_the_servers_counters(counters, metrics):
    response = ollama.GenerateResponse(model="m", done=True, response="", **counters)
    assert GENERATE.metrics(response) == pytest.approx(metrics)
