"""What the local-model checks add to a traced chat and stream (BENCHMARKS.md).

    cd benchmarks && uv run python insight_cost.py [ROUNDS]

One process, bench_core.py's chat and 200-chunk stream, interleaving three variants round by
round so that they share the machine's load: the code path without the checks
(`inspected=False` on the chat endpoint), with them and model information off, with both.
Thread CPU time per call, medians over the rounds.
"""

from __future__ import annotations

import statistics
import sys
import time

from bench_core import chat, memory_logger, stream
from braintrust_ollama import setup_ollama, tracing
from braintrust_ollama._model_info import MODEL_INFO


def main(rounds: int) -> None:
    background = memory_logger()
    setup_ollama()
    chat()  # the model's entry exists: model information on
    background.pop()
    on = dict(MODEL_INFO._entries)
    variants = {
        "without the checks": (False, on),
        "checks, model info off": (True, dict.fromkeys(on)),
        "checks, model info on": (True, on),
    }
    endpoint = tracing.ENDPOINTS["/api/chat"]
    for name, call, calls in (("chat", chat, 40), ("stream", stream, 4)):
        spent: dict[str, list[float]] = {variant: [] for variant in variants}
        for r in range(rounds):
            order = list(variants.items())
            for variant, (inspected, entries) in order if r % 2 else order[::-1]:
                object.__setattr__(endpoint, "inspected", inspected)
                MODEL_INFO._entries = entries
                total = 0.0
                for _ in range(calls):
                    started = time.thread_time()
                    call()
                    total += time.thread_time() - started
                    background.pop()
                spent[variant].append(total / calls * 1e6)
        before = statistics.median(spent["without the checks"])
        for variant, values in spent.items():
            median = statistics.median(values)
            print(f"{name:6} {variant:24} {median:8.1f} µs  {median - before:+6.1f} µs")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 150)
