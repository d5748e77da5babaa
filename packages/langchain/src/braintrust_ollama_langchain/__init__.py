"""Ollama-aware Braintrust tracing for LangChain (`langchain-ollama`).

    from braintrust_ollama import setup_ollama
    from braintrust_ollama_langchain import setup_langchain

    setup_ollama()       # ollama.chat / ollama.generate / ollama.embed spans
    setup_langchain()    # LangChain runs, each traced once, each Ollama call's tokens once

or, per call: `chain.invoke(..., config={"callbacks": [BraintrustCallbackHandler()]})`.

Importing this package does not import LangChain: `braintrust_ollama.setup_ollama()` imports it
to install the hand-off (`install_ollama_handoff`), which must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .integration import install_ollama_handoff, setup_langchain, unpatch_langchain

if TYPE_CHECKING:
    from ._callbacks import BraintrustCallbackHandler

__all__ = [
    "BraintrustCallbackHandler",
    "install_ollama_handoff",
    "setup_langchain",
    "unpatch_langchain",
]


def __getattr__(name: str) -> Any:
    if name == "BraintrustCallbackHandler":  # imports langchain-core and Braintrust's handler
        from ._callbacks import BraintrustCallbackHandler

        return BraintrustCallbackHandler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
