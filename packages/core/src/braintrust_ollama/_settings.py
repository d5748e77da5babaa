"""The switches a user sets without touching code: content recording, tracing itself, and the
model information spans carry.

- `BRAINTRUST_OLLAMA_RECORD_CONTENT=false` (or `0`, `no`, `off`): spans keep metadata and metrics
  but no input or output (no messages, prompts, images, answers, generate `suffix`). The
  `record_content=` argument of `setup_ollama()` / `wrap_ollama()` wins over it when given.
- `BRAINTRUST_OLLAMA_DISABLED=1` (or `true`, `yes`, `on`): `setup_ollama()` and `wrap_ollama()`
  patch nothing (`setup_ollama()` returns False), logged once per process.

- `BRAINTRUST_OLLAMA_MODEL_INFO=false` (or `0`, `no`, `off`): no `/api/show` / `/api/ps` is
  fetched, so chat and generate spans carry no `model_details`, `gpu_offload` or loaded window.

The first two are read when `setup_ollama()` / `wrap_ollama()` runs, never per call; the third
when a model is first seen on a server (once per model and server).
"""

from __future__ import annotations

import logging
import os

from ._warn import log_once

RECORD_CONTENT_ENV = "BRAINTRUST_OLLAMA_RECORD_CONTENT"
DISABLED_ENV = "BRAINTRUST_OLLAMA_DISABLED"
MODEL_INFO_ENV = "BRAINTRUST_OLLAMA_MODEL_INFO"

_log = logging.getLogger(__name__)
_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on"})


def record_content(argument: bool | None = None) -> bool:
    """Whether spans hold inputs and outputs: the argument if given, else the environment."""
    if argument is not None:
        return argument
    return os.environ.get(RECORD_CONTENT_ENV, "").strip().lower() not in _FALSE


def model_info_enabled() -> bool:
    """Whether spans may carry model information fetched from the Ollama server (default yes)."""
    return os.environ.get(MODEL_INFO_ENV, "").strip().lower() not in _FALSE


def tracing_disabled() -> bool:
    """True when the environment turns Ollama tracing off (logged once per process)."""
    if os.environ.get(DISABLED_ENV, "").strip().lower() not in _TRUE:
        return False
    log_once(_log, f"{DISABLED_ENV} is set: Ollama calls are not traced")
    return True
