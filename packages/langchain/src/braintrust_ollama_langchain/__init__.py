"""Ollama-aware Braintrust tracing for LangChain (`langchain-ollama`).

    from braintrust_ollama import setup_ollama
    from braintrust_ollama_langchain import setup_langchain

    setup_ollama()       # ollama.chat / ollama.generate / ollama.embed spans
    setup_langchain()    # LangChain runs, each Ollama call's tokens counted once

or, per call: `chain.invoke(..., config={"callbacks": [BraintrustCallbackHandler()]})`.
"""

from .callbacks import BraintrustCallbackHandler
from .integration import setup_langchain

__all__ = ["BraintrustCallbackHandler", "setup_langchain"]
