"""The adapters inside a request: LangChain's and LlamaIndex's spans nest under the request span,
and each Ollama SDK span under the framework span that made it, tokens counted once."""

from __future__ import annotations

from braintrust_ollama_fastapi import BraintrustMiddleware
from braintrust_ollama_langchain import BraintrustCallbackHandler
from braintrust_ollama_llamaindex import setup_llamaindex, unpatch_llamaindex
from fastapi import FastAPI
from fastapi.testclient import TestClient
from langchain_ollama import ChatOllama
from llama_index.llms.ollama import Ollama
from support.ollama_server import MODEL
from support.spans import by_name, only, parent_of, token_sums


def test_langchain_and_llamaindex_calls_nest_under_their_request_span(
    memory_logger, ollama_server, traced
):
    chat = ChatOllama(model=MODEL, base_url=ollama_server.url)
    llm = Ollama(model=MODEL, base_url=ollama_server.url, request_timeout=10.0)
    app = FastAPI()
    app.add_middleware(BraintrustMiddleware)

    @app.get("/langchain/{topic}")
    async def with_langchain(topic: str) -> dict[str, str]:
        handler = BraintrustCallbackHandler()
        reply = await chat.ainvoke(f"Tell me about {topic}", config={"callbacks": [handler]})
        return {"answer": str(reply.content)}

    @app.get("/llamaindex/{topic}")
    async def with_llamaindex(topic: str) -> dict[str, str]:
        text = ""
        async for chunk in await llm.astream_complete(f"Tell me about {topic}"):
            text = chunk.text
        return {"answer": text}

    assert setup_llamaindex()
    try:
        with TestClient(app) as client:
            assert client.get("/langchain/sky").json() == {
                "answer": "Hello! How can I help you today?"
            }
            assert client.get("/llamaindex/sea").status_code == 200
    finally:
        unpatch_llamaindex()

    rows = memory_logger.pop()
    sdk_spans = [r for r in rows if r["span_attributes"]["name"].startswith("ollama.")]
    assert len(sdk_spans) == 2
    for route in ("GET /langchain/{topic}", "GET /llamaindex/{topic}"):
        request = only(rows, route)
        assert request.get("span_parents") in (None, [])  # each request is its own trace
        (sdk,) = [r for r in sdk_spans if r["root_span_id"] == request["root_span_id"]]
        framework = parent_of(rows, sdk)
        assert framework is not None and framework["span_id"] != request["span_id"]
        # the framework's span sits between the request and the SDK span
        chain = [framework]
        while chain[-1]["span_id"] != request["span_id"]:
            parent = parent_of(rows, chain[-1])
            assert parent is not None, f"{framework['span_attributes']['name']} is outside {route}"
            chain.append(parent)
    assert (
        parent_of(rows, only(rows, "ChatOllama"))["span_id"]
        == only(rows, "GET /langchain/{topic}")["span_id"]
    )
    assert by_name(rows, "ChatOllama")[0]["metrics"].get("prompt_tokens") is None
    prompt, completion = ollama_server.tokens_served()
    assert token_sums(rows) == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens": prompt + completion,
    }
