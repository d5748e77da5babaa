"""How often the first span of a model carries its model information (`/api/show`, `/api/ps`).

    cd benchmarks && uv run python first_span_model_info.py

Each trial traces the first chat with a new model name against FakeOllama (tests/support), whose
answer takes LATENCY seconds (a real model's first answer: from ~0.1 s warm to seconds when it
loads) while its `/api/show` and `/api/ps` answer at once; it counts the first spans that have
`model_details` (from `/api/show`) and `context_length` (from `/api/ps`: only for a model that
was loaded before the call). It also times, with no model latency, how long after the call
starts the details are known: what the server's own `/api/show` time adds to.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import braintrust
import ollama
from bench_core import memory_logger

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from braintrust_ollama import setup_ollama
from braintrust_ollama._call import server_of
from braintrust_ollama._model_info import MODEL_INFO
from support.ollama_server import Chat, FakeOllama

TRIALS = 40
LATENCIES = (0.0, 0.002, 0.005, 0.02, 0.1)


def main() -> None:
    memory = memory_logger()
    with FakeOllama() as server:
        setup_ollama()
        client = ollama.Client(host=server.url)
        print("answer latency | first spans with model_details | with context_length (warm)")
        for latency in LATENCIES:
            details = window = 0
            for trial in range(TRIALS):
                model = f"m{latency}-{trial}"
                server.load(model)  # loaded by another process before: /api/ps lists it
                server.reply("/api/chat", Chat("Hi", delay_s=latency))
                with braintrust.start_span(name="first call"):
                    client.chat(model=model, messages=[{"role": "user", "content": "Hi"}])
                MODEL_INFO.wait(10)
                braintrust.flush()
                (span,) = [r for r in memory.pop() if r["span_attributes"]["name"] == "ollama.chat"]
                details += "model_details" in span["metadata"]
                window += "context_length" in span["metadata"]
            print(f"{latency * 1000:>11.0f} ms | {details:>2}/{TRIALS} | {window:>2}/{TRIALS}")
        known_after = []
        for trial in range(TRIALS):
            started = time.perf_counter()
            entry = MODEL_INFO.look_up(server.url, f"timed-{trial}", client, server_of)
            while entry is not None and not entry.facts.details:
                time.sleep(0.0002)
            known_after.append(time.perf_counter() - started)
        print(
            "details known after (no model latency): median"
            f" {statistics.median(known_after) * 1000:.1f} ms, max {max(known_after) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
