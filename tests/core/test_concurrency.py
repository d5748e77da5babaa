"""Concurrency: many calls in flight at once, each span under the parent that made it."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

import braintrust
import ollama
from support.ollama_server import Chat
from support.spans import by_name, children_of, parent_of, reply_of


async def test_fifty_concurrent_async_streams_each_land_under_their_own_parent(
    memory_logger, ollama_server, traced
):
    for i in range(50):
        ollama_server.reply("/api/chat", Chat(f"answer {i}", eval_count=i + 1))
    client = ollama.AsyncClient(host=ollama_server.url)

    async def one(i: int) -> str:
        with braintrust.start_span(name=f"task-{i}"):
            stream = await client.chat(
                model="llama3.2",
                messages=[{"role": "user", "content": f"question {i}"}],
                stream=True,
            )
            return "".join([chunk.message.content async for chunk in stream])

    answers = await asyncio.gather(*(one(i) for i in range(50)))
    rows = memory_logger.pop()
    spans = by_name(rows, "ollama.chat")
    assert len(spans) == 50
    assert sorted(answers) == sorted(f"answer {i}" for i in range(50))
    for span in spans:
        question = span["input"][0]["content"]
        parent = parent_of(rows, span)
        assert parent is not None
        assert parent["span_attributes"]["name"] == "task-" + question.split()[1]
        assert reply_of(span)["content"] in answers
    for i in range(50):
        (task,) = by_name(rows, f"task-{i}")
        assert len(children_of(rows, task)) == 1
    # Every served completion is counted once, on its own span.
    assert sum(s["metrics"]["completion_tokens"] for s in spans) == ollama_server.tokens_served()[1]


def test_thread_pool_calls_land_under_the_right_parent(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)

    def work(i: int) -> None:
        with braintrust.start_span(name=f"worker-{i}"):
            client.generate(model="llama3.2", prompt=f"prompt {i}")

    with braintrust.start_span(name="batch") as batch:
        with ThreadPoolExecutor(max_workers=8) as pool:
            # The caller's context travels with each task, as Braintrust's setup_threads() does.
            futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(24)]
            for future in futures:
                future.result()
        client.generate(model="llama3.2", prompt="direct")
    rows = memory_logger.pop()
    spans = by_name(rows, "ollama.generate")
    assert len(spans) == 25
    for span in spans:
        parent = parent_of(rows, span)
        assert parent is not None
        ((prompt,),) = [[m["content"] for m in span["input"]]]  # the user message
        if prompt == "direct":
            assert parent["span_id"] == batch.span_id
        else:
            assert parent["span_attributes"]["name"] == "worker-" + prompt.split()[1]
            assert parent["span_parents"] == [batch.span_id]
