"""setup_ollama / unpatch_ollama / wrap_ollama: what is traced, exactly once, and undone exactly."""

from __future__ import annotations

import contextvars
import importlib.metadata
import logging
import sys

import braintrust
import ollama
import pytest
from braintrust_ollama import (
    setup_ollama,
    tokens_counted_under,
    unpatch_ollama,
    wrap_ollama,
)
from braintrust_ollama._patching import is_patched
from support.spans import by_name, only

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


def test_setup_is_idempotent_and_unpatch_restores_the_sdk_exactly():
    originals = (ollama.Client.__dict__["_request"], ollama.AsyncClient.__dict__["_request"])
    assert setup_ollama() is True
    patched = (ollama.Client.__dict__["_request"], ollama.AsyncClient.__dict__["_request"])
    assert patched[0] is not originals[0] and patched[1] is not originals[1]
    assert setup_ollama() is True
    assert (ollama.Client.__dict__["_request"], ollama.AsyncClient.__dict__["_request"]) == patched
    unpatch_ollama()
    assert ollama.Client.__dict__["_request"] is originals[0]
    assert ollama.AsyncClient.__dict__["_request"] is originals[1]
    unpatch_ollama()  # a second unpatch is harmless
    assert ollama.Client.__dict__["_request"] is originals[0]


def test_module_function_and_function_imported_before_setup_are_traced(
    memory_logger, ollama_server, traced, monkeypatch
):
    # `ollama.chat` is bound to a default client made at import; point that client at the server.
    from ollama import chat as imported_early

    default_client = ollama._client  # the package attribute is the default Client instance
    monkeypatch.setattr(default_client, "_client", ollama.Client(host=ollama_server.url)._client)
    with braintrust.start_span(name="request") as parent:
        ollama.chat(model="llama3.2", messages=MESSAGES)
        imported_early(model="llama3.2", messages=MESSAGES)
        ollama.generate(model="llama3.2", prompt="Hi")
    rows = memory_logger.pop()
    chats = by_name(rows, "ollama.chat")
    assert len(chats) == 2
    assert all(r["span_parents"] == [parent.span_id] for r in chats)
    assert only(rows, "ollama.generate")["span_parents"] == [parent.span_id]


def test_wrap_ollama_traces_one_client_and_never_twice_with_setup(memory_logger, ollama_server):
    wrapped = wrap_ollama(ollama.Client(host=ollama_server.url))
    assert wrap_ollama(wrapped) is wrapped
    other = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        wrapped.chat(model="llama3.2", messages=MESSAGES)
        other.chat(model="llama3.2", messages=MESSAGES)  # not wrapped, not patched: no span
    assert len(by_name(memory_logger.pop(), "ollama.chat")) == 1

    setup_ollama()
    try:
        with braintrust.start_span(name="request"):
            wrapped.chat(model="llama3.2", messages=MESSAGES)
            other.chat(model="llama3.2", messages=MESSAGES)
    finally:
        unpatch_ollama()
    assert len(by_name(memory_logger.pop(), "ollama.chat")) == 2  # one span per call


async def test_wrap_ollama_on_async_client_is_traced_once_with_setup(
    memory_logger, ollama_server, traced
):
    client = wrap_ollama(ollama.AsyncClient(host=ollama_server.url))
    with braintrust.start_span(name="request") as parent:
        await client.chat(model="llama3.2", messages=MESSAGES)
    (span,) = by_name(memory_logger.pop(), "ollama.chat")
    assert span["span_parents"] == [parent.span_id]


