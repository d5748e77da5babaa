"""Why a local model answered badly, rule by rule (braintrust_ollama._insight): request and
counters in, span fields out, no server.

The truncation rules are checked against Ollama's documented behaviour (the issue's observed
values, and Ollama's own runner: a prompt longer than `num_ctx` keeps `num_keep` tokens and its
tail, `num_ctx - max((num_ctx - num_keep) // 2, 1)` tokens in all on newer servers, `num_ctx`
on older ones; whole oldest messages dropped first at the chat step). Every exchange here is
hand-made from those rules; tests/core/test_local_model_problems.py checks the recorded real
traffic raises no flag.
"""

from __future__ import annotations

import json
from typing import Any

import ollama
import pytest
from braintrust_ollama._insight import (
    Answer,
    ModelFacts,
    estimate_prompt_tokens,
    format_error,
    inspect_call,
    output_truncation,
    runner_cut,
)

LONG = "word " * 4000  # 20,000 characters: about 5,000 tokens
SECRET = "the-secret-prompt-text"


def chat(content: str = "Why is the sky blue?", **request: Any) -> dict[str, Any]:
    return {"model": "llama3.2", "messages": [{"role": "user", "content": content}], **request}


def done(**counters: Any) -> ollama.ChatResponse:
    fields = {"done": True, "prompt_eval_count": 26, "eval_count": 10, "done_reason": "stop"}
    fields.update(counters)
    return ollama.ChatResponse(
        model="llama3.2", message={"role": "assistant", "content": "x"}, **fields
    )


def findings(request: dict[str, Any], last: Any, answer: Answer | None = None, **kw: Any) -> Any:
    metadata, _ = inspect_call(
        request, last, answer or Answer("Blue."), kw.pop("facts", None), **kw
    )
    return metadata


@pytest.mark.parametrize(
    ("num_ctx", "num_keep", "kept"),
    [
        (4096, 4, 2050),  # observed on servers defaulting to 4096
        (32768, 4, 16386),
        (65536, 4, 32770),
        (2048, 5, 1027),  # Ollama's own ShiftDiscard test: 5000 inputs, 2048 window, keep 5
        (2048, 2047, 2047),  # keep all but one: at least one token goes
    ],
)
def test_newer_servers_cut_an_over_long_prompt_to_half_the_window_plus_num_keep(
    num_ctx, num_keep, kept
):
    assert runner_cut(num_ctx, num_keep) == kept


