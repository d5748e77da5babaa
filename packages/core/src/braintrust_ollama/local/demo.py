"""`braintrust-ollama demo`: a short traced app, run against a live Ollama or recorded traffic.

Under one root span it makes the calls an Ollama app makes (a chat, a chat whose answer is a
tool call, the tool, a streamed chat that thinks first, a generate, an embed) through the real
`ollama` SDK patched by `setup_ollama()`. It talks to the Ollama at `OLLAMA_HOST` (default
127.0.0.1:11434) when `/api/version` answers within half a second; otherwise the same calls are
answered from traffic recorded from real Ollama servers (`recordings/`), and one line says so.
Spans go to Braintrust when `BRAINTRUST_API_KEY` is set (a copy stays in the local store),
otherwise to the local store only. Then the trace is printed as a tree, from the local store:
it is there whether Braintrust answered or not.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import braintrust
import httpx
import ollama
from braintrust.logger import SpanImpl
from braintrust.span_types import SpanTypeAttribute
from ollama._client import _parse_host  # how the SDK itself reads OLLAMA_HOST
from rich.console import Console
from rich.text import Text

from braintrust_ollama._command import cli_command
from braintrust_ollama.destinations import init_logger
from braintrust_ollama.integration import setup_ollama
from braintrust_ollama.local.replay import replay_client
from braintrust_ollama.local.store import LocalStore
from braintrust_ollama.local.view import printable, trace_tree

__all__ = ["DEMO_PROJECT", "Models", "ollama_answers", "run_demo"]

DEMO_PROJECT = "braintrust-ollama-demo"
PROBE_TIMEOUT_S = 0.5
DEFAULT_LIVE_MODEL = "llama3.2"
# The recorded calls: replay serves these models and these requests only.
REPLAY_MODELS = ("qwen3.6:latest", "llama3", "all-minilm")
OPTIONS = {"temperature": 0, "seed": 42}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "required": ["city"],
            "properties": {"city": {"type": "string", "description": "The city name."}},
        },
    },
}
_SHOWN_CHARS = 72


@dataclass(frozen=True)
class Models:
    chat: str
    generate: str
    embed: str


def ollama_answers(host: str) -> bool:
    """Whether an Ollama server answers `GET /api/version` at `host`, quickly."""
    try:
        response = httpx.get(f"{host}/api/version", timeout=PROBE_TIMEOUT_S)
        return response.status_code == 200 and "version" in response.json()
    except (httpx.HTTPError, ValueError):
        return False


def run_demo(console: Console, *, model: str | None = None, embed_model: str | None = None) -> int:
    """Run the demo app, print its trace; 0 when every call succeeded, 1 otherwise."""
    host = _parse_host(os.environ.get("OLLAMA_HOST"))
    store = LocalStore()
    _start_logging(store)
    setup_ollama()

    if ollama_answers(host):
        client = ollama.Client(host=host)
        models = _live_models(client, model, embed_model)
        console.print(Text(f"Using the Ollama server at {printable(host)}."))
    else:
        client = replay_client(host)
        models = Models(*REPLAY_MODELS)
        console.print(
            Text(
                f"No Ollama answered at {printable(host)}, so the demo replays real Ollama"
                " traffic recorded by open-source projects."
            )
        )

    failures, root_span_id = _run_app(client, models, console)
    braintrust.flush()
    rows = store.rows(root_span_id)
    if not rows:
        print(f"braintrust-ollama: the trace was not stored in {store.path}", file=sys.stderr)
        return 1
    console.print()
    console.print(trace_tree(rows, root_span_id))
    console.print()
    # One line, however long: the terminal wraps it, so it pastes as one command.
    console.print(Text(f"See it again: {cli_command()} traces show {root_span_id}"), soft_wrap=True)
    return 1 if failures else 0


def _start_logging(store: LocalStore) -> None:
    # Braintrust with a key (the tree below is printed from the local copy), else the store only.
    init_logger(DEMO_PROJECT, path=store.path)


def _live_models(client: ollama.Client, chat: str | None, embed: str | None) -> Models:
    """The `--model`s asked for, else models the server has (an embedding model for embed)."""
    try:
        names = [m.model or "" for m in client.list().models]
    except (ollama.ResponseError, ConnectionError, httpx.HTTPError):
        names = []
    embedders = [n for n in names if "embed" in n or "minilm" in n]
    chat = chat or next((n for n in names if n not in embedders), DEFAULT_LIVE_MODEL)
    return Models(chat=chat, generate=chat, embed=embed or next(iter(embedders), chat))


def get_current_weather(city: str) -> str:
    """The demo's tool: a fixed forecast (it is the call, not the weather, that is traced)."""
    return f"{city}: 18 C, light rain"