def test_management_calls_are_not_traced(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.show("llama3.2")
        client.list()
        client.ps()
    rows = memory_logger.pop()
    assert [r["span_attributes"]["name"] for r in rows] == ["request"]


def test_without_a_logger_the_call_runs_untouched_and_nothing_is_logged(ollama_server, traced):
    from braintrust import logger as bt_logger

    bt_logger._state.reset_parent_state()
    with bt_logger._internal_with_memory_background_logger() as background:
        client = ollama.Client(host=ollama_server.url)
        plain = client.chat(model="llama3.2", messages=MESSAGES)
        streamed = list(client.chat(model="llama3.2", messages=MESSAGES, stream=True))
        assert background.pop() == []
    assert plain.message.content == "Hello! How can I help you today?"
    assert streamed[-1].done is True


def test_spans_mark_their_parent_as_counting_tokens(memory_logger, ollama_server, traced):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="untouched") as untouched:
        pass
    with braintrust.start_span(name="model run") as run:
        client.chat(model="llama3.2", messages=MESSAGES)
    assert tokens_counted_under(run) is True
    assert tokens_counted_under(untouched) is False
    assert tokens_counted_under(None) is False


def test_auto_instrument_turns_on_ollama_and_the_installed_adapters():
    from braintrust_ollama import auto_instrument

    context = contextvars.copy_context()
    try:
        results = context.run(auto_instrument, openai=False, anthropic=False)
        assert results["ollama"] is True
        assert is_patched(ollama.Client, "_request")
    finally:
        unpatch_ollama()
        _unpatch_langchain_if_installed()


def _unpatch_langchain_if_installed() -> None:
    """The LangChain adapter registers its global handler process-wide: leave none behind."""
    try:
        from braintrust_ollama_langchain import unpatch_langchain
    except ImportError:  # core-only environments
        return
    unpatch_langchain()
    for context_module in (
        "braintrust.integrations.langchain.context",
        "braintrust_langchain.context",
    ):
        module = sys.modules.get(context_module)
        if module is not None:
            module.braintrust_callback_handler_var.set(None)


def test_auto_instrument_can_leave_ollama_alone():
    from braintrust_ollama import auto_instrument

    results = auto_instrument(ollama=False, langchain=False, llamaindex=False)
    assert "ollama" not in results
    assert not is_patched(ollama.Client, "_request")


def test_a_parent_given_as_an_exported_span_is_the_sdk_spans_parent(
    memory_logger, ollama_server, traced
):
    from braintrust.logger import parent_context

    with braintrust.start_span(name="remote caller") as remote:
        exported = remote.export()
    client = ollama.Client(host=ollama_server.url)
    with parent_context(exported):  # as a service continuing a caller's trace does
        stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
    for _ in stream:  # iterated after the parent context was left
        pass
    span = only(memory_logger.pop(), "ollama.chat")
    assert span["span_parents"] == [remote.span_id]
    assert span["root_span_id"] == remote.root_span_id


def test_wrap_ollama_keeps_another_librarys_wrapper(memory_logger, ollama_server, monkeypatch):
    import wrapt

    seen = []

    def other_instrumentation(wrapped, instance, args, kwargs):
        seen.append(args[2])
        return wrapped(*args, **kwargs)

    monkeypatch.setattr(
        ollama.Client,
        "_request",
        wrapt.FunctionWrapper(ollama.Client._request, other_instrumentation),
    )
    client = wrap_ollama(ollama.Client(host=ollama_server.url))
    with braintrust.start_span(name="request"):
        client.chat(model="llama3.2", messages=MESSAGES)
    assert seen == ["/api/chat"]  # theirs still runs...
    assert len(by_name(memory_logger.pop(), "ollama.chat")) == 1  # ...and ours once