# (request, counters, facts, the expected `metadata.prompt_truncated`, why)
TRUNCATION_CASES = [
    # Runner step, newer servers: the count is the cut length, the prompt is far longer.
    (chat(LONG, options={"num_ctx": 4096}), {"prompt_eval_count": 2050}, None, True),
    (chat(LONG * 8, options={"num_ctx": 32768}), {"prompt_eval_count": 16386}, None, True),
    (chat(LONG * 14, options={"num_ctx": 65536}), {"prompt_eval_count": 32770}, None, True),
    # ... with the request's own num_keep.
    (
        chat(LONG, options={"num_ctx": 4096, "num_keep": 24}),
        {"prompt_eval_count": 2060},
        None,
        True,
    ),
    # Runner step, older servers: cut to the window itself.
    (chat(LONG, options={"num_ctx": 2048}), {"prompt_eval_count": 2048}, None, True),
    # Without num_ctx: the window is the loaded model's (/api/ps) ...
    (chat(LONG * 2), {"prompt_eval_count": 4098}, ModelFacts(context_length=8192), True),
    # ... else a server default: 4096 (newer servers under 24 GiB of VRAM) ...
    (chat(LONG), {"prompt_eval_count": 2050}, None, True),
    # ... or 2048, the default of the servers that cut to num_ctx.
    (chat(LONG), {"prompt_eval_count": 2048}, None, True),
    # A window the request asks for beyond the model's trained length is capped there.
    (
        chat(LONG * 2, options={"num_ctx": 65536}),
        {"prompt_eval_count": 4098},
        ModelFacts(details={"context_length": 8192}),
        True,
    ),
    # Chat step: whole messages dropped, the counter shows a prompt that fits.
    (
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                *[{"role": "user", "content": LONG}] * 2,
                {"role": "user", "content": "And so?"},
            ],
            "options": {"num_ctx": 4096},
        },
        {"prompt_eval_count": 3900},
        None,
        True,
    ),
    # ... and on a generate (no chat step: the runner cut it), with the window from /api/ps.
    (
        {"model": "m", "prompt": LONG * 2},
        {"prompt_eval_count": 17},
        ModelFacts(context_length=4096),
        True,
    ),
    # --- no flag ---
    # A prompt that fits.
    (chat("Hi", options={"num_ctx": 4096}), {"prompt_eval_count": 26}, None, None),
    (chat(LONG, options={"num_ctx": 8192}), {"prompt_eval_count": 5012}, None, None),
    # A prompt of exactly a cut length that fits: the estimate is no longer than the count.
    (chat("word " * 1640, options={"num_ctx": 4096}), {"prompt_eval_count": 2050}, None, None),
    (chat("word " * 1640), {"prompt_eval_count": 2050}, None, None),
    # Exactly 2048 tokens, no num_ctx (a big-window server): a full window proves nothing.
    (chat("word " * 1700), {"prompt_eval_count": 2048}, None, None),
    # Exactly the window, guessed: only 2048 was ever an older server's default.
    (chat(LONG), {"prompt_eval_count": 4096}, None, None),
    # Prompts served from the prompt cache: older servers report a small count, or none.
    (chat(LONG, options={"num_ctx": 8192}), {"prompt_eval_count": 11}, None, None),
    (chat("Hi again"), {"prompt_eval_count": None}, None, None),
    # Over the window with no window known: the chat step cannot be told from the counters.
    (chat(LONG * 2), {"prompt_eval_count": 3900}, None, None),
    # Images are left out of the estimate (a model counts them its own way).
    (
        {"model": "llava", "messages": [{"role": "user", "content": "?", "images": ["A" * 99999]}]},
        {"prompt_eval_count": 2050},
        None,
        None,
    ),
    # `truncate: false`: the server refuses rather than cuts.
    (
        chat(LONG, options={"num_ctx": 4096}, truncate=False),
        {"prompt_eval_count": 2050},
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("request_body", "counters", "facts", "truncated"),
    TRUNCATION_CASES,
    ids=[
        "new-4096",
        "new-32768",
        "new-65536",
        "new-num_keep-24",
        "old-2048",
        "ps-window-8192",
        "default-4096",
        "default-2048-old",
        "capped-at-trained",
        "chat-step-dropped-messages",
        "generate-over-ps-window",
        "fits",
        "fits-big-window",
        "fits-at-cut-length",
        "fits-at-cut-length-no-num_ctx",
        "fits-at-2048-no-num_ctx",
        "full-4096-guessed",
        "cached-small-count",
        "cached-no-count",
        "over-unknown-window",
        "images-left-out",
        "truncate-false",
    ],
)
def test_prompt_truncation_rules(request_body, counters, facts, truncated):
    metadata = findings(request_body, done(**counters), facts=facts)
    assert metadata.get("prompt_truncated") is truncated
    if truncated:
        (warning,) = [w for w in metadata["warnings"] if w.startswith("prompt truncated")]
        assert "context window" in warning
    else:
        assert "warnings" not in metadata


def test_the_truncation_warning_says_what_was_kept_of_what():
    metadata = findings(chat(LONG, options={"num_ctx": 4096}), done(prompt_eval_count=2050))
    assert metadata == {
        "context_length": 4096,
        "prompt_truncated": True,
        "warnings": [
            "prompt truncated: Ollama kept 2050 of about 5000 prompt tokens (context window"
            " 4096); raise num_ctx"
        ],
    }


