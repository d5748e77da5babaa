"""Fixtures for the LlamaIndex adapter: the adapter set up, and LlamaIndex's Ollama classes
pointed at the in-process Ollama-protocol server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from braintrust_ollama_llamaindex import setup_llamaindex, unpatch_llamaindex
from llama_index.embeddings.ollama import OllamaEmbedding
from llama_index.llms.ollama import Ollama
from support.ollama_server import MODEL, FakeOllama


@pytest.fixture
def adapter(traced: None) -> Iterator[None]:
    """The SDK traced and the adapter set up for this test; the adapter removed afterwards."""
    assert setup_llamaindex()
    yield
    unpatch_llamaindex()


@pytest.fixture
def llm(adapter: None, ollama_server: FakeOllama) -> Ollama:
    # No context_window: LlamaIndex asks the server's /api/show, which must not be traced.
    return Ollama(model=MODEL, base_url=ollama_server.url, request_timeout=10.0)


@pytest.fixture
def embed_model(adapter: None, ollama_server: FakeOllama) -> OllamaEmbedding:
    return OllamaEmbedding(model_name="nomic-embed-text", base_url=ollama_server.url)
