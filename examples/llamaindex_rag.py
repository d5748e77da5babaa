"""Retrieval-augmented generation with LlamaIndex over Ollama, traced.

    ollama pull llama3.2 && ollama pull nomic-embed-text
    uv run python examples/llamaindex_rag.py
    uv run braintrust-ollama traces show last

With BRAINTRUST_API_KEY set the traces go to Braintrust (and a copy to the local store); without
it, to the local store only. Set OLLAMA_HOST / OLLAMA_MODEL to use another server or model.

Each query shows up as one trace: the query engine, the retriever's `OllamaEmbedding` span with
its `ollama.embed` span under it, and the `Ollama` span of the answer with its `ollama.chat`
span (tokens, time to first token) under it — the streamed answer included.
"""

from __future__ import annotations

import os

import braintrust
from braintrust_ollama import init_logger
from braintrust_ollama_llamaindex import setup_llamaindex
from llama_index.core import Document, VectorStoreIndex
from llama_index.embeddings.ollama import OllamaEmbedding
from llama_index.llms.ollama import Ollama

HOST = os.environ.get("OLLAMA_HOST", "http://localhost:11434")
DOCUMENTS = [
    "Paris is the capital of France. It is known for the Eiffel Tower.",
    "Berlin is the capital of Germany. Its Brandenburg Gate dates from 1791.",
    "Madrid is the capital of Spain. The Prado museum opened there in 1819.",
]


def main() -> None:
    init_logger(project=os.environ.get("BRAINTRUST_PROJECT", "ollama-llamaindex"))
    setup_llamaindex()

    embed_model = OllamaEmbedding(model_name="nomic-embed-text", base_url=HOST)
    llm = Ollama(model=os.environ.get("OLLAMA_MODEL", "llama3.2"), base_url=HOST)
    index = VectorStoreIndex.from_documents(
        [Document(text=text) for text in DOCUMENTS], embed_model=embed_model
    )

    with braintrust.start_span(name="ask"):
        answer = index.as_query_engine(llm=llm, similarity_top_k=1).query(
            "When did the Prado open?"
        )
    print(answer)

    with braintrust.start_span(name="ask-streamed"):
        streamed = index.as_query_engine(llm=llm, streaming=True).query("What is Berlin known for?")
        for delta in streamed.response_gen:
            print(delta, end="", flush=True)
    print()
    braintrust.flush()


if __name__ == "__main__":
    main()