def test_dropped_messages_warning_says_the_prompt_does_not_fit():
    request = {"model": "m", "messages": [{"role": "user", "content": LONG}] * 2}
    request["options"] = {"num_ctx": 4096}
    metadata = findings(request, done(prompt_eval_count=3900))
    assert metadata["warnings"] == [
        "prompt truncated: about 10000 prompt tokens do not fit the context window of 4096;"
        " Ollama dropped the oldest messages or cut the prompt"
    ]


@pytest.mark.parametrize(
    ("request_body", "tokens"),
    [
        (chat("a" * 400), 100),
        (chat("a" * 401), 101),  # rounded up
        ({"model": "m", "prompt": "a" * 40, "system": "b" * 40}, 20),
        ({"model": "m", "prompt": "a" * 40, "context": list(range(50))}, 60),  # ids: exact
        (
            {
                "model": "m",
                "messages": [
                    {"role": "user", "content": "a" * 40, "images": ["B" * 10_000]},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}],
                    },
                    {"role": "tool", "content": "c" * 40, "tool_name": "f"},
                ],
                "tools": [{"type": "function", "function": {"name": "f"}}],
            },
            None,
        ),
    ],
    ids=["text", "rounded-up", "generate", "generate-context", "images-out-tools-in"],
)
def test_the_prompt_estimate_is_text_length_over_four_without_images(request_body, tokens):
    if tokens is None:  # tool calls and tool definitions count as the JSON text they are
        call = json.dumps({"function": {"name": "f", "arguments": {"x": 1}}})
        tools = json.dumps([{"type": "function", "function": {"name": "f"}}])
        tokens = -(-(40 + 40 + len(call) + len(tools)) // 4)
    assert estimate_prompt_tokens(request_body) == tokens


@pytest.mark.parametrize(
    ("done_reason", "eval_count", "num_predict", "expected"),
    [
        ("length", 128, 128, "num_predict"),
        ("length", 64, 128, "context"),  # stopped before num_predict: the window ran out
        ("length", 300, None, "context"),
        ("stop", 128, 128, None),
        (None, 5, None, None),
    ],
)
def test_output_truncation_names_what_stopped_the_answer(
    done_reason, eval_count, num_predict, expected
):
    assert output_truncation(done_reason, eval_count, num_predict) == expected


def test_output_cut_short_by_the_requests_or_the_models_num_predict():
    request = chat(options={"num_predict": 32})
    metadata = findings(request, done(done_reason="length", eval_count=32))
    assert metadata["output_truncated"] == "num_predict"
    assert metadata["warnings"] == ["output cut short: num_predict (32) reached"]
    facts = ModelFacts(num_predict=256)  # the model's own parameter (its Modelfile)
    metadata = findings(chat(), done(done_reason="length", eval_count=256), facts=facts)
    assert metadata["output_truncated"] == "num_predict"
    metadata = findings(chat(), done(done_reason="length", eval_count=900))
    assert metadata["output_truncated"] == "context"
    assert metadata["warnings"] == ["output cut short: the context window ran out"]


SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("wanted", "text", "error"),
    [
        ("json", '{"a": 1}', None),
        ("json", " [1, 2]\n", None),
        (
            "json",
            '{"a": 1',
            "output is not valid JSON (Expecting ',' delimiter at line 1 column 8)",
        ),
        ("json", "Sure! Here is", "output is not valid JSON (Expecting value at line 1 column 1)"),
        (SCHEMA, '{"city": "Paris", "population": 2100000}', None),
        (
            SCHEMA,
            '{"city": "Paris"}',
            "output does not match the schema at $: missing 'population'",
        ),
        (
            SCHEMA,
            f'{{"city": "Paris", "population": "{SECRET}"}}',
            "output does not match the schema at $.population: expected integer",
        ),
        (
            SCHEMA,
            '{"city": "Paris", "population": 1, "tags": [7]}',
            "output does not match the schema at $.tags[]: expected string",
        ),
        (
            SCHEMA,
            f'{{"city": "Paris", "population": 1, "{SECRET}": 1}}',
            "output does not match the schema at $: has properties the schema does not define",
        ),
        ({"type": "definitely-not-a-type"}, '{"a": 1}', None),  # not a schema: not checked
        ("", "not json", None),  # no format asked for (what ollama 0.4 sends by default)
    ],
    ids=[
        "json",
        "json-array",
        "json-cut",
        "json-prose",
        "schema",
        "schema-missing",
        "schema-type",
        "schema-array-item",
        "schema-extra-key",
        "invalid-schema",
        "no-format",
    ],
)
def test_format_error_names_the_schemas_parts_never_the_answers(wanted, text, error):
    assert format_error(wanted, text) == error


