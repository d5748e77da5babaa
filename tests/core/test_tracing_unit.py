"""The pure request/response -> span field functions of `tracing.py`, table-driven, no server.

Responses are built with the installed SDK's own types (`ollama.ChatResponse`, ...), so each row
is what the SDK would hand the tracer for that answer.
"""

from __future__ import annotations

import base64
from typing import Any

import ollama
import pytest
from braintrust import Attachment
from braintrust_ollama.tracing import ENDPOINTS, chat_messages, synthetic_tool_call_id
from support.chat_schema import message_errors

CHAT = ENDPOINTS["/api/chat"]
GENERATE = ENDPOINTS["/api/generate"]
EMBED = ENDPOINTS["/api/embed"]
EMBEDDINGS = ENDPOINTS["/api/embeddings"]


def test_each_traced_path_has_one_endpoint_with_its_span_name_and_type():
    assert {path: (e.name, e.type) for path, e in ENDPOINTS.items()} == {
        "/api/chat": ("ollama.chat", "llm"),
        "/api/generate": ("ollama.generate", "llm"),
        "/api/embed": ("ollama.embed", "llm"),
        "/api/embeddings": ("ollama.embeddings", "llm"),
        "/v1/systemone": ("ollama.systemone", "llm"),
        "https://ollama.com/api/web_search": ("ollama.web_search", "tool"),
        "https://ollama.com/api/web_fetch": ("ollama.web_fetch", "tool"),
    }
    for management in ("/api/show", "/api/tags", "/api/ps", "/api/pull", "/api/delete"):
        assert management not in ENDPOINTS


@pytest.mark.parametrize(
    ("endpoint", "response", "output"),
    [
        (
            EMBED,
            ollama.EmbedResponse(embeddings=[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]),
            {"embedding_length": 3, "embeddings": 2},
        ),
        (EMBED, ollama.EmbedResponse(embeddings=[]), {"embeddings": 0}),
        (EMBEDDINGS, ollama.EmbeddingsResponse(embedding=[0.1] * 5), {"embedding_length": 5}),
    ],
    ids=["embed", "embed-empty", "embeddings"],
)
def test_embedding_output_is_the_shape_never_the_vectors(endpoint, response, output):
    assert endpoint.output(response, {}) == output


@pytest.mark.parametrize(
    ("endpoint", "request_body", "metadata"),
    [
        (
            CHAT,
            {
                "model": "m",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": False,
                "options": {"seed": 1},
                "tools": [],
                "format": None,
            },
            {"provider": "ollama", "model": "m", "stream": False, "options": {"seed": 1}},
        ),
        (
            GENERATE,
            {
                "model": "m",
                "prompt": "Hi",
                "system": "S",
                "suffix": "end",
                "context": [1, 2],
                "raw": True,
                "format": "",  # what older SDKs send for "no format"
            },
            {"provider": "ollama", "model": "m", "raw": True},
        ),
        (
            EMBED,
            {"model": "m", "input": ["a"], "truncate": True, "dimensions": 8},
            {"provider": "ollama", "model": "m", "truncate": True, "dimensions": 8},
        ),
    ],
    ids=["chat", "generate", "embed"],
)
def test_metadata_holds_the_settings_sent_never_the_content(endpoint, request_body, metadata):
    assert endpoint.metadata(request_body, None, None) == metadata


def test_metadata_adds_the_host_and_done_reason():
    done = ollama.ChatResponse(
        model="m", done=True, done_reason="length", message={"role": "assistant", "content": ""}
    )
    assert CHAT.metadata({"model": "m"}, done, "http://127.0.0.1:11434") == {
        "provider": "ollama",
        "model": "m",
        "host": "http://127.0.0.1:11434",
        "done_reason": "length",
    }


COUNTERS: dict[str, Any] = {
    "prompt_eval_count": 26,
    "eval_count": 10,
    "total_duration": 2_000_000_000,
    "load_duration": 1_000_000,
    "prompt_eval_duration": 130_000_000,
    "eval_duration": 500_000_000,
}


