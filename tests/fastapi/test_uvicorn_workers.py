"""`uvicorn app:app --workers 4` itself, with the FastAPI quick start's tracing and no key: four
worker processes share the local store; every request is one whole trace, none lost, none twice,
and stopping uvicorn as users do (SIGTERM to it, or Ctrl-C to its process group) is quick and
quiet."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest
from support.ollama_server import Chat, FakeOllama
from support.runner import User
from support.spans import children_of, reply_of, roots, stored_rows

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

WORKERS = 4
REQUESTS = 40
STARTUP_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 15.0

# The FastAPI quick start (packages/fastapi/README.md), with a thread-pool endpoint beside it.
APP = """
import os
import ollama
from fastapi import FastAPI
from braintrust_ollama import init_logger, setup_ollama
from braintrust_ollama_fastapi import BraintrustMiddleware

init_logger(project="my-service")  # Braintrust if BRAINTRUST_API_KEY is set, else the local store
setup_ollama()

app = FastAPI()
app.add_middleware(BraintrustMiddleware, skip_paths=["/health"])


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/ask/{topic}")
async def ask(topic: str):
    messages = [{"role": "user", "content": topic}]
    reply = await ollama.AsyncClient().chat("llama3.2:1b", messages=messages)
    return {"answer": reply.message.content, "worker": os.getpid()}


@app.get("/sync/{topic}")
def sync_ask(topic: str):
    reply = ollama.chat("llama3.2:1b", messages=[{"role": "user", "content": topic}])
    return {"answer": reply.message.content, "worker": os.getpid()}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Lines:
    """A pipe read to its end by a thread; `wait_for(text, count)` waits for lines holding it."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: sum(text in line for line in self.lines) >= count, timeout
            )

    def text(self) -> str:
        self._thread.join(timeout=EXIT_TIMEOUT_S)
        return "".join(self.lines)


@pytest.fixture
def ollama_server() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def service(tmp_path: Path, ollama_server: FakeOllama) -> User:
    """The app's directory, HOME and store, fresh; Ollama is `ollama_server`."""
    return User(tmp_path / "home", ollama_server.url)


@pytest.fixture
def uvicorn_app(service: User) -> Iterator[tuple[subprocess.Popen[str], _Lines, str]]:
    """uvicorn serving APP with 4 workers on 127.0.0.1, started in a session of its own."""
    service.write(APP)
    port = _free_port()
    command = ["uvicorn", "app:app", "--workers", str(WORKERS), "--port", str(port)]
    server = subprocess.Popen(
        [sys.executable, "-m", *command, "--host", "127.0.0.1"],
        env=service.env,
        cwd=service.home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as in a terminal
    )
    assert server.stderr is not None
    stderr = _Lines(server.stderr)
    try:
        ready = stderr.wait_for("Application startup complete", WORKERS, STARTUP_TIMEOUT_S)
        assert ready, stderr.lines
        yield server, stderr, f"http://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=EXIT_TIMEOUT_S)


async def _ask_all(url: str) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        assert (await client.get("/health")).status_code == 200

        async def ask(n: int) -> tuple[str, dict[str, object]]:
            path = f"/ask/topic-{n}" if n % 2 else f"/sync/topic-{n}"
            response = await client.get(path)
            assert response.status_code == 200, response.text
            return f"topic-{n}", response.json()

        return dict(await asyncio.gather(*(ask(n) for n in range(REQUESTS))))


def _stop(server: subprocess.Popen[str], how: str) -> float:
    started = time.perf_counter()
    if how == "SIGTERM":  # systemd, Docker, Kubernetes: to uvicorn's own process
        server.send_signal(signal.SIGTERM)
    else:  # Ctrl-C in a terminal: SIGINT to every process of the group
        os.killpg(server.pid, signal.SIGINT)
    server.wait(timeout=EXIT_TIMEOUT_S)
    return time.perf_counter() - started


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_uvicorn_with_4_workers_stores_every_request_as_one_trace(
    service: User,
    ollama_server: FakeOllama,
    uvicorn_app: tuple[subprocess.Popen[str], _Lines, str],
    how: str,
) -> None:
    server, stderr, url = uvicorn_app
    ollama_server.reply(
        "/api/chat",
        *(Chat(f"answer {k}", prompt_eval_count=10 + k, eval_count=1 + k) for k in range(REQUESTS)),
    )
    started = time.perf_counter()
    answers = asyncio.run(_ask_all(url))
    served_s = time.perf_counter() - started
    exit_s = _stop(server, how)
    errors = stderr.text()
    rows = stored_rows(service.store)
    workers = {answer["worker"] for answer in answers.values()}
    print(
        f"\n{REQUESTS} requests on {len(workers)} of {WORKERS} workers in {served_s:.2f} s;"
        f" uvicorn stopped ({how}) in {exit_s:.2f} s"
    )

    assert server.returncode == 0, errors
    ours = [line for line in errors.splitlines() if not line.startswith("INFO:")]
    assert len(ours) == WORKERS, errors  # one line per worker, no traceback, no warning
    assert all(
        line.startswith("braintrust-ollama: traces go to the local store") for line in ours
    ), ours
    assert len(rows) == 2 * REQUESTS  # no row lost...
    assert len({r["id"] for r in rows}) == len(rows)  # ...none twice
    traces = roots(rows)
    assert len(traces) == REQUESTS
    for root in traces:  # each request, one trace: the request span and its Ollama call
        topic = root["input"]["path"].rsplit("/", 1)[1]
        (chat,) = children_of(rows, root)
        assert root["span_attributes"]["name"] in ("GET /ask/{topic}", "GET /sync/{topic}")
        assert root["output"]["status_code"] == 200
        assert root["metrics"]["end"] >= chat["metrics"]["end"] >= chat["metrics"]["start"]
        assert chat["span_attributes"]["name"] == "ollama.chat"
        assert chat["root_span_id"] == root["root_span_id"]
        assert chat["input"] == [{"role": "user", "content": topic}]
        assert reply_of(chat)["content"] == answers[topic]["answer"]  # the reply it served
    assert sorted(root["input"]["path"] for root in traces) == sorted(
        f"/ask/topic-{n}" if n % 2 else f"/sync/topic-{n}" for n in range(REQUESTS)
    )
    prompt, completion = ollama_server.tokens_served()
    assert len(ollama_server.served) == REQUESTS
    assert sum(r["metrics"].get("prompt_tokens", 0) for r in rows) == prompt
    assert sum(r["metrics"].get("completion_tokens", 0) for r in rows) == completion
    assert exit_s < EXIT_TIMEOUT_S
