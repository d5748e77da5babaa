"""The pure response -> span field functions of the ollama 0.6.x surfaces, table-driven.

Responses are plain stand-ins with the SDK's field names (`SimpleNamespace`), so these run on
every SDK version, including those without the surfaces.
"""

from __future__ import annotations

from types import SimpleNamespace as Response
from typing import Any

import pytest
from braintrust import Attachment
from braintrust_ollama import tracing
from braintrust_ollama.tracing import ENDPOINTS, LOGPROBS_LIMIT, WEB_LINKS_LIMIT, WEB_TEXT_LIMIT

SEARCH = ENDPOINTS["https://ollama.com/api/web_search"]
FETCH = ENDPOINTS["https://ollama.com/api/web_fetch"]
SYSTEMONE = ENDPOINTS["/v1/systemone"]
GENERATE = ENDPOINTS["/api/generate"]
LONG = "z" * (WEB_TEXT_LIMIT + 10)
CUT = "z" * WEB_TEXT_LIMIT + "… [10 more characters not logged]"


@pytest.mark.parametrize(
    ("endpoint", "response", "output"),
    [
        (SEARCH, Response(results=[]), {"results": []}),
        (
            SEARCH,
            Response(results=[Response(title="T", url="https://a", content=LONG)]),
            {"results": [{"title": "T", "url": "https://a", "content": CUT}]},
        ),
        (FETCH, Response(title=None, content="", links=[]), {"content": "", "links": []}),
        (
            FETCH,
            Response(title="P", content=LONG, links=["l"] * (WEB_LINKS_LIMIT + 1)),
            {
                "title": "P",
                "content": CUT,
                "links": ["l"] * WEB_LINKS_LIMIT,
                "links_omitted": 1,
            },
        ),
        (SYSTEMONE, Response(answers={}), {}),
    ],
)
def test_output(endpoint: Any, response: Any, output: Any) -> None:
    assert endpoint.output(response, {}) == output


@pytest.mark.parametrize(
    ("endpoint", "request_body", "metadata"),
    [
        (
            SEARCH,
            {"query": "q", "max_results": 3},
            {"provider": "ollama", "max_results": 3, "host": "https://ollama.com"},
        ),
        (FETCH, {"url": "https://a"}, {"provider": "ollama", "host": "https://ollama.com"}),
    ],
)
def test_web_metadata_names_ollama_com_not_the_local_server(
    endpoint: Any, request_body: dict[str, Any], metadata: dict[str, Any]
) -> None:
    assert endpoint.metadata(request_body, None, "http://127.0.0.1:11434") == metadata


@pytest.mark.parametrize(
    ("usage", "metrics"),
    [
        (None, {}),
        (
            Response(input_tokens=12, output_tokens=3),
            {"prompt_tokens": 12, "completion_tokens": 3, "tokens": 15},
        ),
    ],
)
def test_systemone_usage_is_tokens(usage: Any, metrics: dict[str, float]) -> None:
    assert SYSTEMONE.metrics(Response(usage=usage)) == metrics


@pytest.mark.parametrize(
    ("count", "kept", "omitted"),
    [(0, None, None), (2, 2, None), (LOGPROBS_LIMIT + 5, LOGPROBS_LIMIT, 5)],
)
def test_logprobs_are_bounded(count: int, kept: int | None, omitted: int | None) -> None:
    entries = [{"token": str(i), "logprob": -1.0} for i in range(count)]
    metadata = tracing.logprobs_metadata(entries)
    assert len(metadata.get("token_logprobs", [])) == (kept or 0)
    assert metadata.get("token_logprobs_omitted") == omitted


@pytest.mark.parametrize(
    ("text", "thinking", "message"),
    [
        ("", None, {"role": "assistant", "content": ""}),
        ("Here it is.", None, {"role": "assistant", "content": "Here it is."}),
        ("", "hmm", {"role": "assistant", "content": "", "reasoning": [{"content": "hmm"}]}),
    ],
)
def test_generated_image_is_an_attachment_beside_the_message(
    text: str, thinking: str | None, message: dict[str, Any]
) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVQI12P4z8AAAAMBAQAY3Y2wAAAAAElFTkSuQmCC"
    response = Response(response=text, thinking=thinking, image=png, done_reason="stop")
    (choice,) = GENERATE.output(response, {})
    assert list(choice) == ["index", "finish_reason", "message", "image"]
    assert choice["message"] == message
    assert isinstance(choice["image"], Attachment)
    assert choice["image"].reference["content_type"] == "image/png"