@pytest.mark.parametrize(
    ("counters", "metrics"),
    [
        (
            COUNTERS,
            {
                "prompt_tokens": 26,
                "completion_tokens": 10,
                "tokens": 36,
                "total_duration": 2.0,
                "load_duration": 0.001,
                "prompt_eval_duration": 0.13,
                "eval_duration": 0.5,
                "prompt_tokens_per_second": 200.0,
                "completion_tokens_per_second": 20.0,
            },
        ),
        ({"eval_count": 4}, {"completion_tokens": 4, "tokens": 4}),  # no durations: no speed
        (
            {"eval_count": 0, "eval_duration": 0, "prompt_eval_duration": 5_000_000},
            {
                "completion_tokens": 0,
                "tokens": 0,
                "eval_duration": 0.0,
                "prompt_eval_duration": 0.005,
            },
        ),  # a cached prompt and an empty answer: no division by zero
        ({}, {}),
    ],
    ids=["all-counters", "cached-prompt", "zero", "none"],
)
def test_metrics_come_from_the_servers_counters(counters, metrics):
    response = ollama.GenerateResponse(model="m", done=True, response="", **counters)
    assert GENERATE.metrics(response) == pytest.approx(metrics)


@pytest.mark.parametrize(
    ("load_duration", "cold_start"),
    [(1_000_000, False), (150_000_000, False), (500_000_000, False), (1_200_000_000, True)],
    ids=["warm-1ms", "warm-150ms", "at-threshold", "loaded-1.2s"],
)
def test_cold_start_is_a_load_over_half_a_second(load_duration, cold_start):
    done = ollama.GenerateResponse(model="m", done=True, response="", load_duration=load_duration)
    assert GENERATE.metadata({"model": "m"}, done, None)["cold_start"] is cold_start


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (
            {
                "temperature": 0,
                "top_p": 0.8,
                "num_predict": 32,
                "frequency_penalty": 0.1,
                "presence_penalty": 0.2,
                "stop": ["DONE"],
                "top_k": 10,
            },
            {
                "temperature": 0,
                "top_p": 0.8,
                "max_tokens": 32,
                "frequency_penalty": 0.1,
                "presence_penalty": 0.2,
                "stop": ["DONE"],
            },
        ),
        ({"num_ctx": 4096, "seed": 7}, {}),
        ({"num_predict": -1, "temperature": None}, {"max_tokens": -1}),
    ],
    ids=["all-six", "none-of-them", "as-sent"],
)
def test_sampling_options_are_also_under_openais_names(options, named):
    request = {"model": "m", "messages": [], "options": options}
    assert CHAT.metadata(request, None, None) == {
        "provider": "ollama",
        "model": "m",
        **named,
        "options": options,  # kept whole beside them
    }


def test_format_is_the_response_format_and_tools_are_function_definitions():
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    tools = [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two numbers",
                "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
            },
        },
        {"function": {"name": "now"}},  # no type, no description, no parameters
        {"type": "function", "function": {"description": "no name"}},  # cannot be called
    ]
    request = {"model": "m", "messages": [], "format": schema, "tools": tools}
    assert CHAT.metadata(request, None, None) == {
        "provider": "ollama",
        "model": "m",
        "response_format": schema,
        "tools": [tools[0], {"type": "function", "function": {"name": "now"}}],
    }


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": arguments}}


