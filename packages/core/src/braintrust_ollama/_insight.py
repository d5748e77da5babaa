"""Why a local model may have answered badly, read from one Ollama request and its response.

Ollama answers 200 OK when it cut the prompt to fit the context window, when the answer stopped
at `num_predict` or at the end of the window, when `format` was not honoured, and when a tool
call it could not parse came back as an empty message: nothing in the response says so.
`inspect_call` finds these from the server's counters, the window the call ran with and the
prompt's size, and returns the span fields that say it (README: "Why did my local model answer
badly?"). Everything here is pure (request body, response counters, answer text and what is
known about the model in; span fields out) and nothing it returns is content: counts, flags,
settings, model details, and one-line reasons that never quote the prompt or the answer.

How Ollama truncates a prompt (the rules `prompt_truncation` checks, each tested in
tests/core/test_insight_unit.py):

- Chat step: when the rendered messages do not fit in `num_ctx`, the server drops whole oldest
  messages (keeping system messages and the last one) and logs it at DEBUG only. The counters do
  not show it; the prompt's size does: an estimate (`estimate_prompt_tokens`: text length over
  `CHARS_PER_TOKEN`, images left out) that clearly exceeds the window (`OVERFLOW_MARGIN`).
- Runner step: a prompt still longer than `num_ctx` keeps its first `num_keep` tokens and its
  tail. Newer servers cut it to `num_ctx - max((num_ctx - num_keep) // 2, 1)` tokens (half the
  window is left for the answer: 2050 at 4096, 16386 at 32768, 32770 at 65536); older ones to
  `num_ctx` itself (2048 at 2048). `prompt_eval_count` counts the tokens after the cut, so a count
  equal to a cut length, with an estimate showing the prompt was longer than the window, is a cut.
- The window: `options.num_ctx`, else the loaded model's (`/api/ps`), else one of the defaults
  servers have used (`DEFAULT_WINDOWS`, capped at the model's trained length when known): 2048;
  then 4096; since v0.15.5 by VRAM (4096 under 24 GiB, 32768 under 48 GiB, 262144 above).
- A prompt served from the prompt cache (older servers report a small `prompt_eval_count`, or
  none, for it) and a prompt that fits are never flagged: a count alone proves nothing, and the
  estimate must clear the window by a margin.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_NUM_KEEP",
    "DEFAULT_WINDOWS",
    "Answer",
    "ModelFacts",
    "estimate_prompt_tokens",
    "format_error",
    "inspect_call",
    "output_truncation",
    "prompt_truncation",
    "runner_cut",
]

# Characters per token of the prompt-size estimate: what common tokenizers average on English
# prose and code (3-5); text in other scripts takes more tokens per character, so the estimate
# errs low there (a missed detection, never a false alarm).
CHARS_PER_TOKEN = 4
DEFAULT_NUM_KEEP = 4  # Ollama's default `num_keep`
# Context windows servers have defaulted to (when neither the request nor /api/ps says).
DEFAULT_WINDOWS = (2048, 4096, 32768, 262144)
OLD_DEFAULT_WINDOW = 2048  # the default of the servers that cut to `num_ctx` itself
# How far the estimate must clear a window before it counts as "did not fit": past the window
# when the count is a newer server's cut length (about half the window, so the estimate is at
# least twice the count); 1.25 x when the count equals the window (a prompt that fits can come
# close); 1.5 x when no counter shows the cut (messages dropped at the chat step).
NEW_CUT_MARGIN = 1.0
FULL_WINDOW_MARGIN = 1.25
OVERFLOW_MARGIN = 1.5


class Answer(NamedTuple):
    """What the model returned, as far as the checks need it (never logged as such)."""

    text: str
    tool_calls: int = 0
    thinking: bool = False
    image: bool = False


@dataclass(frozen=True)
class ModelFacts:
    """What is known about the model a call ran on, from the same Ollama server.

    `details`: `/api/show`'s `family`, `parameter_size`, `quantization_level`, `format`, the
    trained `context_length` and `capabilities` (what `metadata.model_details` holds).
    `context_length`: the window the loaded model was given (`/api/ps`, server v0.9.7+).
    `gpu_offload`: `size_vram / size` from `/api/ps` when under 1. `num_predict`: the model's
    own `num_predict` parameter (its Modelfile), which applies when a request sets none.
    """

    details: Mapping[str, Any] | None = None
    context_length: int | None = None
    gpu_offload: float | None = None
    num_predict: int | None = None


def inspect_call(
    request: Mapping[str, Any],
    last: Any,
    answer: Answer | None,
    facts: ModelFacts | None,
    *,
    cached_tokens: int | None = None,
    failed: bool = False,
) -> tuple[dict[str, Any], dict[str, float]]:
    """The span fields (metadata, metrics) that say why this call may have answered badly.

    `last` is the response or a stream's last chunk (its counters and `done_reason`), `answer`
    the text and tool calls it returned, `facts` what is known about the model when the span is
    written. The checks that need a whole answer run only when `last` is the final one
    (`done`); none run on a failed call. Each field is present only when it applies.
    """
    metadata: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    if cached_tokens is not None:
        metrics["prompt_cached_tokens"] = cached_tokens
    options = request.get("options")
    if type(options) is not dict:  # an `ollama.Options`, or none
        options = _options(request)
    facts = facts or _NO_FACTS
    requested = _positive_int(options.get("num_ctx"))
    window = requested or facts.context_length
    if window:
        metadata["context_length"] = window
    if facts.details:
        metadata["model_details"] = dict(facts.details)
    warnings: list[str] = []
    if not failed and last is not None:
        # `truncate: false` makes the server refuse an over-long prompt, never cut it.
        if request.get("truncate") is not False:
            reason = _truncation(request, last, options, facts, requested)
            if reason:
                metadata["prompt_truncated"] = True
                warnings.append(reason)
        if answer is not None and getattr(last, "done", None):
            warnings.extend(_answer_warnings(request, last, answer, options, facts, metadata))
    if facts.gpu_offload is not None:
        metadata["gpu_offload"] = facts.gpu_offload
        warnings.append(_offload_warning(facts.gpu_offload))
    if warnings:
        metadata["warnings"] = warnings
    return metadata, metrics


def _truncation(
    request: Mapping[str, Any],
    last: Any,
    options: Mapping[str, Any],
    facts: ModelFacts,
    requested: int | None,
) -> str | None:
    """`prompt_truncation` for this call; the estimate is made only when a rule needs it (most
    calls: a count no window explains, and no window known, end here)."""
    count = getattr(last, "prompt_eval_count", None)
    guessed = not (requested or facts.context_length or facts.details or "num_keep" in options)
    if guessed and (type(count) is not int or count not in _DEFAULT_SUSPECTS):
        return None  # no window known, and the count is no default window's cut length
    count = _positive_int(count)
    trained = _positive_int(facts.details.get("context_length")) if facts.details else None
    keep = _non_negative_int(options.get("num_keep"))
    keep = DEFAULT_NUM_KEEP if keep is None else keep
    windows, suspects = _plan(requested, facts.context_length, trained, keep)
    known = windows[0].known
    if not known and (count is None or count not in suspects):
        return None
    return prompt_truncation(
        count,
        functools.partial(estimate_prompt_tokens, request),
        windows,
        num_keep=keep,
        known=known,
    )


def _answer_warnings(
    request: Mapping[str, Any],
    last: Any,
    answer: Answer,
    options: Mapping[str, Any],
    facts: ModelFacts,
    metadata: dict[str, Any],
) -> list[str]:
    """Output cut short, `format` not honoured, empty output: the checks of a whole answer."""
    warnings: list[str] = []
    generated = _non_negative_int(getattr(last, "eval_count", None))
    blank = not answer.text or answer.text.isspace()
    done_reason = getattr(last, "done_reason", None)
    wanted = request.get("format")
    if done_reason != "length" and not wanted and not (blank and generated):
        return warnings  # the common case: a whole answer, stopped by the model, no format
    num_predict = _positive_int(options.get("num_predict"))
    if num_predict is None and options.get("num_predict") is None:
        num_predict = facts.num_predict
    cut = output_truncation(done_reason, generated, num_predict)
    if cut:
        metadata["output_truncated"] = cut
        warnings.append(
            f"output cut short: num_predict ({num_predict}) reached"
            if cut == "num_predict"
            else "output cut short: the context window ran out"
        )
    if wanted and not blank and not answer.tool_calls:
        error = format_error(wanted, answer.text)
        if error:
            metadata["format_error"] = error
            warnings.append(f"format not honoured: {error}")
    if generated and blank and not answer.tool_calls and not answer.image:
        only = " (only thinking)" if answer.thinking else ""
        warnings.append(
            f"empty output: {generated} tokens generated, no text and no tool calls came back{only}"
        )
    return warnings


# --- prompt truncation ------------------------------------------------------------------------


def runner_cut(num_ctx: int, num_keep: int = DEFAULT_NUM_KEEP) -> int:
    """The prompt length a newer server's runner cuts an over-long prompt to."""
    return num_ctx - max((num_ctx - num_keep) // 2, 1)


class _Window(NamedTuple):
    tokens: int
    known: bool  # from the request or /api/ps, not a guessed default


def _windows(requested: int | None, loaded: int | None, trained: int | None) -> tuple[_Window, ...]:
    """The windows the call may have run with: the known one (and the trained length when the
    request asked for more: servers cap the window there), else the defaults."""
    known = requested or loaded
    if known:
        if trained and trained < known:
            return (_Window(known, True), _Window(trained, True))
        return (_Window(known, True),)
    defaults = {min(w, trained) if trained else w for w in DEFAULT_WINDOWS}
    return tuple(_Window(w, False) for w in sorted(defaults))


@functools.lru_cache(maxsize=256)
def _plan(
    requested: int | None, loaded: int | None, trained: int | None, num_keep: int
) -> tuple[tuple[_Window, ...], frozenset[int]]:
    """The windows the call may have run with (`_windows`) and the counts `prompt_truncation`
    looks closer at when none is known: their cut lengths."""
    windows = _windows(requested, loaded, trained)
    cuts = {runner_cut(w.tokens, num_keep) for w in windows}
    return windows, frozenset(cuts | {w.tokens for w in windows if w.tokens == OLD_DEFAULT_WINDOW})


def prompt_truncation(
    count: int | None,
    estimate: Any,
    windows: Sequence[_Window],
    *,
    num_keep: int = DEFAULT_NUM_KEEP,
    known: bool = False,
) -> str | None:
    """The warning line when Ollama cut the prompt or dropped messages, else None.

    `count` is `prompt_eval_count`; `estimate` the prompt's estimated tokens, or a function
    computing them (called only when a rule needs them); `windows` the windows the call may
    have run with (see `_windows`); `known`: whether the first one is known rather than guessed.
    """
    cached: list[int] = []

    def estimated() -> int:
        if not cached:
            cached.append(estimate() if callable(estimate) else int(estimate))
        return cached[0]

    if count is not None:
        for window, _ in windows:
            if count == runner_cut(window, num_keep) and estimated() >= NEW_CUT_MARGIN * window:
                return _kept(count, estimated(), window)
        for window, window_known in windows:
            # Older servers cut to the window itself; the only default they had was 2048.
            if (
                count == window
                and (window_known or window == OLD_DEFAULT_WINDOW)
                and estimated() >= FULL_WINDOW_MARGIN * window
            ):
                return _kept(count, estimated(), window)
    if known and windows:
        window = windows[0].tokens
        if (count is None or count <= window) and estimated() >= OVERFLOW_MARGIN * window:
            return (
                f"prompt truncated: about {estimated()} prompt tokens do not fit the context"
                f" window of {window}; Ollama dropped the oldest messages or cut the prompt"
            )
    return None


def _kept(count: int, estimate: int, window: int) -> str:
    return (
        f"prompt truncated: Ollama kept {count} of about {estimate} prompt tokens"
        f" (context window {window}); raise num_ctx"
    )


def estimate_prompt_tokens(request: Mapping[str, Any]) -> int:
    """About how many tokens the prompt of a chat or generate request takes: the length of its
    text (messages, tool calls, tool definitions, system prompt, prompt) over `CHARS_PER_TOKEN`,
    images left out, plus generate's `context` (token ids, counted exactly)."""
    chars = 0
    for message in request.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        chars += _text_length(message.get("content"))
        for call in message.get("tool_calls") or ():
            chars += _json_length(call)
    for key in ("system", "prompt", "suffix"):
        chars += _text_length(request.get(key))
    tools = request.get("tools")
    if tools:
        chars += _json_length(tools)
    context = request.get("context")
    exact = len(context) if isinstance(context, Sequence) else 0
    return math.ceil(chars / CHARS_PER_TOKEN) + exact


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _json_length(value: Any) -> int:
    try:
        return len(json.dumps(value, default=str, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        return 0


# --- the answer -------------------------------------------------------------------------------


def output_truncation(
    done_reason: Any, eval_count: int | None, num_predict: int | None
) -> str | None:
    """`"num_predict"` or `"context"` when the answer stopped at a length limit
    (`done_reason: "length"`), else None: `num_predict` when that many tokens were generated,
    else the context window ran out (context shift off, or a limit the server set)."""
    if done_reason != "length":
        return None
    if num_predict is not None and (eval_count is None or eval_count >= num_predict):
        return "num_predict"
    return "context"


def format_error(wanted: Any, text: str) -> str | None:
    """One line when `text` is not what `format` asked for (`"json"`, or a JSON schema): not
    valid JSON, or not matching the schema; else None. The line names the schema's parts, never
    the answer's. A schema that cannot be checked is not held against the answer."""
    if not (wanted == "json" or isinstance(wanted, Mapping)):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return f"output is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
    except (ValueError, RecursionError):
        return "output is not valid JSON"
    if isinstance(wanted, Mapping):
        return _schema_mismatch(wanted, value)
    return None


def _schema_mismatch(schema: Mapping[str, Any], value: Any) -> str | None:
    try:
        key = json.dumps(schema, sort_keys=True, default=str)
    except (TypeError, ValueError, RecursionError):
        return None
    validator = _validator(key)
    if validator is None:
        return None
    from jsonschema.exceptions import best_match

    try:
        error = best_match(validator.iter_errors(value))
    except Exception:  # a schema jsonschema accepted but cannot apply (an unresolvable $ref)
        return None
    if error is None:
        return None
    return f"output does not match the schema at {_where(error)}: {_what(error)}"


@functools.lru_cache(maxsize=32)
def _validator(schema_text: str) -> Any:
    """A jsonschema validator for the schema (by its JSON text), or None if it is not one."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    schema = json.loads(schema_text)
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    return cls(schema)


def _where(error: Any) -> str:
    """Where in the answer, as the schema names it: `$.city`, `$.items[]`, `$`."""
    path = list(error.absolute_schema_path)[:-1]  # the last part is the failing keyword
    where = "$"
    i = 0
    while i < len(path):
        part = path[i]
        following = path[i + 1] if i + 1 < len(path) else None
        if part == "properties" and following is not None:
            where += f".{following}"
            i += 2
            continue
        if part == "prefixItems" and following is not None:
            where += f"[{following}]"
            i += 2
            continue
        if part == "items":
            where += "[]"
        elif part == "additionalProperties":
            where += ".*"
        i += 1
    return where


def _what(error: Any) -> str:
    """What is wrong, from the schema's side (never the answer's values or key names)."""
    keyword, expected = error.validator, error.validator_value
    if keyword == "type":
        names = expected if isinstance(expected, list) else [expected]
        return "expected " + " or ".join(str(n) for n in names)
    if keyword == "required" and isinstance(expected, list):
        missing = [
            n for n in expected if isinstance(error.instance, dict) and n not in error.instance
        ]
        return "missing " + ", ".join(repr(n) for n in missing or expected)
    if keyword == "enum":
        return "not one of the allowed values"
    if keyword == "const":
        return "not the required constant"
    if keyword == "additionalProperties":
        return "has properties the schema does not define"
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return f"fails {keyword} {expected}"
    return f"fails {keyword}"


def _offload_warning(share: float) -> str:
    if share <= 0:
        return "model runs on the CPU only (none of it in GPU memory): expect slow answers"
    return f"model only {share:.0%} in GPU memory: the rest runs on the CPU, several times slower"


# --- helpers ----------------------------------------------------------------------------------

_NO_FACTS = ModelFacts()
_NO_OPTIONS: Mapping[str, Any] = {}
# The counts worth a closer look when no window is known and the model's trained length is not
# either: the cut lengths of the default windows with the default `num_keep`.
_DEFAULT_SUSPECTS = _plan(None, None, None, DEFAULT_NUM_KEEP)[1]


def _options(request: Mapping[str, Any]) -> Mapping[str, Any]:
    options = request.get("options")
    if options is None:
        return _NO_OPTIONS
    if isinstance(options, (dict, Mapping)):  # a dict (checked first, quickly) as a rule
        return options
    dump = getattr(options, "model_dump", None)  # an `ollama.Options` the SDK left as a model
    return dump(exclude_none=True) if callable(dump) else {}


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value > 0 else None


def _non_negative_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value >= 0 else None
