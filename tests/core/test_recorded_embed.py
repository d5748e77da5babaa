"""`ollama.embed` and the legacy `ollama.embeddings`: the span holds the text(s), never vectors."""

from __future__ import annotations

import json

import braintrust
import ollama
import pytest
from core.cassettes import HOST, cold_start, final_reply, metrics_of, replay, whole
from ollama import Client
from support.spans import only

TEXTS = ["Why is the sky blue?", "Why is the grass green?"]


def test_client_embed_logs_count_and_dimension_not_vectors(memory_logger, traced):
    """Hand-made cassette: no public recording of /api/embed exists."""
    with replay("embed"), braintrust.start_span(name="test") as parent:
        response = Client().embed(model="all-minilm", input=TEXTS)

    reply = final_reply("embed")
    assert [list(v) for v in response.embeddings] == reply["embeddings"]
    rows = memory_logger.pop()
    assert str(reply["embeddings"][0][0]) not in json.dumps(rows)
    span = only(rows, "ollama.embed")
    assert whole(span) == {
        "name": "ollama.embed",
        "type": "llm",
        "input": TEXTS,
        "output": {"embedding_length": len(reply["embeddings"][0]), "embeddings": 2},
        "metadata": {
            "provider": "ollama",
            "model": "all-minilm",
            "cold_start": cold_start("embed"),
            "host": HOST,
        },
        "error": None,
        "span_parents": [parent.span_id],
    }
    # No time_to_first_token: an embedding has no token stream (metrics_of checks it is absent).
    assert metrics_of(span) == pytest.approx(
        {
            "prompt_tokens": reply["prompt_eval_count"],
            "tokens": reply["prompt_eval_count"],
            "total_duration": reply["total_duration"] / 1e9,
            "load_duration": reply["load_duration"] / 1e9,
        }
    )


def test_module_embeddings_logs_the_dimension(memory_logger, traced):
    with replay("embeddings_legacy"), braintrust.start_span(name="test") as parent:
        response = ollama.embeddings(model="llama3", prompt="all-minilm")

    reply = final_reply("embeddings_legacy")
    assert len(response.embedding) == len(reply["embedding"]) == 4096
    span = only(memory_logger.pop(), "ollama.embeddings")
    assert whole(span) == {
        "name": "ollama.embeddings",
        "type": "llm",
        "input": "all-minilm",
        "output": {"embedding_length": 4096},
        "metadata": {"provider": "ollama", "model": "llama3", "host": HOST},
        "error": None,
        "span_parents": [parent.span_id],
    }
    assert metrics_of(span) == {}  # the legacy endpoint reports no counters or timings
    assert "time_to_first_token" not in span["metrics"]