def test_format_is_checked_on_a_whole_answer_without_tool_calls():
    request = chat(format="json")
    metadata = findings(request, done(), Answer("Sure! {"))
    assert metadata["format_error"].startswith("output is not valid JSON")
    assert metadata["warnings"] == [f"format not honoured: {metadata['format_error']}"]
    assert "format_error" not in findings(request, done(), Answer("", tool_calls=1))
    partial = done(done=False, done_reason=None, eval_count=None, prompt_eval_count=None)
    assert findings(request, partial, Answer('{"a": ')) == {}  # a stream left early


@pytest.mark.parametrize(
    ("answer", "eval_count", "warning"),
    [
        (Answer(""), 31, "empty output: 31 tokens generated, no text and no tool calls came back"),
        (
            Answer(" \n", thinking=True),
            80,
            "empty output: 80 tokens generated, no text and no tool calls came back (only"
            " thinking)",
        ),
        (Answer("", tool_calls=1), 20, None),
        (Answer("", image=True), 0, None),  # an image model's answer
        (Answer(""), 0, None),  # nothing generated
        (Answer("Hi"), 3, None),
    ],
)
def test_empty_output_with_tokens_is_a_warning(answer, eval_count, warning):
    metadata = findings(chat(), done(eval_count=eval_count), answer)
    assert metadata.get("warnings", []) == ([warning] if warning else [])


def test_model_facts_and_window_go_in_even_when_the_call_failed():
    facts = ModelFacts(
        details={"family": "llama", "parameter_size": "8.0B", "quantization_level": "Q4_K_M"},
        context_length=8192,
        gpu_offload=0.62,
    )
    metadata, metrics = inspect_call(chat(LONG), None, None, facts, failed=True)
    assert metadata == {
        "context_length": 8192,
        "model_details": {
            "family": "llama",
            "parameter_size": "8.0B",
            "quantization_level": "Q4_K_M",
        },
        "gpu_offload": 0.62,
        "warnings": [
            "model only 62% in GPU memory: the rest runs on the CPU, several times slower"
        ],
    }
    assert metrics == {}
    on_cpu = findings(chat(), done(), facts=ModelFacts(gpu_offload=0.0))
    assert on_cpu["warnings"] == [
        "model runs on the CPU only (none of it in GPU memory): expect slow answers"
    ]


def test_the_requests_num_ctx_is_the_window_over_the_loaded_models():
    metadata = findings(
        chat(options={"num_ctx": 16384}), done(), facts=ModelFacts(context_length=4096)
    )
    assert metadata == {"context_length": 16384}
    assert findings(chat(), done(), facts=ModelFacts(context_length=4096)) == {
        "context_length": 4096
    }
    assert findings(chat(), done()) == {}


def test_cached_prompt_tokens_are_a_metric():
    _, metrics = inspect_call(chat(), done(), Answer("x"), None, cached_tokens=850)
    assert metrics == {"prompt_cached_tokens": 850}


def test_nothing_returned_quotes_the_prompt_or_the_answer():
    request = chat(SECRET + LONG, options={"num_ctx": 4096}, format=SCHEMA)
    answer = Answer(f'{{"city": "{SECRET}", "population": "{SECRET}", "{SECRET}": 1}}')
    metadata = findings(request, done(prompt_eval_count=2050), answer)
    assert metadata["prompt_truncated"] is True
    assert "format_error" in metadata
    assert SECRET not in json.dumps(metadata)
