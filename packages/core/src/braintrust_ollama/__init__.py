"""Braintrust tracing for the native `ollama` Python SDK.

import braintrust, ollama
from braintrust_ollama import setup_ollama

braintrust.init_logger(project="my-project")
setup_ollama()
ollama.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])  # one span
"""

from ._call import output_under, tokens_counted_under
from .integration import auto_instrument, setup_ollama, unpatch_ollama, wrap_ollama
from .local import init_local_logger

__all__ = [
    "auto_instrument",
    "init_local_logger",
    "output_under",
    "setup_ollama",
    "tokens_counted_under",
    "unpatch_ollama",
    "wrap_ollama",
]
