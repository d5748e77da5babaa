"""A user's program whose `multiprocessing` children (fork, spawn) leave an Ollama stream
unfinished when they end.

Run by tests/core/test_exit.py in a subprocess: FakeOllama (in a thread of the parent) serves the
calls, `init_local_logger()` stores the spans under $BRAINTRUST_OLLAMA_HOME. Each child reads one
chunk of a chat stream it keeps in a module global, and returns: the stream is still alive when
the child exits, which skips `atexit` (a forked child leaves through `os._exit()`).
"""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for support.*

import braintrust
import ollama
from braintrust_ollama import init_local_logger, setup_ollama
from support.ollama_server import Chat, FakeOllama

init_local_logger(project="left-in-a-child")
setup_ollama()
kept: list[object] = []


def child(url: str, method: str) -> None:
    with braintrust.start_span(name=f"{method} child"):
        client = ollama.Client(host=url)
        stream = client.chat(
            model="llama3.2", messages=[{"role": "user", "content": "Count"}], stream=True
        )
        print(f"{method}:", next(stream).message.content, flush=True)
        kept.append(stream)


if __name__ == "__main__":
    server = FakeOllama().start()
    server.reply("/api/chat", Chat("one two three"), Chat("uno dos tres"))
    for method in ("fork", "spawn"):
        process = multiprocessing.get_context(method).Process(
            target=child, args=(server.url, method)
        )
        process.start()
        process.join(60)
        print(f"{method} exit code:", process.exitcode, flush=True)
