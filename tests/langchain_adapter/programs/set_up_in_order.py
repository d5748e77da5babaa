"""A user's program, run in a fresh interpreter: the set-up calls named on the command line, in
that order, then a LangChain chain over Ollama (FakeOllama on 127.0.0.1). Prints, as JSON, the
spans Braintrust's in-memory logger got, the server's token counters, and which modules each
step had imported.

    python set_up_in_order.py setup_ollama braintrust.auto_instrument [per-call]
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from typing import Any

import braintrust
from braintrust import logger as bt_logger
from braintrust.test_helpers import init_test_logger
from support.ollama_server import MODEL, Chat, FakeOllama


def braintrust_auto_instrument() -> Any:
    """Braintrust's auto_instrument(), everything but LangChain switched off (this program
    installs no other provider SDK anyway)."""
    params = inspect.signature(braintrust.auto_instrument).parameters.values()
    flags = {p.name: False for p in params if p.default is True and p.name != "langchain"}
    return braintrust.auto_instrument(**flags)


def braintrust_set_up() -> Any:
    from langchain_adapter.traces import braintrust_setup_langchain

    return braintrust_setup_langchain()


def setup_ollama() -> Any:
    from braintrust_ollama import setup_ollama

    return setup_ollama()


def setup_langchain() -> Any:
    from braintrust_ollama_langchain import setup_langchain

    return setup_langchain()


STEPS: dict[str, Callable[[], Any]] = {
    "setup_ollama": setup_ollama,
    "setup_langchain": setup_langchain,
    "braintrust.auto_instrument": braintrust_auto_instrument,
    "braintrust set-up": braintrust_set_up,
}


def main(steps: list[str]) -> None:
    per_call = "per-call" in steps
    # braintrust 0.12 imports langchain-core itself when it is installed; later releases do not.
    imported: dict[str, bool] = {"before set-up": "langchain_core" in sys.modules}
    bt_logger._state.reset_parent_state()
    with FakeOllama() as server, bt_logger._internal_with_memory_background_logger() as bg:
        init_test_logger("set-up-order")
        for step in (s for s in steps if s != "per-call"):
            STEPS[step]()
            imported[step] = "langchain_core" in sys.modules

        from langchain_core.prompts import ChatPromptTemplate
        from langchain_ollama import ChatOllama

        server.reply("/api/chat", Chat("Rayleigh scattering.", prompt_eval_count=21, eval_count=4))
        chain = ChatPromptTemplate.from_template("Why is the {thing} blue?") | ChatOllama(
            model=MODEL, base_url=server.url
        )
        config: dict[str, Any] = {}
        if per_call:  # Braintrust's own handler, as its docs show, imported only now
            from langchain_adapter.traces import braintrust_handler_class

            config = {"callbacks": [braintrust_handler_class()()]}
        chain.invoke({"thing": "sky"}, config=config)
        braintrust.flush()
        print(
            json.dumps(
                {"rows": bg.pop(), "served": server.tokens_served(), "imported": imported},
                default=str,
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
