"""Recorded-traffic tests of a feature the installed `ollama` SDK lacks are not collected: an SDK
without `think` cannot send it, so there is nothing to trace (see tests/core/cassettes.py)."""

from __future__ import annotations

from core.cassettes import SDK_HAS_THINK, SDK_TAKES_SCHEMA_FORMAT

collect_ignore = [
    *([] if SDK_HAS_THINK else ["test_recorded_think.py"]),
    *([] if SDK_TAKES_SCHEMA_FORMAT else ["test_recorded_format.py"]),
]
