"""A user's program that leaves Ollama streams unfinished when it exits.

Run by tests/core/test_exit.py in a subprocess: FakeOllama (in a thread of this process) serves
the calls, `init_local_logger()` stores the spans under $BRAINTRUST_OLLAMA_HOME. Four streams are
left behind: a sync chat read for one chunk, a sync generate never iterated, and their async
twins on an event loop the program never closes (asyncio.run would close the started one).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for support.*

import braintrust
import ollama
from braintrust_ollama import init_local_logger, setup_ollama
from support.ollama_server import Chat, FakeOllama, Generate

server = FakeOllama().start()
init_local_logger(project="left-at-exit")
setup_ollama()
server.reply("/api/chat", Chat("one two three"), Chat("uno dos tres"))
server.reply("/api/generate", Generate("never read"), Generate("never read either"))
MESSAGES = [{"role": "user", "content": "Count to three"}]

kept: list[object] = []
with braintrust.start_span(name="program"):
    client = ollama.Client(host=server.url)
    partly_read = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
    print("sync:", next(partly_read).message.content, flush=True)
    kept += [partly_read, client.generate(model="llama3.2", prompt="Hi", stream=True)]

    async def start_async_streams() -> None:
        aclient = ollama.AsyncClient(host=server.url)
        a_partly_read = await aclient.chat(model="llama3.2", messages=MESSAGES, stream=True)
        print("async:", (await a_partly_read.__anext__()).message.content, flush=True)
        kept.extend(
            [a_partly_read, await aclient.generate(model="llama3.2", prompt="Hi", stream=True)]
        )

    loop = asyncio.new_event_loop()
    loop.run_until_complete(start_async_streams())
print("exiting", flush=True)
