"""Braintrust tracing for the native `ollama` Python SDK.

import ollama
import braintrust_ollama

braintrust_ollama.init_logger(project="my-project")  # Braintrust with a key, else the local store
braintrust_ollama.setup_ollama()
ollama.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])  # one span
"""

from ._call import output_under, remember_caller, tokens_counted_under
from .destinations import init_logger
from .integration import auto_instrument, setup_ollama, unpatch_ollama, wrap_ollama
from .local import init_local_logger

__all__ = [
    "auto_instrument",
    "init_local_logger",
    "init_logger",
    "output_under",
    "remember_caller",
    "setup_ollama",
    "tokens_counted_under",
    "unpatch_ollama",
    "wrap_ollama",
]
