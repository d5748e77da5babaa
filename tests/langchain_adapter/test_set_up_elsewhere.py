"""Global registration is process-wide: set up in one thread, task or context (a FastAPI
lifespan, uvicorn in a thread, a notebook cell), LangChain runs anywhere else are traced, in
threads and contexts made before or after the set-up, with Braintrust's set-up or ours."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from braintrust_ollama import setup_ollama, unpatch_ollama
from braintrust_ollama_langchain import setup_langchain
from langchain_ollama import ChatOllama
from support.ollama_server import FakeOllama
from support.spans import parent_of, span_tree

from .traces import (
    TOKEN_KEYS,
    Row,
    assert_tokens_counted_once,
    braintrust_setup_langchain,
    sdk_spans,
)

WAIT_S = 30.0


def braintrust_set_up_then_ours() -> bool:
    """Braintrust's set-up (its docs) then our core quick start; setup_langchain() never called."""
    return braintrust_setup_langchain() and setup_ollama()


SET_UPS: dict[str, Callable[[], bool]] = {
    "setup_ollama() + setup_langchain()": lambda: setup_ollama() and setup_langchain(),
    "Braintrust's set-up + setup_ollama()": braintrust_set_up_then_ours,
    "setup_ollama() + Braintrust's set-up": lambda: setup_ollama() and braintrust_setup_langchain(),
}


@pytest.fixture(params=list(SET_UPS))
def set_up(request: pytest.FixtureRequest) -> Iterator[Callable[[], bool]]:
    """The set-up, called by the test where the user would (the adapter is not installed yet)."""
    yield SET_UPS[request.param]
    unpatch_ollama()


def assert_one_traced_run_per_call(rows: list[Row], server: FakeOllama, calls: int) -> None:
    """Each call is its own trace, `ChatOllama` > `ollama.chat`, the tokens on the SDK span."""
    assert span_tree(rows) == ["ChatOllama", "  ollama.chat"] * calls
    assert len({r["root_span_id"] for r in rows}) == calls
    assert len(sdk_spans(rows)) == calls == len(server.served)
    for span in sdk_spans(rows):
        run = parent_of(rows, span)
        assert run is not None and not set(run.get("metrics") or {}) & set(TOKEN_KEYS)
    assert_tokens_counted_once(rows, server.tokens_served())


def test_set_up_in_another_thread_traces_runs_in_this_one(
    chat: ChatOllama, ollama_server: FakeOllama, set_up: Callable[[], bool], memory_logger: Any
) -> None:
    done: list[bool] = []
    thread = threading.Thread(target=lambda: done.append(set_up()))
    thread.start()
    thread.join(WAIT_S)
    assert done == [True]

    assert chat.invoke("Hi").content
    assert_one_traced_run_per_call(memory_logger.pop(), ollama_server, calls=1)


def test_set_up_before_a_thread_pool_traces_runs_in_its_workers(
    chat: ChatOllama, ollama_server: FakeOllama, set_up: Callable[[], bool], memory_logger: Any
) -> None:
    assert set_up() is True
    with ThreadPoolExecutor(max_workers=3) as pool:  # workers start with an empty context
        replies = list(pool.map(chat.invoke, ["a", "b", "c"]))
    assert len(replies) == 3

    assert_one_traced_run_per_call(memory_logger.pop(), ollama_server, calls=3)


def test_thread_started_before_the_set_up_is_traced(
    chat: ChatOllama, ollama_server: FakeOllama, set_up: Callable[[], bool], memory_logger: Any
) -> None:
    set_up_done = threading.Event()
    replies: list[Any] = []

    def worker() -> None:
        assert set_up_done.wait(WAIT_S)
        replies.append(chat.invoke("Hi"))

    thread = threading.Thread(target=worker)
    thread.start()
    assert set_up() is True
    set_up_done.set()
    thread.join(WAIT_S)
    assert len(replies) == 1

    assert_one_traced_run_per_call(memory_logger.pop(), ollama_server, calls=1)


def test_set_up_in_one_notebook_cell_traces_runs_in_the_next(
    chat: ChatOllama, ollama_server: FakeOllama, set_up: Callable[[], bool], memory_logger: Any
) -> None:
    """Like Jupyter's IPython kernel: each cell runs as its own task, in a copy of the context."""

    async def cell_1() -> bool:
        return set_up()

    async def cell_2() -> Any:
        return await chat.ainvoke("Hi")

    assert contextvars.copy_context().run(asyncio.run, cell_1()) is True
    assert contextvars.copy_context().run(asyncio.run, cell_2()).content

    assert_one_traced_run_per_call(memory_logger.pop(), ollama_server, calls=1)
