"""Per-model statistics of the local store's Ollama spans (`braintrust-ollama traces stats`).

`model_stats(spans)` is pure: the fields of each model call (`ModelSpan`, as
`LocalStore.model_spans` reads them) in, one `ModelStats` per model out, busiest model first.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

__all__ = ["ModelSpan", "ModelStats", "model_stats"]


class ModelSpan(NamedTuple):
    """What the statistics need of one Ollama span (a call to a model)."""

    model: str
    duration_s: float | None  # metrics.end - metrics.start
    error: bool
    prompt_tokens: float | None
    completion_tokens: float | None
    tokens_per_second: float | None  # metrics.completion_tokens_per_second
    cold_start: bool
    prompt_truncated: bool
    format_error: bool


@dataclass(frozen=True)
class ModelStats:
    """One model's calls: how many, how they went, how fast."""

    model: str
    calls: int
    errors: int
    median_s: float | None  # median duration of a call, as the caller saw it
    p95_s: float | None  # 95th percentile (nearest rank)
    prompt_tokens: int
    completion_tokens: int
    median_tokens_per_second: float | None  # output tokens per second of generation
    cold_starts: int
    truncated_prompts: int
    format_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_stats(spans: Iterable[ModelSpan]) -> list[ModelStats]:
    """One `ModelStats` per model, the most called first (then by name)."""
    by_model: dict[str, list[ModelSpan]] = {}
    for span in spans:
        by_model.setdefault(span.model, []).append(span)
    stats = [_of_model(model, calls) for model, calls in by_model.items()]
    return sorted(stats, key=lambda s: (-s.calls, s.model))


def _of_model(model: str, calls: list[ModelSpan]) -> ModelStats:
    durations = sorted(_numbers(c.duration_s for c in calls))
    speeds = _numbers(c.tokens_per_second for c in calls)
    return ModelStats(
        model=model,
        calls=len(calls),
        errors=sum(1 for c in calls if c.error),
        median_s=statistics.median(durations) if durations else None,
        p95_s=_nearest_rank(durations, 0.95),
        prompt_tokens=int(sum(_numbers(c.prompt_tokens for c in calls))),
        completion_tokens=int(sum(_numbers(c.completion_tokens for c in calls))),
        median_tokens_per_second=statistics.median(speeds) if speeds else None,
        cold_starts=sum(1 for c in calls if c.cold_start),
        truncated_prompts=sum(1 for c in calls if c.prompt_truncated),
        format_errors=sum(1 for c in calls if c.format_error),
    )


def _nearest_rank(ordered: list[float], share: float) -> float | None:
    """The value at `share` of the ordered values by the nearest-rank rule (p95 of 20: the
    19th)."""
    if not ordered:
        return None
    return ordered[max(math.ceil(share * len(ordered)), 1) - 1]


def _numbers(values: Iterable[Any]) -> list[float]:
    """The finite numbers among `values` (a store row may hold anything)."""
    return [
        v
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]
