"""`unpatch_langchain()` restores everything the adapter patched or registered, exactly."""

from __future__ import annotations

from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from braintrust_ollama import setup_ollama, unpatch_ollama
from braintrust_ollama_langchain import setup_langchain, unpatch_langchain
from braintrust_ollama_langchain._handlers import handler_homes
from langchain_core.callbacks import manager as callback_manager
from langchain_ollama import ChatOllama
from support.ollama_server import FakeOllama
from support.spans import span_tree

from .traces import braintrust_setup_langchain


def snapshot() -> list[Any]:
    """What the adapter patches: each handler class's `_end_span`, each home's global-handler
    variable, and LangChain's `_configure`."""
    homes = handler_homes()
    return [
        *(home.handler_class.__dict__["_end_span"] for home in homes),
        *(home.global_handler for home in homes),
        callback_manager.__dict__["_configure"],
    ]


@pytest.fixture
def sdk_traced_after_snapshot() -> Iterator[None]:
    yield
    unpatch_ollama()


@pytest.mark.usefixtures("sdk_traced_after_snapshot")
def test_unpatch_restores_what_setup_patched_and_unregisters_its_handler(
    chat: ChatOllama, ollama_server: FakeOllama, memory_logger: Any
) -> None:
    original = snapshot()
    assert setup_ollama() is True  # installs the hand-off
    assert setup_langchain() is True
    patched = snapshot()
    assert all(p is not o for p, o in zip(patched, original, strict=True))
    chat.invoke("Hi")
    assert span_tree(memory_logger.pop()) == ["ChatOllama", "  ollama.chat"]

    unpatch_langchain()
    assert all(r is o for r, o in zip(snapshot(), original, strict=True))
    assert all(isinstance(home.global_handler, ContextVar) for home in handler_homes())
    assert all(home.global_handler.get() is None for home in handler_homes())
    chat.invoke("Hi")
    assert span_tree(memory_logger.pop()) == ["ollama.chat"]  # no handler left registered
    unpatch_langchain()  # a second unpatch is harmless
    assert all(r is o for r, o in zip(snapshot(), original, strict=True))

    assert setup_langchain() is True  # and set-up works again
    chat.invoke("Hi")
    assert span_tree(memory_logger.pop()) == ["ChatOllama", "  ollama.chat"]


@pytest.mark.usefixtures("traced")  # setup_ollama() installs the hand-off
def test_unpatch_keeps_a_handler_braintrusts_set_up_registered(memory_logger: Any) -> None:
    assert braintrust_setup_langchain() is True
    handler = handler_homes()[0].global_handler.get()
    assert handler is not None

    unpatch_langchain()
    assert isinstance(handler_homes()[0].global_handler, ContextVar)
    assert handler_homes()[0].global_handler.get() is handler