def _call_weather_tool(arguments: dict[str, Any]) -> str:
    """Run the demo's tool under a tool span holding the arguments the model chose.

    A model may name other arguments than the tool declares: the `TypeError` is recorded on the
    tool span (its error) and raised to the demo's step, which shows it and goes on.
    """
    with braintrust.start_span(
        name="get_current_weather", type=SpanTypeAttribute.TOOL, input=arguments
    ) as span:
        result = get_current_weather(**arguments)
        span.log(output=result)
        return result


def _run_app(client: ollama.Client, models: Models, console: Console) -> tuple[int, str]:
    failures = 0

    def step(label: str, model: str, call: Callable[[], str]) -> None:
        nonlocal failures
        try:
            shown = call()
        except (ollama.ResponseError, ConnectionError, httpx.HTTPError, TypeError) as error:
            failures += 1  # TypeError: the model called the tool with other arguments
            shown = f"error: {error}"
        console.print(_step_line(label, model, shown, console.width))

    def chat() -> str:
        response = client.chat(
            model=models.chat,
            messages=[{"role": "user", "content": "Why is the sky blue? Answer in one sentence."}],
            options=OPTIONS,
        )
        return response.message.content or ""

    def chat_with_tool() -> str:
        response = client.chat(
            model=models.chat,
            messages=[
                {
                    "role": "user",
                    "content": "What is the weather in Paris? Use the get_current_weather tool.",
                }
            ],
            tools=[WEATHER_TOOL],
            options=OPTIONS,
        )
        calls = response.message.tool_calls or []
        if not calls:
            return f"(no tool call) {response.message.content or ''}"
        arguments = dict(calls[0].function.arguments)
        result = _call_weather_tool(arguments)
        return f"{calls[0].function.name}({json.dumps(arguments)}) -> {result}"

    def streamed_chat() -> str:
        content, thinking, chunks = "", "", 0
        for chunk in client.chat(
            model=models.chat,
            messages=[{"role": "user", "content": "Count from 1 to 5, digits only."}],
            options=OPTIONS,
            stream=True,
        ):
            chunks += 1
            content += chunk.message.content or ""
            thinking += getattr(chunk.message, "thinking", None) or ""  # ollama >= 0.5.2
        return f"{content}  ({chunks} chunks, {len(thinking)} characters of thinking first)"

    def generate() -> str:
        prompt = "Tell me a joke about OpenTelemetry"
        return client.generate(model=models.generate, prompt=prompt).response or ""

    def embed() -> str:
        vectors = client.embed(model=models.embed, input=["Why is the sky blue?"]).embeddings
        return f"{len(vectors)} vector of {len(vectors[0]) if vectors else 0} numbers"

    with braintrust.start_span(name="braintrust-ollama demo", type=SpanTypeAttribute.TASK) as root:
        root.log(input={"models": models.__dict__})
        step("chat", models.chat, chat)
        step("tool call", models.chat, chat_with_tool)
        step("streamed chat", models.chat, streamed_chat)
        step("generate", models.generate, generate)
        step("embed", models.embed, embed)
        root.log(output={"calls": 5, "failed": failures})
        return failures, cast(SpanImpl, root).root_span_id


def _step_line(label: str, model: str, shown: Any, width: int) -> Text:
    """One line per step, whatever the terminal's width: the label, the model and the start of
    what the call returned (the model's text, shown as text), cut to the line."""
    flat = printable(" ".join(str(shown).split()))
    if len(flat) > _SHOWN_CHARS:
        flat = flat[: _SHOWN_CHARS - 3] + "..."
    line = Text(f"  {label:<14} {printable(model):<16} {flat}", no_wrap=True)
    line.truncate(width, overflow="ellipsis")
    return line
