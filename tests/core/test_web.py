"""`web_search` / `web_fetch` (ollama >= 0.6.0): `tool` spans, bounded, never the API key.

The SDK sends these to https://ollama.com with `Authorization: Bearer $OLLAMA_API_KEY`. Here an
httpx transport sends them to FakeOllama instead (never the network), which answers with
hand-made bodies built from the SDK's own response types.
"""

from __future__ import annotations

import json
import os
from typing import Any

import braintrust
import httpx
import ollama
import pytest
from braintrust_ollama.tracing import WEB_LINKS_LIMIT, WEB_TEXT_LIMIT
from core.cassettes import RECORDING, final_reply, replay
from ollama._types import WebFetchResponse, WebSearchResponse, WebSearchResult
from support.ollama_server import Error
from support.spans import only

API_KEY = "sk-ollama-secret-7f3a9c"
SEARCH = WebSearchResponse(
    results=[
        WebSearchResult(
            title="Ollama", url="https://ollama.com", content="Get up and running with LLMs."
        ),
        WebSearchResult(title="Long page", url="https://example.org/long", content="x" * 5000),
    ]
).model_dump(exclude_none=True)
LINKS = [f"https://example.org/{i}" for i in range(WEB_LINKS_LIMIT + 7)]
FETCH = WebFetchResponse(title="Example", content="y" * 4100, links=LINKS).model_dump()


def _to(server_url: str, request: httpx.Request) -> None:
    assert request.url.host == "ollama.com"  # what the SDK asked for
    target = httpx.URL(server_url)
    request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)


class ToFakeOllama(httpx.HTTPTransport):
    def __init__(self, server_url: str) -> None:
        super().__init__()
        self._server_url = server_url

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _to(self._server_url, request)
        return super().handle_request(request)


class AsyncToFakeOllama(httpx.AsyncHTTPTransport):
    def __init__(self, server_url: str) -> None:
        super().__init__()
        self._server_url = server_url

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _to(self._server_url, request)
        return await super().handle_async_request(request)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OLLAMA_API_KEY", API_KEY)
    return API_KEY


def cut(text: str) -> str:
    return f"{text[:WEB_TEXT_LIMIT]}… [{len(text) - WEB_TEXT_LIMIT} more characters not logged]"


def assert_key_never_logged(rows: list[dict[str, Any]], server: Any) -> None:
    # The key did go out (to the stand-in for ollama.com), and is nowhere in the spans.
    headers = {k.lower(): v for k, v in server.requests[-1].headers.items()}
    assert headers["authorization"] == f"Bearer {API_KEY}"
    dumped = json.dumps(rows, default=str)
    assert API_KEY not in dumped and "Bearer" not in dumped
    assert "authorization" not in dumped.lower()


def test_web_search_is_a_tool_span_with_query_in_and_bounded_results_out(
    memory_logger, ollama_server, traced, api_key
):
    ollama_server.reply("/api/web_search", SEARCH)
    client = ollama.Client(transport=ToFakeOllama(ollama_server.url))
    with braintrust.start_span(name="research") as parent:
        response = client.web_search("what is ollama", max_results=2)
    assert response.results[1].content == "x" * 5000  # the user gets everything
    rows = memory_logger.pop()
    span = only(rows, "ollama.web_search")
    assert span["span_attributes"]["type"] == "tool"
    assert span["span_parents"] == [parent.span_id]
    assert span["input"] == {"query": "what is ollama"}
    assert span["output"] == {
        "results": [
            {
                "title": "Ollama",
                "url": "https://ollama.com",
                "content": "Get up and running with LLMs.",
            },
            {"title": "Long page", "url": "https://example.org/long", "content": cut("x" * 5000)},
        ]
    }
    assert span["metadata"] == {
        "provider": "ollama",
        "max_results": 2,
        "host": "https://ollama.com",
    }
    assert set(span["metrics"]) == {"start", "end"}  # no tokens, no time to first token
    assert span.get("error") is None
    assert_key_never_logged(rows, ollama_server)