def schema_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
CHAT_CASES = [
    (
        "text",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    ),
    (
        "thinking-sent-back",
        [{"role": "assistant", "content": "4", "thinking": "2 + 2."}],
        [{"role": "assistant", "content": "4", "reasoning": [{"content": "2 + 2."}]}],
    ),
    (
        "results-by-tool-name",
        [
            {"role": "assistant", "tool_calls": [call("add", a=1), call("sub", a=2)]},
            {"role": "tool", "content": "-2", "tool_name": "sub"},
            {"role": "tool", "content": "1", "tool_name": "add"},
        ],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    schema_call("ollama_call_add_0", "add", '{"a":1}'),
                    schema_call("ollama_call_sub_1", "sub", '{"a":2}'),
                ],
            },
            {
                "role": "tool",
                "content": "-2",
                "tool_call_id": "ollama_call_sub_1",
                "tool_name": "sub",
            },
            {
                "role": "tool",
                "content": "1",
                "tool_call_id": "ollama_call_add_0",
                "tool_name": "add",
            },
        ],
    ),
    (
        "results-in-order-without-names",
        [
            {"role": "assistant", "tool_calls": [call("add", a=1), call("add", a=2)]},
            {"role": "tool", "content": "1"},
            {"role": "tool", "content": "2"},
        ],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    schema_call("ollama_call_add_0", "add", '{"a":1}'),
                    schema_call("ollama_call_add_1", "add", '{"a":2}'),
                ],
            },
            {"role": "tool", "content": "1", "tool_call_id": "ollama_call_add_0"},
            {"role": "tool", "content": "2", "tool_call_id": "ollama_call_add_1"},
        ],
    ),
    (
        "numbered-across-turns",
        [
            {"role": "assistant", "tool_calls": [call("add", a=1)]},
            {"role": "tool", "content": "1", "tool_name": "add"},
            {"role": "assistant", "content": "Now é.", "tool_calls": [call("add", a="é")]},
            {"role": "tool", "content": "é", "tool_name": "add"},
        ],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [schema_call("ollama_call_add_0", "add", '{"a":1}')],
            },
            {
                "role": "tool",
                "content": "1",
                "tool_call_id": "ollama_call_add_0",
                "tool_name": "add",
            },
            {
                "role": "assistant",
                "content": "Now é.",
                "tool_calls": [schema_call("ollama_call_add_1", "add", '{"a":"é"}')],
            },
            {
                "role": "tool",
                "content": "é",
                "tool_call_id": "ollama_call_add_1",
                "tool_name": "add",
            },
        ],
    ),
    (
        "result-answering-an-earlier-turn",
        [
            {"role": "assistant", "tool_calls": [call("slow", a=1)]},
            {"role": "assistant", "tool_calls": [call("fast", a=2)]},
            {"role": "tool", "content": "2", "tool_name": "fast"},
            {"role": "tool", "content": "1", "tool_name": "slow"},
        ],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [schema_call("ollama_call_slow_0", "slow", '{"a":1}')],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [schema_call("ollama_call_fast_1", "fast", '{"a":2}')],
            },
            {
                "role": "tool",
                "content": "2",
                "tool_call_id": "ollama_call_fast_1",
                "tool_name": "fast",
            },
            {
                "role": "tool",
                "content": "1",
                "tool_call_id": "ollama_call_slow_0",
                "tool_name": "slow",
            },
        ],
    ),
    (
        "result-without-a-call",
        [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "42", "tool_name": "f"}],
        [
            {"role": "user", "content": "Hi"},
            {"role": "tool", "content": "42", "tool_call_id": "ollama_call_f_0", "tool_name": "f"},
        ],
    ),
    (
        "server-ids-kept",
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "call_abc", **call("add", a=1)}, call("add", a=2)],
            },
            {"role": "tool", "content": "1", "tool_name": "add"},
            {"role": "tool", "content": "2", "tool_name": "add"},
        ],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    schema_call("call_abc", "add", '{"a":1}'),
                    schema_call("ollama_call_add_1", "add", '{"a":2}'),
                ],
            },
            {"role": "tool", "content": "1", "tool_call_id": "call_abc", "tool_name": "add"},
            {
                "role": "tool",
                "content": "2",
                "tool_call_id": "ollama_call_add_1",
                "tool_name": "add",
            },
        ],
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected"), [c[1:] for c in CHAT_CASES], ids=[c[0] for c in CHAT_CASES]
)
def test_chat_messages_map_to_braintrusts_schema(messages, expected):
    converted = chat_messages(messages)
    assert converted == expected
    for i, message in enumerate(converted):
        assert message_errors(message, f"[{i}]") == []


