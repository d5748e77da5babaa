"""What a LangChain model-run span keeps when an Ollama SDK span under it owns the tokens.

Braintrust adds up token metrics over every span of a trace, so a call's tokens must be on one
span only. The integration that owns the provider response owns the accounting: when a traced
`ollama.*` call was made under a LangChain model run, that SDK span carries `prompt_tokens`,
`completion_tokens` and `tokens`, and the run span keeps every other metric (for example
`time_to_first_token`) and everything LangChain knows (name, tags, invocation params, output).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["is_token_metric", "metrics_without_tokens"]


def is_token_metric(name: str) -> bool:
    """True for the token counters Braintrust sums over a trace (`tokens`, `prompt_tokens`,
    `completion_tokens`, `total_tokens`, `prompt_cached_tokens`, ...)."""
    return name == "tokens" or name.endswith("_tokens")


def metrics_without_tokens(metrics: Mapping[str, float]) -> dict[str, float]:
    """`metrics` less its token counters."""
    return {name: value for name, value in metrics.items() if not is_token_metric(name)}
