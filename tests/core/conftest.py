"""Tests of a feature the installed `ollama` SDK lacks are not collected: an SDK without `think`
cannot send it, one without `web_search` cannot call it, so there is nothing to trace (see
tests/core/cassettes.py and tests/support/sdk.py)."""

from __future__ import annotations

from core.cassettes import SDK_HAS_THINK, SDK_TAKES_SCHEMA_FORMAT
from support.sdk import HAS_IMAGE_GENERATION, HAS_LOGPROBS, HAS_SYSTEMONE, HAS_WEB

collect_ignore = [
    *([] if SDK_HAS_THINK else ["test_recorded_think.py"]),
    *([] if SDK_TAKES_SCHEMA_FORMAT else ["test_recorded_format.py"]),
    *([] if HAS_WEB else ["test_web.py"]),
    *([] if HAS_LOGPROBS else ["test_logprobs.py"]),
    *([] if HAS_IMAGE_GENERATION else ["test_image_generation.py"]),
    *([] if HAS_SYSTEMONE else ["test_systemone.py"]),
]
