"""Tracing without a Braintrust account: the local trace store and its views.

    from braintrust_ollama import init_local_logger, setup_ollama

    init_local_logger(project="my-app")   # one stderr line says where traces go
    setup_ollama()
    ...                                   # then: braintrust-ollama traces show last

The store is one SQLite file per user (`default_store_path()`, moved by `BRAINTRUST_OLLAMA_HOME`)
holding the rows Braintrust would receive, merged per span.
"""

from braintrust_ollama.local.logger import init_local_logger
from braintrust_ollama.local.store import LocalStore, default_store_path

__all__ = ["LocalStore", "default_store_path", "init_local_logger"]