def test_wrap_ollama_on_the_module_traces_its_functions_and_returns_the_module(
    memory_logger, ollama_server, monkeypatch
):
    """`client = wrap_ollama(ollama)`, as a `wrap_openai` user writes it: the module's functions
    (bound to its default client) are traced, imported before or after, and nothing else is."""
    from ollama import generate as imported_early

    default_client = ollama._client  # the package attribute is the default Client instance
    monkeypatch.setattr(default_client, "_client", ollama.Client(host=ollama_server.url)._client)
    try:
        client = wrap_ollama(ollama)
        assert client is ollama
        assert wrap_ollama(ollama) is ollama  # idempotent
        other = ollama.Client(host=ollama_server.url)
        with braintrust.start_span(name="request") as parent:
            client.chat(model="llama3.2", messages=MESSAGES)
            imported_early(model="llama3.2", prompt="Hi")
            other.chat(model="llama3.2", messages=MESSAGES)  # another client: not wrapped
        rows = memory_logger.pop()
        assert [r["span_attributes"]["name"] for r in rows if r.get("span_parents")] == [
            "ollama.chat",
            "ollama.generate",
        ]
        assert all(r["span_parents"] == [parent.span_id] for r in rows if r.get("span_parents"))
        assert sum(r.get("metrics", {}).get("prompt_tokens", 0) for r in rows) == sum(
            s.prompt_eval_count or 0 for s in ollama_server.served[:2]
        )

        setup_ollama()  # with the SDK patched too, a call is still one span
        try:
            ollama.chat(model="llama3.2", messages=MESSAGES)
        finally:
            unpatch_ollama()
        assert len(by_name(memory_logger.pop(), "ollama.chat")) == 1
    finally:
        default_client.__dict__.pop("_request", None)


def test_an_ollama_older_than_0_4_is_left_untraced_and_said_once(
    memory_logger, ollama_server, monkeypatch, caplog
):
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "0.3.3" if name == "ollama" else real_version(name),
    )
    client = ollama.Client(host=ollama_server.url)
    with caplog.at_level(logging.WARNING, logger="braintrust_ollama"):
        set_ups = [setup_ollama(), setup_ollama(), wrap_ollama(client) is client]
    assert set_ups == [False, False, True]
    assert not is_patched(ollama.Client, "_request") and not is_patched(client, "_request")
    with braintrust.start_span(name="request"):
        client.chat(model="llama3.2", messages=MESSAGES)
    assert by_name(memory_logger.pop(), "ollama.chat") == []
    assert [r.getMessage() for r in caplog.records] == [
        "braintrust-ollama: ollama 0.3.3 is installed, but this needs ollama>=0.4: not patching it"
    ]


def test_setup_ollama_names_every_traced_endpoint():
    """`help(setup_ollama)` says which SDK calls are traced: every one `tracing.ENDPOINTS` has."""
    from braintrust_ollama import patchers
    from braintrust_ollama.tracing import ENDPOINTS

    for endpoint in ENDPOINTS.values():
        method = endpoint.name.removeprefix("ollama.")
        assert f"`{method}`" in setup_ollama.__doc__, method
        assert f"`{method}`" in patchers.__doc__, method


def test_wrap_ollama_rejects_what_it_cannot_trace_naming_what_it_accepts():
    for wrong in (ollama.Client, object(), braintrust, "ollama"):
        with pytest.raises(TypeError, match=r"ollama\.Client.*ollama\.AsyncClient.*ollama module"):
            wrap_ollama(wrong)


# --- set-ups from many threads at once ----------------------------------------------------------


def _pausing_in_our_code(pause_s: float):
    """A thread trace that pauses on every line of braintrust_ollama's own code for up to
    `pause_s`, as a busy machine might between any two lines: with sixteen threads, one set-up
    then runs whole between another's check and its patch."""
    import random
    import time

    pauses = random.Random(17)

    def trace(frame, event, arg):
        if event == "call" and not frame.f_globals.get("__name__", "").startswith(
            "braintrust_ollama"
        ):
            return None
        if event == "line":
            time.sleep(pauses.uniform(0, pause_s))
        return trace

    return trace


def _together(count: int, work) -> None:
    """Run `work(i)` in `count` threads released at once; re-raise the first failure."""
    import threading

    start = threading.Barrier(count)
    failures: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as error:  # reported to the test below
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures


def test_sixteen_concurrent_set_ups_patch_once_and_unpatch_exactly(memory_logger, ollama_server):
    import threading

    originals = (ollama.Client.__dict__["_request"], ollama.AsyncClient.__dict__["_request"])
    threading.settrace(_pausing_in_our_code(0.002))
    try:
        _together(16, lambda i: setup_ollama())
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
    try:
        client = ollama.Client(host=ollama_server.url)
        with braintrust.start_span(name="request"):
            client.chat(model="llama3.2", messages=MESSAGES)
        (span,) = by_name(memory_logger.pop(), "ollama.chat")
        assert span["metrics"]["prompt_tokens"] == ollama_server.served[0].prompt_eval_count
    finally:
        unpatch_ollama()
    assert ollama.Client.__dict__["_request"] is originals[0]
    assert ollama.AsyncClient.__dict__["_request"] is originals[1]


