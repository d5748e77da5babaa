"""Ollama-aware Braintrust tracing for LangChain (`langchain-ollama`).

    from braintrust_ollama import setup_ollama
    from braintrust_ollama_langchain import setup_langchain

    setup_ollama()       # ollama.chat / ollama.generate / ollama.embed spans
    setup_langchain()    # LangChain runs, each Ollama call's tokens counted once

or, per call: `chain.invoke(..., config={"callbacks": [BraintrustCallbackHandler()]})`.
"""

from .callbacks import BraintrustCallbackHandler
from .integration import setup_langchain

__all__ = ["BraintrustCallbackHandler", "install_ollama_handoff", "setup_langchain"]


def install_ollama_handoff() -> bool:
    """Make Braintrust's LangChain handlers leave Ollama tokens to the SDK spans (idempotent).

    Called by `braintrust_ollama.setup_ollama()` / `wrap_ollama()`, so the minimal set-up is
    enough. Returns False when Braintrust's handler is not installed.
    """
    from .callbacks import patch_braintrust_handlers

    return patch_braintrust_handlers()
