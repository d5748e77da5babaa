"""A user's program that ends while daemon threads are still reading Ollama streams.

Run by tests/core/test_exit.py in a subprocess (traces to the store under
$BRAINTRUST_OLLAMA_HOME). Two daemon threads each read a traced stream:

- the slow reader does some work per chunk (a short pause); the program's own exit handler,
  registered first so it runs after every other one, waits for it to finish reading;
- the blocked reader waits inside the stream for a chunk the server never sends.

The main thread leaves as soon as both have read their first chunk. Untraced, the slow reader
reads the whole answer and the blocked one stays blocked until the process ends; traced, the
same must happen, and nothing be printed.
"""

from __future__ import annotations

import atexit
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for support.*

import braintrust
import ollama
from braintrust_ollama import init_local_logger, setup_ollama
from support.ollama_server import Chat, FakeOllama

ANSWER = " ".join(f"w{i}" for i in range(64))
slow_reader_done = threading.Event()
atexit.register(slow_reader_done.wait, 30)  # the program's own exit work, bounded

server = FakeOllama().start()
init_local_logger(project="read-by-another-thread")
setup_ollama()
never = threading.Semaphore(0)  # the blocked reader's second chunk never comes
server.reply("/api/chat", Chat(ANSWER), Chat("first then nothing", gate=never))
MESSAGES = [{"role": "user", "content": "Count to 64"}]
started = threading.Barrier(3)
slow_has_its_reply = threading.Event()  # requests go out when a stream is first read: in order


def slow_reader(stream) -> None:
    text, chunks = "", 0
    for chunk in stream:
        text += chunk.message.content
        chunks += 1
        if chunks == 1:
            slow_has_its_reply.set()
            started.wait()
        time.sleep(0.005)  # the reader's own work on each chunk
    print(f"slow reader: {chunks} chunks, {text!r}", flush=True)
    slow_reader_done.set()


def blocked_reader(stream) -> None:
    for _ in stream:
        started.wait()
    print("blocked reader: the loop ended", flush=True)  # never: the server holds the rest


client = ollama.Client(host=server.url)
with braintrust.start_span(name="program"):
    slow = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
    blocked = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
threading.Thread(target=slow_reader, args=(slow,), daemon=True).start()
slow_has_its_reply.wait(30)
threading.Thread(target=blocked_reader, args=(blocked,), daemon=True).start()
started.wait()
print("main: exiting", flush=True)
