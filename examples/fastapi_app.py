"""A FastAPI app streaming Ollama chat replies, one Braintrust trace per request.

    uv run uvicorn examples.fastapi_app:app --port 8000
    curl -N "http://127.0.0.1:8000/chat?q=Why+is+the+sky+blue%3F"
    uv run braintrust-ollama traces show last

Each request becomes a `GET /chat` span with the `ollama.chat` call under it; the response's
`traceparent` header names that span. With BRAINTRUST_API_KEY set the traces go to the Braintrust
project `ollama-fastapi-example` (and a copy to the local store); without it, to the local store.
Set OLLAMA_HOST / OLLAMA_MODEL to use another server or model.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import ollama
from braintrust_ollama import init_logger, setup_ollama
from braintrust_ollama_fastapi import BraintrustMiddleware
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

MODEL = os.environ.get("OLLAMA_MODEL", "llama3.2:1b")

init_logger(project="ollama-fastapi-example")
setup_ollama()

app = FastAPI()
app.add_middleware(BraintrustMiddleware, skip_paths=["/health"], record_headers=["x-request-id"])
client = ollama.AsyncClient()


@app.get("/chat")
async def chat(q: str) -> StreamingResponse:
    stream = await client.chat(MODEL, messages=[{"role": "user", "content": q}], stream=True)

    async def relay() -> AsyncIterator[str]:
        async for part in stream:
            yield part.message.content or ""

    return StreamingResponse(relay(), media_type="text/plain")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