def test_set_ups_racing_calls_give_at_most_one_span_per_call(memory_logger, ollama_server):
    import threading
    from collections import Counter

    client = ollama.Client(host=ollama_server.url)
    threading.settrace(_pausing_in_our_code(0.002))

    def set_up_or_call(i: int) -> None:
        if i % 2:
            setup_ollama()
            wrap_ollama(client)
        else:
            with braintrust.start_span(name=f"caller {i}"):
                client.chat(model="llama3.2", messages=[{"role": "user", "content": f"call {i}"}])

    try:
        with braintrust.start_span(name="request"):
            _together(16, set_up_or_call)
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
    try:
        with braintrust.start_span(name="after"):
            client.chat(model="llama3.2", messages=[{"role": "user", "content": "after"}])
            ollama.Client(host=ollama_server.url).chat(
                model="llama3.2", messages=[{"role": "user", "content": "other client"}]
            )
    finally:
        unpatch_ollama()
    spans = by_name(memory_logger.pop(), "ollama.chat")
    per_call = Counter(span["input"][0]["content"] for span in spans)
    assert per_call["after"] == per_call["other client"] == 1
    assert set(per_call.values()) == {1}, per_call


# --- a Client subclass with its own _request ----------------------------------------------------


class CountingClient(ollama.Client):
    """A user's client that does something of its own around every request."""

    requests = 0

    def _request(self, *args, **kwargs):
        type(self).requests += 1
        return super()._request(*args, **kwargs)


class CountingAsyncClient(ollama.AsyncClient):
    requests = 0

    async def _request(self, *args, **kwargs):
        type(self).requests += 1
        return await super()._request(*args, **kwargs)


def _set_up(order: str, client):
    if order == "wrap, then setup":
        wrap_ollama(client)
        setup_ollama()
    elif order == "setup, then wrap":
        setup_ollama()
        wrap_ollama(client)
    elif order == "setup only":
        setup_ollama()
    else:
        wrap_ollama(client)
    return client


ORDERS = ["wrap, then setup", "setup, then wrap", "setup only", "wrap only"]


@pytest.mark.parametrize("order", ORDERS)
def test_a_subclass_with_its_own_request_gives_one_span_per_call(
    memory_logger, ollama_server, order
):
    client = _set_up(order, CountingClient(host=ollama_server.url))
    try:
        with braintrust.start_span(name="request") as parent:
            client.chat(model="llama3.2", messages=MESSAGES)
            for _ in client.chat(model="llama3.2", messages=MESSAGES, stream=True):
                pass
    finally:
        unpatch_ollama()
    spans = by_name(memory_logger.pop(), "ollama.chat")
    assert len(spans) == 2, [s["metadata"].get("stream") for s in spans]
    assert all(s["span_parents"] == [parent.span_id] for s in spans)
    served = [s.prompt_eval_count + s.eval_count for s in ollama_server.served]
    assert [s["metrics"]["tokens"] for s in spans] == served
    assert [s["metadata"]["stream"] for s in spans] == [False, True]


@pytest.mark.parametrize("order", ORDERS)
async def test_an_async_subclass_with_its_own_request_gives_one_span_per_call(
    memory_logger, ollama_server, order
):
    client = _set_up(order, CountingAsyncClient(host=ollama_server.url))
    try:
        with braintrust.start_span(name="request"):
            await client.chat(model="llama3.2", messages=MESSAGES)
            async for _ in await client.chat(model="llama3.2", messages=MESSAGES, stream=True):
                pass
    finally:
        unpatch_ollama()
    spans = by_name(memory_logger.pop(), "ollama.chat")
    assert len(spans) == 2
    served = [s.prompt_eval_count + s.eval_count for s in ollama_server.served]
    assert [s["metrics"]["tokens"] for s in spans] == served
