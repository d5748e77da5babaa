"""What the model is (`/api/show`, `/api/ps` of the same server), fetched in the background.

Each test turns model information on (`model_info` fixture; the suite runs with it off) and
talks to FakeOllama, which serves `/api/show` and lists in `/api/ps` what it has loaded; faults
(hangs, slow bodies, errors, odd shapes) are scripted per test. Exchanges are hand-made from
Ollama's API documentation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import braintrust
import httpx
import ollama
import pytest
from braintrust_ollama import _model_info
from braintrust_ollama._model_info import facts_from_ps, facts_from_show
from support.ollama_server import _SHOW, Chat, Error, Hang, Raw, Trickle
from support.spans import by_name, only

MODEL = "qwen3:8b"
QWEN_SHOW = {
    **_SHOW,
    "details": {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen3",
        "families": ["qwen3"],
        "parameter_size": "8.2B",
        "quantization_level": "Q4_K_M",
    },
    "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960},
    "capabilities": ["completion", "tools", "thinking"],
}
QWEN_DETAILS = {
    "family": "qwen3",
    "parameter_size": "8.2B",
    "quantization_level": "Q4_K_M",
    "format": "gguf",
    "context_length": 40960,
    "capabilities": ["completion", "tools", "thinking"],
}
HI = [{"role": "user", "content": "Hi"}]


def info_requests(server: Any) -> list[str]:
    return [r.path for r in server.requests if r.path in ("/api/show", "/api/ps")]


# --- reading /api/show and /api/ps (pure) -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "details", "num_predict"),
    [
        (QWEN_SHOW, QWEN_DETAILS, None),
        (
            {**QWEN_SHOW, "parameters": "stop <|im_end|>\nnum_predict                    256"},
            QWEN_DETAILS,
            256,
        ),
        ({"details": {"family": "llama"}}, {"family": "llama"}, None),  # an older server
        (
            {
                "details": {"family": 7, "parameter_size": None, "quantization_level": ["Q4"]},
                "model_info": {"general.architecture": "llama", "llama.context_length": "8192"},
                "capabilities": "completion",
                "parameters": "num_predict lots",
            },
            None,
            None,
        ),
        (
            {
                "details": "gguf",
                "model_info": {"general.architecture": None, "None.context_length": 8192},
                "capabilities": ["completion", 3, None],
            },
            {"capabilities": ["completion"]},
            None,
        ),
        ([1, 2, 3], None, None),
        ("model not found", None, None),
        (None, None, None),
        (
            {"model_info": {"general.architecture": "llama", "llama.context_length": True}},
            None,
            None,
        ),
    ],
    ids=[
        "qwen",
        "modelfile-num_predict",
        "old-server",
        "wrong-types",
        "odd-shapes",
        "a-list",
        "text",
        "null",
        "bool-length",
    ],
)
def test_show_gives_the_model_details_it_has_in_the_expected_types(body, details, num_predict):
    assert facts_from_show(body) == (details, num_predict)


LOADED = {
    "name": "qwen3:8b",
    "model": "qwen3:8b",
    "size": 6_000_000_000,
    "size_vram": 6_000_000_000,
    "digest": "sha256:abc",
    "context_length": 4096,
}


@pytest.mark.parametrize(
    ("body", "model", "found"),
    [
        ({"models": [LOADED]}, "qwen3:8b", (4096, None, "sha256:abc")),
        (
            {"models": [{**LOADED, "size_vram": 3_720_000_000}]},
            "qwen3:8b",
            (4096, 0.62, "sha256:abc"),
        ),
        ({"models": [{**LOADED, "size_vram": 0}]}, "qwen3:8b", (4096, 0.0, "sha256:abc")),
        (
            {"models": [{**LOADED, "size_vram": 5_999_999_999}]},
            "qwen3:8b",
            (4096, 0.999, "sha256:abc"),
        ),
        (
            {"models": [{**LOADED, "name": "llama3.2:latest", "model": "llama3.2:latest"}]},
            "llama3.2",
            (4096, None, "sha256:abc"),
        ),
        (
            {"models": [{k: v for k, v in LOADED.items() if k != "context_length"}]},
            "qwen3:8b",
            (None, None, "sha256:abc"),
        ),  # before v0.9.7
        ({"models": [LOADED]}, "llama3.2", None),  # another model loaded
        ({"models": []}, "qwen3:8b", None),
        (
            {"models": [None, "x", {**LOADED, "size": "big", "context_length": -1, "digest": 5}]},
            "qwen3:8b",
            (None, None, None),
        ),
        ({"models": "all"}, "qwen3:8b", None),
        ([LOADED], "qwen3:8b", None),
    ],
    ids=[
        "on-gpu",
        "partly",
        "cpu-only",
        "almost-all",
        "latest-tag",
        "old-server",
        "other-model",
        "none-loaded",
        "odd-values",
        "odd-list",
        "a-list",
    ],
)
def test_ps_gives_the_loaded_window_gpu_share_and_digest(body, model, found):
    assert facts_from_ps(body, model) == found


# --- on a traced call ---------------------------------------------------------------------------


def test_a_span_carries_what_is_known_when_it_is_written(
    memory_logger, ollama_server, traced, model_info
):
    """The first span of a model is written before `/api/show` answers (held here): it has no
    details; the fetch goes on in the background and the next span has them."""
    release = threading.Event()
    ollama_server.reply("/api/show", Hang(release), QWEN_SHOW)
    ollama_server.load(MODEL)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(model=MODEL, messages=HI)
        release.set()  # the held /api/show is cut; /api/ps finds the model, asks again
        assert model_info.wait(timeout=10)
        client.chat(model=MODEL, messages=HI)
    first, second = by_name(memory_logger.pop(), "ollama.chat")
    assert "model_details" not in first["metadata"]
    assert "context_length" not in first["metadata"]
    assert second["metadata"]["model_details"] == QWEN_DETAILS
    assert second["metadata"]["context_length"] == 4096
    assert info_requests(ollama_server) == ["/api/show", "/api/ps", "/api/show"]


def test_details_window_and_gpu_share_come_from_the_same_server(
    memory_logger, ollama_server, traced, model_info
):
    ollama_server.reply("/api/show", QWEN_SHOW)
    ollama_server.load(MODEL, context_length=8192, size=6_000_000_000, size_vram=3_720_000_000)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(model=MODEL, messages=HI)
        assert model_info.wait(timeout=10)
        client.chat(model=MODEL, messages=HI, options={"temperature": 0})
        list(client.chat(model=MODEL, messages=HI, stream=True))
    _, second, third = by_name(memory_logger.pop(), "ollama.chat")
    for span in (second, third):
        metadata = span["metadata"]
        assert metadata["model_details"] == QWEN_DETAILS
        assert metadata["context_length"] == 8192
        assert metadata["gpu_offload"] == 0.62
        assert metadata["warnings"] == [
            "model only 62% in GPU memory: the rest runs on the CPU, several times slower"
        ]
    # Once per (server, model): one /api/show and one /api/ps for three calls.
    assert info_requests(ollama_server) == ["/api/show", "/api/ps"]


def test_many_first_calls_at_once_fetch_once(memory_logger, ollama_server, traced, model_info):
    ollama_server.load(MODEL)
    client = ollama.Client(host=ollama_server.url)
    barrier = threading.Barrier(16)

    def call() -> None:
        barrier.wait()
        client.chat(model=MODEL, messages=HI)

    with braintrust.start_span(name="request"):
        threads = [threading.Thread(target=call) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert model_info.wait(timeout=10)
    assert len(by_name(memory_logger.pop(), "ollama.chat")) == 16
    assert info_requests(ollama_server) == ["/api/show", "/api/ps"]


def test_ps_is_asked_again_after_a_cold_start_and_show_after_a_new_digest(
    memory_logger, ollama_server, traced, model_info
):
    ollama_server.load(MODEL)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(model=MODEL, messages=HI)
        assert model_info.wait(timeout=10)
        # The model is unloaded, a new build is pulled, and the next call loads it (2 s).
        ollama_server.load(MODEL, context_length=16384, digest="sha256:new")
        ollama_server.reply("/api/chat", Chat("Hi!", load_duration=2_000_000_000))
        client.chat(model=MODEL, messages=HI)
        assert model_info.wait(timeout=10)
        client.chat(model=MODEL, messages=HI)
    _, cold, after = by_name(memory_logger.pop(), "ollama.chat")
    assert cold["metadata"]["cold_start"] is True
    assert cold["metadata"]["context_length"] == 4096  # what was known before this load
    assert after["metadata"]["context_length"] == 16384
    assert info_requests(ollama_server) == ["/api/show", "/api/ps", "/api/ps", "/api/show"]


def test_a_warm_call_asks_nothing_again(memory_logger, ollama_server, traced, model_info):
    ollama_server.load(MODEL)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        for _ in range(5):
            client.generate(model=MODEL, prompt="Hi")
            assert model_info.wait(timeout=10)
    assert info_requests(ollama_server) == ["/api/show", "/api/ps"]


@pytest.mark.parametrize(
    "reply",
    [
        Error(500, "internal error"),
        Error(404, 'model "qwen3:8b" not found'),
        Raw(b"<html>a proxy's error page</html>"),
        Raw(b'{"details": '),
        ["not", "an", "object"],
        {"details": None, "model_info": [], "capabilities": {}},
    ],
    ids=["500", "404", "not-json", "cut-json", "a-list", "odd-shape"],
)  # an odd shape that is JSON is an answer with no details in it: nothing to log
def test_a_failed_or_odd_show_leaves_the_details_out_and_logs_at_debug_at_most(
    memory_logger, ollama_server, traced, model_info, caplog, reply
):
    caplog.set_level(logging.DEBUG, logger="braintrust_ollama")
    # A failed /api/show is asked once more, when /api/ps lists the model: it fails again.
    ollama_server.reply("/api/show", reply, reply)
    ollama_server.load(MODEL)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        first = client.chat(model=MODEL, messages=HI)
        assert model_info.wait(timeout=10)
        second = client.chat(model=MODEL, messages=HI)
    assert first.message.content == second.message.content == "Hello! How can I help you today?"
    spans = by_name(memory_logger.pop(), "ollama.chat")
    assert [s.get("error") for s in spans] == [None, None]
    assert all("model_details" not in s["metadata"] for s in spans)
    assert all(s["metadata"]["context_length"] == 4096 for s in spans[1:])  # /api/ps answered
    levels = [r.levelname for r in caplog.records if r.name.startswith("braintrust_ollama")]
    assert set(levels) <= {"DEBUG"}


def test_a_hung_server_never_delays_a_call_and_the_fetch_ends_in_time(
    memory_logger, ollama_server, traced, model_info, monkeypatch
):
    monkeypatch.setattr(_model_info, "FETCH_TIMEOUT_S", 0.3)
    release = threading.Event()
    ollama_server.reply("/api/show", Hang(release))
    ollama_server.reply("/api/ps", Trickle({"models": []}, every_s=0.05))  # 14 bytes, 0.7 s
    client = ollama.Client(host=ollama_server.url)
    try:
        with braintrust.start_span(name="request"):
            started = time.monotonic()
            client.chat(model=MODEL, messages=HI)
            took = time.monotonic() - started
        fetching = time.monotonic()
        assert model_info.wait(timeout=5)
        waited = time.monotonic() - fetching
    finally:
        release.set()
    assert took < 0.3  # the call did not wait for the hung /api/show
    assert waited < 0.3 * 2 + 1.0  # each request ends at its bound (plus scheduling slack)
    assert "model_details" not in only(memory_logger.pop(), "ollama.chat")["metadata"]


def test_an_unreachable_server_is_one_debug_line_per_fetch(
    memory_logger, traced, model_info, caplog
):
    caplog.set_level(logging.DEBUG, logger="braintrust_ollama")
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening: refused
    port = sock.getsockname()[1]
    try:
        client = ollama.Client(host=f"http://user:hunter2@127.0.0.1:{port}")
        refused = (ConnectionError, httpx.ConnectError)  # ollama 0.4.0 lets httpx's through
        with braintrust.start_span(name="request"), pytest.raises(refused):
            client.chat(model=MODEL, messages=HI)
        assert model_info.wait(timeout=10)
    finally:
        sock.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("braintrust_ollama")]
    assert lines and all(r.levelname == "DEBUG" for r in caplog.records)
    assert not any("hunter2" in line for line in lines)  # the host is named without credentials
    assert only(memory_logger.pop(), "ollama.chat")["error"]


def test_the_fetch_uses_the_clients_headers_and_is_never_a_span(
    memory_logger, ollama_server, traced, model_info
):
    client = ollama.Client(host=ollama_server.url, headers={"Authorization": "Bearer t0ken"})
    with braintrust.start_span(name="request"):
        client.chat(model=MODEL, messages=HI)
        assert model_info.wait(timeout=10)
    rows = memory_logger.pop()
    assert sorted(r["span_attributes"]["name"] for r in rows) == ["ollama.chat", "request"]
    shown = [r for r in ollama_server.requests if r.path == "/api/show"]
    assert [r.body for r in shown] == [{"model": MODEL}]
    headers = {k.lower(): v for k, v in shown[0].headers.items()}
    assert headers["authorization"] == "Bearer t0ken"
    assert "t0ken" not in str(rows)


def test_a_failure_is_logged_without_the_hosts_credentials(
    memory_logger, ollama_server, traced, model_info, caplog
):
    caplog.set_level(logging.DEBUG, logger="braintrust_ollama")
    ollama_server.reply("/api/show", Error(500, "boom"))
    ollama_server.reply("/api/ps", Error(503, "busy"))
    host = ollama_server.url.replace("http://", "http://admin:hunter2@")
    with braintrust.start_span(name="request"):
        ollama.Client(host=host).chat(model=MODEL, messages=HI)
        assert model_info.wait(timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("braintrust_ollama")]
    assert len(lines) == 2
    assert all("hunter2" not in line and "admin" not in line for line in lines)
    assert "HTTP 500" in lines[0] and "HTTP 503" in lines[1]
    assert only(memory_logger.pop(), "ollama.chat").get("error") is None


def test_async_clients_get_model_details_too(memory_logger, ollama_server, traced, model_info):
    ollama_server.reply("/api/show", QWEN_SHOW)

    async def main() -> None:
        client = ollama.AsyncClient(host=ollama_server.url)
        with braintrust.start_span(name="request"):
            await client.chat(model=MODEL, messages=HI)
            await asyncio.to_thread(model_info.wait, 10)
            async for _ in await client.chat(model=MODEL, messages=HI, stream=True):
                pass

    asyncio.run(main())
    _, second = by_name(memory_logger.pop(), "ollama.chat")
    assert second["metadata"]["model_details"] == QWEN_DETAILS


def test_model_info_off_asks_the_server_nothing(memory_logger, ollama_server, traced, monkeypatch):
    monkeypatch.setenv("BRAINTRUST_OLLAMA_MODEL_INFO", "false")
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.chat(model=MODEL, messages=HI)
        client.generate(model=MODEL, prompt="Hi")
    assert info_requests(ollama_server) == []
    for span in memory_logger.pop():
        assert "model_details" not in (span.get("metadata") or {})


def test_embeddings_fetch_nothing(memory_logger, ollama_server, traced, model_info):
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        client.embed(model="all-minilm", input="Hi")
        client.embeddings(model="all-minilm", prompt="Hi")
    assert model_info.wait(timeout=10)
    assert info_requests(ollama_server) == []


def test_calls_that_each_load_the_model_ask_ps_again_at_most_once_a_while(
    memory_logger, ollama_server, traced, model_info, monkeypatch
):
    monkeypatch.setattr(_model_info, "REFRESH_INTERVAL_S", 60.0)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        for _ in range(5):  # keep_alive=0: every call loads the model (2 s)
            ollama_server.reply("/api/chat", Chat("Hi!", load_duration=2_000_000_000))
            client.chat(model=MODEL, messages=HI, keep_alive=0)
    assert model_info.wait(timeout=10)
    assert info_requests(ollama_server) == ["/api/show", "/api/ps", "/api/ps"]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_fetches_with_a_worker_of_its_own(ollama_server, model_info):
    import os

    from braintrust_ollama._call import server_of

    client = ollama.Client(host=ollama_server.url)
    hang = Hang(threading.Event())
    ollama_server.reply("/api/show", hang)  # the parent's fetch is stuck at the fork
    model_info.look_up(ollama_server.url, "parent-model", client, server_of)
    assert hang.reached.wait(timeout=10)
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own worker, its own fetch
        try:
            entry = model_info.look_up(ollama_server.url, MODEL, client, server_of)
            done = model_info.wait(timeout=10)
            os.write(writer, json.dumps([done, entry.facts.details]).encode())
        finally:
            os._exit(0)
    os.close(writer)
    try:
        with os.fdopen(reader) as report:
            done, details = json.loads(report.read())
    finally:
        hang.release.set()
        os.waitpid(pid, 0)
    assert done is True
    assert details["family"] == "llama"  # FakeOllama's canned /api/show


def test_a_model_not_yet_loaded_at_the_first_ps_is_asked_about_again(
    memory_logger, ollama_server, traced, model_info
):
    # /api/ps answered before the model was loaded (a load quicker than a cold start's 0.5 s).
    ollama_server.reply("/api/ps", {"models": []})
    ollama_server.load(MODEL, context_length=8192)
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        for _ in range(3):
            client.chat(model=MODEL, messages=HI)
            assert model_info.wait(timeout=10)
    first, _, third = by_name(memory_logger.pop(), "ollama.chat")
    assert "context_length" not in first["metadata"]
    assert third["metadata"]["context_length"] == 8192
    assert info_requests(ollama_server) == ["/api/show", "/api/ps", "/api/ps"]


def test_a_server_whose_ps_never_lists_the_model_is_asked_three_more_times(
    memory_logger, ollama_server, traced, model_info, monkeypatch
):
    monkeypatch.setattr(_model_info, "REFRESH_INTERVAL_S", 0.0)
    ollama_server.reply("/api/ps", *[{"models": []}] * 10)  # a proxy that hides them, say
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="request"):
        for _ in range(8):
            client.chat(model=MODEL, messages=HI)
            assert model_info.wait(timeout=10)
    assert info_requests(ollama_server) == ["/api/show"] + ["/api/ps"] * 4
