"""LlamaIndex's `OllamaEmbedding`: every `ollama.embed` span under the LlamaIndex embedding span
that made it, single, batch and async."""

from __future__ import annotations

from typing import Any

from llama_index.embeddings.ollama import OllamaEmbedding
from support.ollama_server import Embed, FakeOllama
from support.spans import assert_tokens_counted_once, by_name, only, parent_of, root_of, roots


def _assert_embed_spans_under(rows: list[dict[str, Any]], root_input: Any) -> list[dict[str, Any]]:
    """Every ollama.embed span has an OllamaEmbedding parent, all under one root call span
    (LlamaIndex may add its own `_get_text_embeddings` span between the two)."""
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "OllamaEmbedding"
    assert root["input"] == root_input
    sdk_spans = by_name(rows, "ollama.embed")
    assert sdk_spans
    for sdk in sdk_spans:
        parent = parent_of(rows, sdk)
        assert parent is not None and parent["span_attributes"]["name"] == "OllamaEmbedding"
        assert root_of(rows, parent) == root
    return sdk_spans


def test_text_embedding_puts_sdk_span_under_llamaindex_span(
    embed_model: OllamaEmbedding, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/embed", Embed(dimensions=3, prompt_eval_count=4))

    vector = embed_model.get_text_embedding("The sky is blue.")

    assert vector == [0.1, 0.11, 0.12]
    rows = memory_logger.pop()
    (sdk,) = _assert_embed_spans_under(rows, "The sky is blue.")
    assert sdk["input"] == "The sky is blue."
    assert sdk["metrics"]["prompt_tokens"] == 4
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "OllamaEmbedding")


def test_query_embedding_puts_sdk_span_under_llamaindex_span(
    embed_model: OllamaEmbedding, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    embed_model.get_query_embedding("Why is the sky blue?")

    rows = memory_logger.pop()
    _assert_embed_spans_under(rows, "Why is the sky blue?")
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "OllamaEmbedding")


def test_batch_embedding_puts_each_sdk_span_under_llamaindex_span(
    adapter: None, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    model = OllamaEmbedding(
        model_name="nomic-embed-text", base_url=ollama_server.url, embed_batch_size=2
    )
    texts = ["one", "two", "three"]

    vectors = model.get_text_embedding_batch(texts)

    assert len(vectors) == 3
    rows = memory_logger.pop()
    sdk_spans = _assert_embed_spans_under(rows, texts)
    # Batches of two on recent versions, one text per request on the oldest.
    sent = [s["input"] if isinstance(s["input"], list) else [s["input"]] for s in sdk_spans]
    assert [text for batch in sent for text in batch] == texts
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "OllamaEmbedding")


async def test_async_embeddings_put_sdk_spans_under_llamaindex_spans(
    embed_model: OllamaEmbedding, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    single = await embed_model.aget_text_embedding("alpha")
    rows = memory_logger.pop()
    assert len(single) == 4
    (sdk,) = _assert_embed_spans_under(rows, "alpha")
    assert only(rows, "ollama.embed") == sdk

    batch = await embed_model.aget_text_embedding_batch(["beta", "gamma"])
    assert len(batch) == 2
    rows += memory_logger.pop()
    batch_rows = [
        r for r in rows if r is not sdk and root_of(rows, r).get("input") == ["beta", "gamma"]
    ]
    _assert_embed_spans_under(batch_rows, ["beta", "gamma"])
    assert_tokens_counted_once(rows, ollama_server.tokens_served(), "OllamaEmbedding")
