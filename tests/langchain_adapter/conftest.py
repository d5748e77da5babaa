"""LangChain fixtures: a global-handler slot restored after each test, models on FakeOllama."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest
from braintrust_ollama_langchain import (
    BraintrustCallbackHandler,
    setup_langchain,
    unpatch_langchain,
)
from braintrust_ollama_langchain._handlers import handler_homes
from langchain_ollama import ChatOllama, OllamaEmbeddings, OllamaLLM
from support.ollama_server import MODEL, FakeOllama


def clear_global_handlers() -> None:
    for home in handler_homes():
        home.global_handler.set(None)


@pytest.fixture(autouse=True)
def no_global_handler() -> Iterator[None]:
    """Each test starts with the adapter uninstalled and no Braintrust handler registered
    globally, and leaves it so."""
    unpatch_langchain()
    clear_global_handlers()
    yield
    unpatch_langchain()
    clear_global_handlers()


@pytest.fixture(params=["global", "callbacks"])
def registration(request: pytest.FixtureRequest, memory_logger: Any) -> dict[str, Any]:
    """The RunnableConfig to invoke with: `setup_langchain()` (global handler) or an explicit
    `config={"callbacks": [BraintrustCallbackHandler()]}`."""
    if request.param == "global":
        assert setup_langchain() is True
        return {}
    return {"callbacks": [BraintrustCallbackHandler()]}


@pytest.fixture
def chat(ollama_server: FakeOllama) -> ChatOllama:
    return ChatOllama(model=MODEL, base_url=ollama_server.url, temperature=0.0)


@pytest.fixture
def llm(ollama_server: FakeOllama) -> OllamaLLM:
    return OllamaLLM(model=MODEL, base_url=ollama_server.url)


@pytest.fixture
def embeddings(ollama_server: FakeOllama) -> OllamaEmbeddings:
    return OllamaEmbeddings(model=MODEL, base_url=ollama_server.url)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# FastAPI and uvicorn are dev tools of the workspace, not installed in the langchain nox sessions.
collect_ignore = (
    [] if _installed("fastapi") and _installed("uvicorn") else ["test_fastapi_lifespan.py"]
)
