"""Ollama exchanges traced both by this project and by Braintrust's own Ollama integration.

Braintrust's JavaScript SDK traces Ollama too (`wrapOllama`, its `ollama-plugin.ts`). Each
exchange here is a few SDK calls, the same in Python (`ollama.Client`) and JavaScript (the
`ollama` npm package): `request` holds the call's arguments, which both SDKs take under the same
names, and `reply` what the in-process Ollama (`FakeOllama`) answers. The spans Braintrust's
plugin wrote for them are recorded in tests/cassettes/plugin/ by scripts/record_plugin_spans.py;
tests/core/test_plugin_parity.py traces the same exchanges and compares.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from support.ollama_server import Chat, Embed, Generate

__all__ = ["EXCHANGES", "PATHS", "Call", "Exchange"]

# A 1x1 PNG and the first bytes of a JPEG, as an Ollama client sends images: base64 text.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
JPEG_B64 = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 16).decode()
PATHS = {"chat": "/api/chat", "generate": "/api/generate", "embed": "/api/embed"}


@dataclass(frozen=True)
class Call:
    method: str  # "chat" | "generate" | "embed"
    request: dict[str, Any]  # the call's arguments, the same in both SDKs
    reply: Any  # FakeOllama's answer: Chat, Generate or Embed


@dataclass(frozen=True)
class Exchange:
    name: str
    calls: tuple[Call, ...]
    # What the Python SDK must send and parse for the exchange to be the same one: "think"
    # (ollama >= 0.5.2), "tool_name" on a tool result (ollama >= 0.4.8).
    needs: tuple[str, ...] = ()


def _tool(name: str, description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city"}},
                "required": ["city"],
            },
        },
    }


def _call(name: str, city: str) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": {"city": city}}}


TOOLS = [_tool("get_weather", "Weather now"), _tool("get_forecast", "Weather tomorrow")]
WEATHER_QUESTION = {"role": "user", "content": "Weather in Paris now and tomorrow, then Lyon?"}
FIRST_CALLS = [_call("get_weather", "Paris"), _call("get_forecast", "Paris")]
FIRST_TURN = [
    WEATHER_QUESTION,
    {"role": "assistant", "content": "", "tool_calls": FIRST_CALLS},
    # Answered out of order: each result is paired with its call by tool_name.
    {"role": "tool", "content": '{"forecast": "sunny"}', "tool_name": "get_forecast"},
    {"role": "tool", "content": '{"temperature": 18}', "tool_name": "get_weather"},
]
SECOND_CALLS = [_call("get_weather", "Lyon")]
SECOND_TURN = [
    *FIRST_TURN,
    {"role": "assistant", "content": "", "tool_calls": SECOND_CALLS},
    {"role": "tool", "content": '{"temperature": 20}', "tool_name": "get_weather"},
]
SAMPLING = {
    "temperature": 0,
    "top_p": 0.8,
    "num_predict": 128,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.2,
    "stop": ["DONE"],
    "top_k": 10,
    "seed": 7,
}

EXCHANGES: tuple[Exchange, ...] = (
    Exchange(
        "chat",
        (
            Call(
                "chat",
                {
                    "model": "llama3.2",
                    "messages": [
                        {"role": "system", "content": "Be concise."},
                        {"role": "user", "content": "Reply with exactly OK."},
                    ],
                    "options": SAMPLING,
                    "format": "json",
                    "keep_alive": "5m",
                },
                Chat("OK", prompt_eval_count=21, eval_count=2),
            ),
        ),
    ),
    Exchange(
        "chat-stream",
        (
            Call(
                "chat",
                {
                    "model": "llama3.2",
                    "messages": [{"role": "user", "content": "Reply with a few words."}],
                    "options": {"temperature": 0, "num_predict": 128},
                    "stream": True,
                },
                Chat("A few words, streamed.", prompt_eval_count=17, eval_count=6),
            ),
        ),
    ),
    Exchange(
        "tools",
        (
            Call(
                "chat",
                {"model": "qwen3", "messages": [WEATHER_QUESTION], "tools": TOOLS},
                Chat("", tool_calls=FIRST_CALLS, prompt_eval_count=180, eval_count=40),
            ),
            Call(  # streamed: its calls are numbered after the two sent back
                "chat",
                {"model": "qwen3", "messages": FIRST_TURN, "tools": TOOLS, "stream": True},
                Chat("", tool_calls=SECOND_CALLS, prompt_eval_count=260, eval_count=20),
            ),
            Call(
                "chat",
                {"model": "qwen3", "messages": SECOND_TURN, "tools": TOOLS},
                Chat("Paris: 18 now, sunny tomorrow. Lyon: 20.", prompt_eval_count=300),
            ),
        ),
        needs=("tool_name",),
    ),
    Exchange(
        "thinking",
        (
            Call(
                "chat",
                {
                    "model": "qwen3",
                    "messages": [{"role": "user", "content": "What is 2 + 2?"}],
                    "think": True,
                },
                Chat("4", thinking="2 + 2 is 4.", prompt_eval_count=15, eval_count=9),
            ),
            Call(  # the thinking sent back, and a streamed answer with thinking
                "chat",
                {
                    "model": "qwen3",
                    "messages": [
                        {"role": "user", "content": "What is 2 + 2?"},
                        {"role": "assistant", "content": "4", "thinking": "2 + 2 is 4."},
                        {"role": "user", "content": "And 3 + 3?"},
                    ],
                    "think": True,
                    "stream": True,
                },
                Chat("6", thinking="3 + 3 is 6.", prompt_eval_count=30, eval_count=9),
            ),
            Call(
                "generate",
                {"model": "qwen3", "prompt": "What is 5 + 5?", "think": True, "stream": True},
                Generate("10", thinking="5 + 5 is 10.", prompt_eval_count=15, eval_count=9),
            ),
        ),
        needs=("think",),
    ),
    Exchange(
        "images",
        (
            Call(
                "chat",
                {
                    "model": "llava",
                    "messages": [
                        {
                            "role": "user",
                            "content": "What is in these pictures?",
                            "images": [PNG_B64, JPEG_B64],
                        }
                    ],
                },
                Chat("Two tiny squares.", prompt_eval_count=600, eval_count=5),
            ),
            Call(
                "generate",
                {"model": "llava", "prompt": "Describe it.", "images": [PNG_B64]},
                Generate("A dot.", prompt_eval_count=590, eval_count=3),
            ),
        ),
    ),
    Exchange(
        "generate",
        (
            Call(
                "generate",
                {
                    "model": "codellama:code",
                    "system": "Complete the code.",
                    "prompt": "def add(a, b):\n",
                    "suffix": "    return result\n",
                    "options": {"temperature": 0.2, "num_predict": 64},
                },
                Generate("    result = a + b\n", prompt_eval_count=24, eval_count=8),
            ),
            Call(
                "generate",
                {"model": "llama3", "prompt": "Count to 3.", "stream": True},
                Generate("1, 2, 3.", prompt_eval_count=12, eval_count=6),
            ),
            Call(
                "generate",
                {"model": "llama3", "prompt": "Count to 9.", "options": {"num_predict": 2}},
                Generate("1, 2", done_reason="length", prompt_eval_count=12, eval_count=2),
            ),
        ),
    ),
    Exchange(
        "embed",
        (
            Call(
                "embed",
                {"model": "all-minilm", "input": ["braintrust tracing", "ollama tracing"]},
                Embed(dimensions=4, prompt_eval_count=8),
            ),
        ),
    ),
)
