"""Braintrust tracing for LlamaIndex over Ollama: SDK spans nest under LlamaIndex's spans.

import braintrust
from braintrust_ollama_llamaindex import setup_llamaindex
from llama_index.llms.ollama import Ollama

braintrust.init_logger(project="my-project")
setup_llamaindex()
for chunk in Ollama(model="llama3.2").stream_complete("Why is the sky blue?"):
    print(chunk.delta, end="")  # one `Ollama` span, its `ollama.chat` span under it

Importing this package does not import LlamaIndex.
"""

from .integration import install_ollama_handoff, setup_llamaindex, unpatch_llamaindex

__all__ = ["install_ollama_handoff", "setup_llamaindex", "unpatch_llamaindex"]
