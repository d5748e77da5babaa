"""A user's program, run in its own process by test_handoff.py: Braintrust's own LlamaIndex set-up
and `setup_ollama()`, in the order given on the command line, without `setup_llamaindex()`.

    python handoff_program.py OLLAMA_URL STEP...   (steps: setup_ollama, auto_instrument,
                                                     braintrust_handler, import_llamaindex,
                                                     unpatch_llamaindex)

It streams a chat and runs a FunctionAgent turn with a tool call, then prints one JSON object:
the rows Braintrust's in-memory logger holds, and whether `setup_ollama()` imported LlamaIndex.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import braintrust
from braintrust import logger as bt_logger
from braintrust.test_helpers import init_test_logger
from braintrust.util import LazyValue


def setup_ollama() -> None:
    from braintrust_ollama import setup_ollama

    setup_ollama()


def auto_instrument() -> None:
    braintrust.auto_instrument()


def braintrust_handler() -> None:
    """Braintrust's LlamaIndex span handler, registered by hand."""
    from braintrust.integrations.llamaindex import BraintrustSpanHandler
    from llama_index.core.instrumentation import get_dispatcher

    get_dispatcher().add_span_handler(BraintrustSpanHandler())


def import_llamaindex() -> None:
    import llama_index.llms.ollama  # noqa: F401


def unpatch_llamaindex() -> None:
    from braintrust_ollama_llamaindex import unpatch_llamaindex

    unpatch_llamaindex()


STEPS = {
    f.__name__: f
    for f in (
        setup_ollama,
        auto_instrument,
        braintrust_handler,
        import_llamaindex,
        unpatch_llamaindex,
    )
}


def multiply(a: float, b: float) -> float:
    """Useful for multiplying two numbers."""
    return a * b


async def app(url: str) -> None:
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.llms.ollama import Ollama

    llm = Ollama(model="llama3.2:1b", base_url=url, request_timeout=10.0)
    question = [ChatMessage(role="user", content="Capital of France?")]
    for _ in llm.stream_chat(question):
        pass
    agent = FunctionAgent(tools=[multiply], llm=llm, system_prompt="You are a calculator.")
    await agent.run(user_msg="What is 2 times 3?")


def main() -> None:
    url, steps = sys.argv[1], sys.argv[2:]
    with bt_logger._internal_with_memory_background_logger() as background:
        bt_logger._state._global_bg_logger = LazyValue(lambda: background, use_mutex=False)
        init_test_logger("braintrust-ollama-tests")
        setup_imported_llamaindex = False
        for step in steps:
            before = _llamaindex_imported()
            STEPS[step]()
            if step == "setup_ollama" and not before:
                setup_imported_llamaindex = _llamaindex_imported()
        asyncio.run(app(url))
        braintrust.flush()
        rows: list[dict[str, Any]] = background.pop()
    result = {"rows": rows, "setup_imported_llamaindex": setup_imported_llamaindex}
    print(json.dumps(result, default=str))


def _llamaindex_imported() -> bool:
    return any(name.split(".")[0] == "llama_index" for name in sys.modules)


if __name__ == "__main__":
    main()