def test_chat_images_become_image_url_parts_holding_attachments():
    (message,) = chat_messages([{"role": "user", "content": "What?", "images": [PNG_B64]}])
    text, image = message["content"]
    assert text == {"type": "text", "text": "What?"}
    assert image["type"] == "image_url"
    attachment = image["image_url"]["url"]
    assert isinstance(attachment, Attachment)
    assert attachment.reference["content_type"] == "image/png"
    assert attachment.reference["filename"] == "image-0.png"
    (only_image,) = chat_messages([{"role": "user", "images": [PNG_B64]}])
    assert [part["type"] for part in only_image["content"]] == ["image_url"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("get_weather", "ollama_call_get_weather_3"),
        ("ns.get-weather v2", "ollama_call_ns_get-weather_v2_3"),
        ("météo", "ollama_call_m_t_o_3"),
        ("🌦", "ollama_call____3"),  # outside the BMP: two UTF-16 units, as JavaScript counts
        ("", "ollama_call_tool_3"),
    ],
    ids=["plain", "punctuation", "accents", "astral", "empty"],
)
def test_synthetic_tool_call_ids_are_the_plugins(name, expected):
    assert synthetic_tool_call_id(name, 3) == expected


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"prompt": "Hi"}, [{"role": "user", "content": "Hi"}]),
        (
            {"prompt": "Hi", "system": "Be brief."},
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        ),
        (
            {"prompt": "def f(", "suffix": "return x", "system": ""},
            [{"role": "user", "content": "def f(", "suffix": "return x"}],
        ),
        ({"prompt": ""}, [{"role": "user", "content": ""}]),  # `generate(model)` loads the model
    ],
    ids=["prompt", "system", "suffix", "load-only"],
)
def test_generate_input_is_messages(request_body, expected):
    assert GENERATE.input({"model": "m", **request_body}) == expected


def choices(message: dict[str, Any], finish_reason: str = "stop") -> list[dict[str, Any]]:
    return [{"index": 0, "finish_reason": finish_reason, "message": message}]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (
            ollama.GenerateResponse(model="m", done=True, response="Blue.", done_reason="stop"),
            choices({"role": "assistant", "content": "Blue."}),
        ),
        (
            ollama.GenerateResponse(model="m", done=True, response="1, 2", done_reason="length"),
            choices({"role": "assistant", "content": "1, 2"}, "length"),
        ),
        (
            ollama.ChatResponse(
                model="m", done=False, message={"role": "assistant", "content": "Cut sh"}
            ),
            choices({"role": "assistant", "content": "Cut sh"}),  # no done_reason: "stop"
        ),
        (
            ollama.ChatResponse(
                model="m",
                done=True,
                done_reason="stop",
                message={"role": "assistant", "content": "", "tool_calls": [call("f", x=1)]},
            ),
            choices(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [schema_call("ollama_call_f_3", "f", '{"x":1}')],
                },
                "tool_calls",
            ),
        ),
    ],
    ids=["generate", "generate-cut-at-num-predict", "chat-without-done-reason", "chat-tool-call"],
)
def test_output_is_choices_with_the_finish_reason(response, expected):
    endpoint = CHAT if isinstance(response, ollama.ChatResponse) else GENERATE
    three_calls_before = {
        "messages": [
            {"role": "assistant", "content": "", "tool_calls": [call("g"), call("g")]},
            {"role": "assistant", "content": "", "tool_calls": [call("g")]},
        ]
    }
    # The conversation held three tool calls: the reply's are numbered from 3.
    assert endpoint.output(response, three_calls_before) == expected


def test_a_tool_call_with_an_empty_name_is_kept():
    (message,) = chat_messages([{"role": "assistant", "tool_calls": [call("", x=1)]}])
    assert message["tool_calls"] == [schema_call("ollama_call_tool_0", "", '{"x":1}')]


def test_an_image_of_unknown_type_is_an_attachment_never_base64():
    data = base64.b64encode(b"not an image").decode()
    (message,) = chat_messages([{"role": "user", "content": "What?", "images": [data]}])
    _, image = message["content"]
    attachment = image["image_url"]["url"]
    assert isinstance(attachment, Attachment)
    assert attachment.reference["content_type"] == "application/octet-stream"
    assert attachment.data == b"not an image"
