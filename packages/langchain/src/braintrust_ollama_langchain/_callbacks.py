"""`BraintrustCallbackHandler`: Braintrust's LangChain handler, Ollama-aware.

For `config={"callbacks": [handler]}` registration. Same constructor as Braintrust's handler;
constructing one installs the adapter (as `install_ollama_handoff()` does): every Braintrust
handler becomes Ollama-aware, and a run with several Braintrust handlers is traced once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._handlers import handler_homes
from .integration import install_ollama_handoff

__all__ = ["BraintrustCallbackHandler"]


if TYPE_CHECKING:
    from braintrust.integrations.langchain.callbacks import (
        BraintrustCallbackHandler as _BraintrustHandler,
    )
else:
    _homes = handler_homes()
    _BraintrustHandler = _homes[0].handler_class if _homes else None


if _BraintrustHandler is not None:

    class BraintrustCallbackHandler(_BraintrustHandler):
        """Braintrust's LangChain callback handler; an Ollama SDK span under a model run owns
        the run's tokens, so each call is counted once in a trace."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            install_ollama_handoff()
            super().__init__(*args, **kwargs)

else:  # langchain-core (or Braintrust's handler) is not installed

    class BraintrustCallbackHandler:  # type: ignore[no-redef]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError(
                "BraintrustCallbackHandler needs langchain-core and Braintrust's LangChain "
                "integration: pip install braintrust-ollama-langchain"
            )