def test_module_web_fetch_keeps_title_and_bounded_content_and_links(
    memory_logger, ollama_server, traced, api_key, monkeypatch
):
    ollama_server.reply("/api/web_fetch", FETCH)
    default_client = ollama.web_fetch.__self__  # module functions are bound to it at import
    http = httpx.Client(
        headers={"authorization": f"Bearer {API_KEY}"},
        transport=ToFakeOllama(ollama_server.url),
    )
    monkeypatch.setattr(default_client, "_client", http)
    with braintrust.start_span(name="research"):
        page = ollama.web_fetch("https://example.org")
    assert len(page.links) == len(LINKS)
    rows = memory_logger.pop()
    span = only(rows, "ollama.web_fetch")
    assert span["span_attributes"]["type"] == "tool"
    assert span["input"] == {"url": "https://example.org"}
    assert span["output"] == {
        "title": "Example",
        "content": cut("y" * 4100),
        "links": LINKS[:WEB_LINKS_LIMIT],
        "links_omitted": 7,
    }
    assert span["metadata"] == {"provider": "ollama", "host": "https://ollama.com"}
    assert_key_never_logged(rows, ollama_server)


async def test_async_web_search_and_an_error_from_ollama_com(
    memory_logger, ollama_server, traced, api_key
):
    ollama_server.reply("/api/web_search", SEARCH)
    ollama_server.reply("/api/web_fetch", Error(401, "unauthorized"))
    client = ollama.AsyncClient(transport=AsyncToFakeOllama(ollama_server.url))
    with braintrust.start_span(name="research"):
        await client.web_search("what is ollama")
    with braintrust.start_span(name="research"), pytest.raises(ollama.ResponseError):
        await client.web_fetch("https://example.org")
    rows = memory_logger.pop()
    search = only(rows, "ollama.web_search")
    assert search["input"] == {"query": "what is ollama"}
    assert search["metadata"]["max_results"] == 3  # the SDK's default, as sent
    assert len(search["output"]["results"]) == 2
    fetch = only(rows, "ollama.web_fetch")
    assert fetch.get("output") is None
    assert fetch["error"].rstrip().endswith("ResponseError: unauthorized (status code: 401)")
    assert fetch["metadata"]["status_code"] == 401
    assert_key_never_logged(rows, ollama_server)


def test_recorded_web_search_holds_the_bounded_results(memory_logger, traced, monkeypatch):
    """Replays the hand-made cassette (re-recorded with a real OLLAMA_API_KEY)."""
    if not RECORDING:
        monkeypatch.setenv("OLLAMA_API_KEY", API_KEY)
    key = os.environ["OLLAMA_API_KEY"]
    with replay("web_search"), braintrust.start_span(name="research"):
        ollama.Client().web_search("what is ollama", max_results=2)
    reply = final_reply("web_search")
    rows = memory_logger.pop()
    span = only(rows, "ollama.web_search")
    assert span["input"] == {"query": "what is ollama"}
    assert span["output"] == {
        "results": [
            {**result, "content": cut(result["content"])}
            if len(result["content"]) > WEB_TEXT_LIMIT
            else result
            for result in reply["results"]
        ]
    }
    assert span["metadata"] == {
        "provider": "ollama",
        "max_results": 2,
        "host": "https://ollama.com",
    }
    assert key not in json.dumps(rows, default=str)


def test_web_search_with_content_off_keeps_only_metadata(memory_logger, ollama_server, api_key):
    from braintrust_ollama import setup_ollama, unpatch_ollama

    ollama_server.reply("/api/web_search", SEARCH)
    setup_ollama(record_content=False)
    try:
        with braintrust.start_span(name="research"):
            ollama.Client(transport=ToFakeOllama(ollama_server.url)).web_search("private query")
    finally:
        unpatch_ollama()
    rows = memory_logger.pop()
    span = only(rows, "ollama.web_search")
    assert "input" not in span and "output" not in span
    assert span["metadata"] == {
        "provider": "ollama",
        "max_results": 3,
        "host": "https://ollama.com",
    }
    assert "private query" not in json.dumps(rows, default=str)
