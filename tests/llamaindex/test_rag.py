"""End to end: a VectorStoreIndex over a few documents, embedded with `OllamaEmbedding`, queried
through a query engine answering with `Ollama` — whole and streamed."""

from __future__ import annotations

from typing import Any

import braintrust
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.embeddings.ollama import OllamaEmbedding
from llama_index.llms.ollama import Ollama
from support.ollama_server import Chat, FakeOllama
from support.spans import by_name, choices, parent_of, token_sums

DOCUMENTS = [
    Document(text="Paris is the capital of France."),
    Document(text="Berlin is the capital of Germany."),
    Document(text="Madrid is the capital of Spain."),
]
LLM_SPAN = {"ollama.chat": "Ollama", "ollama.embed": "OllamaEmbedding"}


def _assert_every_sdk_span_under_its_llamaindex_span(rows: list[dict[str, Any]]) -> None:
    sdk_spans = [r for r in rows if r["span_attributes"]["name"].startswith("ollama.")]
    assert sdk_spans
    for sdk in sdk_spans:
        name = sdk["span_attributes"]["name"]
        parent = parent_of(rows, sdk)
        assert parent is not None, f"{name} has no parent"
        assert parent["span_attributes"]["name"] == LLM_SPAN[name]
        assert "end" in parent["metrics"]
        assert parent["metrics"]["end"] >= sdk["metrics"]["end"]


def _assert_tokens_match_server(rows: list[dict[str, Any]], server: FakeOllama) -> None:
    prompt, completion = server.tokens_served()
    assert token_sums(rows) == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens": prompt + completion,
    }


def _index(server: FakeOllama) -> VectorStoreIndex:
    embed_model = OllamaEmbedding(model_name="nomic-embed-text", base_url=server.url)
    return VectorStoreIndex.from_documents(DOCUMENTS, embed_model=embed_model)


def test_rag_query_nests_every_sdk_span_and_counts_tokens_once(
    adapter: None, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", Chat("Paris.", prompt_eval_count=120, eval_count=3))
    llm = Ollama(model="llama3.2:1b", base_url=ollama_server.url, request_timeout=10.0)

    with braintrust.start_span(name="rag") as root:
        engine = _index(ollama_server).as_query_engine(llm=llm, similarity_top_k=2)
        response = engine.query("What is the capital of France?")

    assert str(response) == "Paris."
    rows = memory_logger.pop()
    assert by_name(rows, "ollama.chat") and by_name(rows, "ollama.embed")
    assert all(r["root_span_id"] == root.root_span_id for r in rows)
    _assert_every_sdk_span_under_its_llamaindex_span(rows)
    _assert_tokens_match_server(rows, ollama_server)
    (rag,) = by_name(rows, "rag")
    (query,) = [r for r in by_name(rows, "RetrieverQueryEngine") if parent_of(rows, r) == rag]
    assert query["output"]["response"] == "Paris."


@pytest.mark.parametrize("use_async", [False, True], ids=["query", "aquery"])
async def test_streaming_rag_query_is_one_trace_whose_spans_end_with_the_stream(
    use_async: bool, adapter: None, memory_logger: Any, ollama_server: FakeOllama
) -> None:
    ollama_server.reply("/api/chat", Chat("Paris is the capital.", prompt_eval_count=90))
    llm = Ollama(model="llama3.2:1b", base_url=ollama_server.url, request_timeout=10.0)
    index = _index(ollama_server)
    memory_logger.pop()  # the index's embeddings...
    ollama_server.served.clear()  # ...and their tokens

    with braintrust.start_span(name="rag") as root:
        engine = index.as_query_engine(llm=llm, streaming=True)
        if use_async:
            response = await engine.aquery("What is the capital of France?")
        else:
            response = engine.query("What is the capital of France?")
    # As the tutorials do: the answer is read after the query returned.
    if use_async:
        text = "".join([token async for token in response.async_response_gen()])
    else:
        text = "".join(response.response_gen)

    assert text == "Paris is the capital."
    rows = memory_logger.pop()
    assert all(r["root_span_id"] == root.root_span_id for r in rows)
    _assert_every_sdk_span_under_its_llamaindex_span(rows)
    _assert_tokens_match_server(rows, ollama_server)
    (sdk,) = by_name(rows, "ollama.chat")
    chat = parent_of(rows, sdk)
    assert chat is not None
    assert chat["output"] == choices({"role": "assistant", "content": "Paris is the capital."})
    # LLM.stream() / astream(): its span holds the streamed text and ends with the stream.
    stream = parent_of(rows, chat)
    assert stream is not None and stream["span_attributes"]["name"] == "Ollama"
    assert stream["output"] == "Paris is the capital."
    assert stream["metrics"]["end"] >= sdk["metrics"]["end"]
    # The query engine's span holds the answer and its sources, like a whole query's.
    (rag,) = by_name(rows, "rag")
    (query,) = [r for r in by_name(rows, "RetrieverQueryEngine") if parent_of(rows, r) == rag]
    assert query["output"]["response"] == "Paris is the capital."
    sources = [n["text"] for n in query["output"]["source_nodes"]]
    assert len(sources) == 2 and set(sources) <= {d.text for d in DOCUMENTS}
    assert query["metrics"]["end"] >= stream["metrics"]["end"]
