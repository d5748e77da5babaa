"""What an Ollama span holds: one object per traced endpoint owns its whole span shape.

An `Endpoint` turns one Ollama endpoint's request and response into Braintrust span fields: span
name and type, `input`, `output`, `metadata`, `metrics`, and how a stream of its chunks adds up to
the same output. `ENDPOINTS` maps each traced path to its endpoint; a path not there (show, list,
ps, pull, push, create, copy, delete) is never traced. The adapters reuse these objects and hold
no Ollama parsing of their own.

Adding an endpoint touches this module only: subclass `Endpoint`, give it its `path`, `name`,
`content_keys` (request keys that are the span's input; every other key is metadata), implement
`input(request)` and `output(response, request)`, and, if the SDK streams it, a `Stream` subclass
returned by `stream()`; then list an instance in `ENDPOINTS`. Set `has_first_token=False` for an
endpoint with no token stream (`time_to_first_token` is then never recorded), `type` for a span
that is not an `llm` span (a `tool`, say), and `chat_schema=True` when its input is chat messages
and its output chat choices (the test suite then checks every such span against Braintrust's
schema), and `inspected=True` for a local model's completion (chat, generate): its span also says
why the answer may be bad and what the model is (`_insight`, `_model_info`), from what
`answer(response)` / `Stream.answer()` return. Override `metadata` / `metrics` when the
endpoint's response carries other fields or counters. With content recording off
(`record_content=False`), `input`, `output` and `Stream.output` are never called: whatever an
endpoint puts there is what the switch keeps out.

Chat, generate and embed spans have the shape Braintrust's own Ollama integration (its
JavaScript SDK's `ollama-plugin.ts`) writes, so one query, dashboard or scorer reads both; where
that plugin and Braintrust's schema (`braintrust._generated_types`) disagree, the schema wins.
The contract of every endpoint:

- `input`: what was sent; images as Braintrust `Attachment`s, never base64 text. Chat and
  generate (`chat_schema=True`) log Braintrust's chat schema (`ChatCompletionMessageParam`):
  images as `{"type": "image_url", "image_url": {"url": Attachment}}` parts, thinking as
  `reasoning: [{"content": ...}]`, tool calls as `{"id", "type": "function", "function":
  {"name", "arguments": <JSON text>}}` (an assistant message with calls and no text has content
  null), tool results as `role: "tool"` with their `tool_call_id` (and Ollama's `tool_name`, an
  extra key the schema allows). A tool call keeps the id the server sent when the SDK keeps it;
  otherwise it is `ollama_call_<name>_<n>`, `n` counting the tool calls of the conversation
  before it, so a chat's output and the same message sent back next get the same ids. A tool
  result answers the oldest unanswered call with its `tool_name` (the oldest of any name when it
  has none). Generate's input is the system prompt and the prompt (with `suffix` on it).
- `output`: what came back. Chat and generate: OpenAI-style choices, `[{"index": 0,
  "finish_reason", "message"}]`, `finish_reason` being `"tool_calls"` when the message has tool
  calls, else Ollama's `done_reason` (`"stop"` when there is none); the same whether streamed
  or not. Embeddings: the vectors' length, never the vectors.
- `metadata`: `provider`, `model`, the sampling options under OpenAI's names (`temperature`,
  `top_p`, `max_tokens` from `num_predict`, `stop`, `frequency_penalty`, `presence_penalty`),
  `response_format` (Ollama's `format`), `tools` as `{"type": "function", "function": {...}}`,
  and every other setting as sent (`options` whole, `think`, `keep_alive`, `stream`, ...);
  then `done_reason`, `cold_start` (the model was loaded for this call: `load_duration` over
  `COLD_START_SECONDS`) and the server host without credentials.
- `metrics`: `prompt_tokens` (= `prompt_eval_count`), `completion_tokens` (= `eval_count`),
  `tokens` (their sum), Ollama's server timings in seconds, and the generation speeds
  `prompt_tokens_per_second` / `completion_tokens_per_second` (count / its eval duration). A
  counter the server omits is left out, and so is what is computed from it.
- A `Stream` keeps joined fragments and the last chunk (which holds the counters), never every
  chunk; its `add` runs once per chunk and only appends.
- Never logged: request headers, `Authorization`, `OLLAMA_API_KEY`: nothing here reads them.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from braintrust import Attachment

from ._insight import Answer

__all__ = [
    "COLD_START_SECONDS",
    "ENDPOINTS",
    "Chat",
    "Embed",
    "Embeddings",
    "Endpoint",
    "Generate",
    "LeftOut",
    "Stream",
    "SystemOne",
    "Web",
    "chat_messages",
    "host_without_credentials",
    "metrics_from_response",
    "synthetic_tool_call_id",
    "tool_definitions",
]

_SKIPPED_KEYS = frozenset({"model", "context"})  # model is its own field; context is token ids
# Settings that say nothing (older SDKs send `format: ""`, `system: ""`, `suffix: ""` by default).
_EMPTY: tuple[Any, ...] = (None, "", [])
# A call whose `load_duration` is over this loaded the model for itself (a cold start). Warm calls
# report milliseconds up to ~0.15 s (scheduling, a large model's runner); the loads recorded in
# tests/cassettes and ../shared/ollama-recordings take 1.2 s to 8 s.
COLD_START_SECONDS = 0.5
# Ollama's sampling options that OpenAI names too, under OpenAI's name (as Braintrust's Ollama
# plugin writes them, so a filter on `metadata.max_tokens` reads every provider's spans).
OPENAI_SETTINGS = (
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("num_predict", "max_tokens"),
    ("frequency_penalty", "frequency_penalty"),
    ("presence_penalty", "presence_penalty"),
    ("stop", "stop"),
)
_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
_IMAGE_TYPES = (
    (b"\x89PNG", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF8", "image/gif", "gif"),
    (b"RIFF", "image/webp", "webp"),
)


class LeftOut(Exception):
    """Raised by a builder of a span field that had to leave a part of it out (a generated image
    that is not base64): `value` is the field without that part, `part` names it
    (`"output.image"`) and `why` says why, without quoting content. The span is written with
    `value`, and `metadata.not_recorded[part] = why`."""

    def __init__(self, value: Any, part: str, why: str) -> None:
        super().__init__(f"{part}: {why}")
        self.value = value
        self.part = part
        self.why = why


class Stream:
    """What a stream has shown so far: `add(chunk)` once per chunk, `output(request)` once.

    `add` only appends (it runs per chunk: keep it to that); `last` is the last chunk, whose
    counters are the span's metrics.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: Any = None

    def add(self, chunk: Any) -> None:
        self.last = chunk

    def output(self, request: Mapping[str, Any]) -> Any:
        return None

    def response_metadata(self) -> dict[str, Any]:
        """What the chunks said beyond the output (log probabilities), for the metadata."""
        return {}

    def answer(self) -> Answer | None:
        """What the model returned so far, for the checks of `inspected` endpoints."""
        return None


@dataclass(frozen=True)
class Endpoint:
    """One traced Ollama endpoint and the span each call to it becomes."""

    path: str
    name: str
    content_keys: tuple[str, ...]
    type: str = "llm"
    has_first_token: bool = True
    chat_schema: bool = False  # input chat messages, output chat choices (Braintrust's schema)
    # A local model's answer: the span also says why it may be bad (braintrust_ollama._insight)
    # and what the model is (braintrust_ollama._model_info); `answer` feeds the checks.
    inspected: bool = False

    def input(self, request: Mapping[str, Any]) -> Any:
        """The span input for the request body the SDK sent."""
        raise NotImplementedError

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        """The span output for a whole (non-streamed) response."""
        raise NotImplementedError

    def stream(self) -> Stream:
        """A fresh accumulator for a streamed response."""
        return Stream()

    def metadata(self, request: Mapping[str, Any], last: Any, host: str | None) -> dict[str, Any]:
        """Provider, model, the settings sent (sampling options also under OpenAI's names,
        `format` as `response_format`, `tools` as function definitions), `done_reason`,
        `cold_start` and the server host. An empty setting (`""`, `[]`, None) is left out."""
        metadata: dict[str, Any] = {"provider": "ollama", "model": request.get("model")}
        options = request.get("options")
        if isinstance(options, Mapping):
            for name, openai_name in OPENAI_SETTINGS:
                value = options.get(name)
                if value is not None:
                    metadata[openai_name] = value
        for key, value in request.items():
            if key in self.content_keys or key in _SKIPPED_KEYS or value in _EMPTY:
                continue
            if key == "format":
                metadata["response_format"] = value
            elif key == "tools":
                tools = tool_definitions(value)
                if tools:
                    metadata["tools"] = tools
            else:
                metadata[key] = value
        if host:
            metadata["host"] = host
        done_reason = getattr(last, "done_reason", None)
        if done_reason:
            metadata["done_reason"] = done_reason
        load = getattr(last, "load_duration", None)
        if load is not None:
            metadata["cold_start"] = load > COLD_START_SECONDS * 1e9
        return metadata

    def metrics(self, last: Any) -> dict[str, float]:
        """Token counts and server timings from the response or a stream's final chunk."""
        return metrics_from_response(last) if last is not None else {}

    def response_metadata(self, response: Any) -> dict[str, Any]:
        """What a whole response says beyond the output (log probabilities), for the metadata."""
        return {}

    def answer(self, response: Any) -> Answer | None:
        """What a whole response returned, for the checks of `inspected` endpoints."""
        return None


# --- chat ---------------------------------------------------------------------------------------


class _ChatStream(Stream):
    __slots__ = ("content", "logprobs", "thinking", "tool_calls", "with_logprobs")

    def __init__(self) -> None:
        super().__init__()
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: list[Any] = []
        self.logprobs: list[Any] = []
        self.with_logprobs = False  # this SDK's chunks have `logprobs` (ollama >= 0.6.1)

    def add(self, chunk: Any) -> None:
        if self.last is None:
            self.with_logprobs = _has_field(chunk, "logprobs")
        self.last = chunk
        message = chunk.message
        if message.content:
            self.content.append(message.content)
        if message.thinking:
            self.thinking.append(message.thinking)
        if message.tool_calls:
            self.tool_calls.extend(message.tool_calls)
        if self.with_logprobs and chunk.logprobs:  # when requested
            self.logprobs.extend(chunk.logprobs)

    def output(self, request: Mapping[str, Any]) -> Any:
        message = _assistant(
            "".join(self.content),
            "".join(self.thinking),
            self.tool_calls,
            _tool_calls_before(request.get("messages")),
        )
        return _choices(message, getattr(self.last, "done_reason", None))

    def response_metadata(self) -> dict[str, Any]:
        return logprobs_metadata(self.logprobs)

    def answer(self) -> Answer | None:
        return Answer("".join(self.content), len(self.tool_calls), bool(self.thinking))


class _ChatStreamWithoutThinking(_ChatStream):
    """For SDKs before ollama 0.5.2, whose messages have no `thinking`."""

    __slots__ = ()

    def add(self, chunk: Any) -> None:
        self.last = chunk
        message = chunk.message
        if message.content:
            self.content.append(message.content)
        if message.tool_calls:
            self.tool_calls.extend(message.tool_calls)


@dataclass(frozen=True)
class Chat(Endpoint):
    """`/api/chat`: the messages in, the assistant message out as choices (Braintrust's chat
    schema)."""

    def input(self, request: Mapping[str, Any]) -> Any:
        return chat_messages(request.get("messages") or [])

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        message = response.message
        thinking = getattr(message, "thinking", None)  # ollama < 0.5.2 has no thinking
        offset = _tool_calls_before(request.get("messages"))
        reply = _assistant(message.content, thinking, message.tool_calls, offset)
        return _choices(reply, response.done_reason)

    def stream(self) -> Stream:
        return _ChatStream() if _sdk_has_thinking() else _ChatStreamWithoutThinking()

    def response_metadata(self, response: Any) -> dict[str, Any]:
        return logprobs_metadata(_field(response, "logprobs"))

    def answer(self, response: Any) -> Answer | None:
        message = response.message
        thinking = getattr(message, "thinking", None)  # ollama < 0.5.2 has no thinking
        return Answer(message.content or "", len(message.tool_calls or ()), bool(thinking))


def chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Ollama chat messages (as the SDK sends them) in Braintrust's chat schema, nothing lost."""
    converted: list[dict[str, Any]] = []
    calls_before = 0  # tool calls in the messages so far: the next synthetic id's number
    unanswered: list[tuple[str, str]] = []  # (id, name) of the calls with no result yet
    for message in messages:
        role = message.get("role")
        extras = {k: v for k, v in message.items() if k not in _MESSAGE_KEYS}
        if role == "assistant":
            out = _assistant(
                message.get("content"),
                message.get("thinking"),
                message.get("tool_calls"),
                calls_before,
            )
            unanswered.extend((c["id"], c["function"]["name"]) for c in out.get("tool_calls", ()))
        elif role == "tool":
            name = message.get("tool_name")
            call_id = _answer(unanswered, name) or synthetic_tool_call_id(name or "", 0)
            out = {"role": "tool", "content": message.get("content") or "", "tool_call_id": call_id}
            if name:
                out["tool_name"] = name
        elif role == "user":
            out = {"role": "user", "content": _user_content(message.get("content"), extras)}
        else:
            out = {"role": role, "content": message.get("content") or ""}
        calls_before += len(message.get("tool_calls") or ())
        if extras.get("images"):  # images on a message other than the user's: kept as sent
            extras["images"] = _attachments(extras["images"])
        converted.append({**out, **extras} if extras else out)
    return converted


# The keys of an Ollama message that `chat_messages` maps; any other key is kept as it is.
_MESSAGE_KEYS = frozenset({"role", "content", "thinking", "tool_calls", "tool_name"})


def _user_content(content: str | None, extras: dict[str, Any]) -> Any:
    """The text, or text and image parts when the message has images (taken out of `extras`)."""
    images = extras.pop("images", None)
    if not images:
        return content or ""
    parts: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
    parts.extend(
        {"type": "image_url", "image_url": {"url": attachment}}
        for attachment in _attachments(images)
    )
    return parts


def _tool_calls_before(messages: Any) -> int:
    """How many tool calls the messages sent hold: where the reply's synthetic ids start."""
    return sum(len(m.get("tool_calls") or ()) for m in messages or ())


def _answer(unanswered: list[tuple[str, str]], name: str | None) -> str | None:
    """The id of the call a tool result answers (removed from `unanswered`): the oldest with
    its name, or the oldest of all for a result without a name; None when there is none."""
    for i, (call_id, call_name) in enumerate(unanswered):
        if not name or call_name == name:
            del unanswered[i]
            return call_id
    return None


def _assistant(
    content: str | None, thinking: str | None, tool_calls: Any, calls_before: int
) -> dict[str, Any]:
    """An assistant message: `role`, `content` (null for tool calls with no text), and
    `reasoning` and `tool_calls` when present."""
    calls = [_tool_call(call, calls_before + i) for i, call in enumerate(tool_calls or ())]
    output: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if thinking:
        output["reasoning"] = [{"content": thinking}]
    if calls:
        output["tool_calls"] = calls
    return output


def _choices(message: dict[str, Any], done_reason: str | None) -> list[dict[str, Any]]:
    """The reply as OpenAI-style choices: `finish_reason` is `"tool_calls"` when it calls tools,
    else Ollama's `done_reason` (`"stop"` when the server gave none)."""
    finish_reason = "tool_calls" if message.get("tool_calls") else done_reason or "stop"
    return [{"index": 0, "finish_reason": finish_reason, "message": message}]


def _tool_call(call: Any, number: int) -> dict[str, Any]:
    """An Ollama tool call (dict or SDK model) as `{id, type, function: {name, arguments}}`:
    the server's id when the SDK kept it, else `synthetic_tool_call_id(name, number)`."""
    function = call["function"]
    name = function["name"]
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(
            dict(arguments) if isinstance(arguments, Mapping) else arguments or {},
            ensure_ascii=False,
            separators=(",", ":"),  # compact, as JavaScript's JSON.stringify writes it
            default=str,
        )
    call_id = call.get("id")
    if not (isinstance(call_id, str) and call_id):
        call_id = synthetic_tool_call_id(name, number)
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def synthetic_tool_call_id(name: str, number: int) -> str:
    """`ollama_call_<name>_<number>`, the id Braintrust's Ollama plugin gives a call the server
    sent none for: each character of the name outside `[a-zA-Z0-9_-]` is `_` (two for one
    outside the BMP, as JavaScript counts it), an empty name is `tool`."""
    safe = _ID_UNSAFE.sub(lambda m: "__" if ord(m.group()) > 0xFFFF else "_", name or "")
    return f"ollama_call_{safe or 'tool'}_{number}"


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """The tools sent, as `{"type": "function", "function": {name, description, parameters}}`
    (what the SDK sends for a Python function or a dict): a tool with no name is left out, as
    the server cannot call it."""
    definitions: list[dict[str, Any]] = []
    for tool in tools if isinstance(tools, Sequence) else ():
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        name = function.get("name")
        if not (isinstance(name, str) and name):
            continue
        definition: dict[str, Any] = {"name": name}
        description = function.get("description")
        if isinstance(description, str):
            definition["description"] = description
        parameters = function.get("parameters")
        if isinstance(parameters, Mapping):
            definition["parameters"] = parameters
        definitions.append({"type": "function", "function": definition})
    return definitions


# --- generate -----------------------------------------------------------------------------------


class _GenerateStream(Stream):
    __slots__ = ("image", "logprobs", "text", "thinking", "with_image", "with_logprobs")

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.logprobs: list[Any] = []
        self.image: str | None = None
        self.with_logprobs = False  # this SDK's chunks have `logprobs` (ollama >= 0.6.1)
        self.with_image = False  # and `image` (ollama >= 0.6.2)

    def add(self, chunk: Any) -> None:
        if self.last is None:
            self.with_logprobs = _has_field(chunk, "logprobs")
            self.with_image = _has_field(chunk, "image")
        self.last = chunk
        if chunk.response:
            self.text.append(chunk.response)
        if chunk.thinking:
            self.thinking.append(chunk.thinking)
        if self.with_logprobs and chunk.logprobs:  # when requested
            self.logprobs.extend(chunk.logprobs)
        if self.with_image and chunk.image:  # image generation models
            self.image = chunk.image

    def output(self, request: Mapping[str, Any]) -> Any:
        message = _assistant("".join(self.text), "".join(self.thinking), None, 0)
        return _with_image(_choices(message, getattr(self.last, "done_reason", None)), self.image)

    def response_metadata(self) -> dict[str, Any]:
        return logprobs_metadata(self.logprobs)

    def answer(self) -> Answer | None:
        return Answer("".join(self.text), 0, bool(self.thinking), bool(self.image))


class _GenerateStreamWithoutThinking(_GenerateStream):
    """For SDKs before ollama 0.5.2, whose chunks have no `thinking`."""

    __slots__ = ()

    def add(self, chunk: Any) -> None:
        self.last = chunk
        if chunk.response:
            self.text.append(chunk.response)


@dataclass(frozen=True)
class Generate(Endpoint):
    """`/api/generate` in Braintrust's chat schema: the system prompt and the prompt (with its
    images and `suffix`) in as messages, the generated text (and thinking) out as choices."""

    def input(self, request: Mapping[str, Any]) -> Any:
        messages: list[dict[str, Any]] = []
        system = request.get("system")
        if isinstance(system, str) and system:
            messages.append({"role": "system", "content": system})
        prompt = request.get("prompt")
        content = _user_content(
            prompt if isinstance(prompt, str) else "", {"images": request.get("images")}
        )
        user: dict[str, Any] = {"role": "user", "content": content}
        suffix = request.get("suffix")
        if isinstance(suffix, str) and suffix:  # fill-in-the-middle: the text after the gap
            user["suffix"] = suffix
        messages.append(user)
        return messages

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        message = _assistant(response.response, getattr(response, "thinking", None), None, 0)
        return _with_image(_choices(message, response.done_reason), _field(response, "image"))

    def stream(self) -> Stream:
        return _GenerateStream() if _sdk_has_thinking() else _GenerateStreamWithoutThinking()

    def response_metadata(self, response: Any) -> dict[str, Any]:
        return logprobs_metadata(_field(response, "logprobs"))

    def answer(self, response: Any) -> Answer | None:
        thinking = getattr(response, "thinking", None)  # ollama < 0.5.2 has no thinking
        image = bool(_field(response, "image"))
        return Answer(response.response or "", 0, bool(thinking), image)


def _with_image(choices: list[dict[str, Any]], image: str | None) -> list[dict[str, Any]]:
    """With a generated image (ollama >= 0.6.2 image models), the choice holds it as `image`
    beside its message: uploaded as an attachment, never logged as base64 text (Braintrust's
    chat schema has no assistant image, so it cannot be in the message). An image that is not
    base64 is left out (`LeftOut`): the output is then the choices without it."""
    if image:
        try:
            choices[0]["image"] = _attachment(image, 0, "generated")
        except ValueError:  # binascii.Error
            why = f"not valid base64 ({len(image)} characters)"
            raise LeftOut(choices, "output.image", why) from None
    return choices


# Log probabilities kept on a span (metadata `token_logprobs`; `logprobs` is the request's switch):
# the first LOGPROBS_LIMIT tokens, each with its `top_logprobs` alternatives;
# `token_logprobs_omitted` counts the tokens left out.
LOGPROBS_LIMIT = 1000


def logprobs_metadata(logprobs: Any) -> dict[str, Any]:
    """`{"token_logprobs": [...]}` for a response that has them (asked with `logprobs=True`)."""
    if not logprobs:
        return {}
    kept = [_dump(entry) for entry in logprobs[:LOGPROBS_LIMIT]]
    metadata: dict[str, Any] = {"token_logprobs": kept}
    if len(logprobs) > LOGPROBS_LIMIT:
        metadata["token_logprobs_omitted"] = len(logprobs) - LOGPROBS_LIMIT
    return metadata


# --- embeddings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embed(Endpoint):
    """`/api/embed`: the text(s) in; the vectors' length (`embedding_length`) and how many there
    are out, never the vectors."""

    def input(self, request: Mapping[str, Any]) -> Any:
        return request.get("input")

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        vectors = response.embeddings or []
        if not vectors:
            return {"embeddings": 0}
        return {"embedding_length": len(vectors[0]), "embeddings": len(vectors)}


@dataclass(frozen=True)
class Embeddings(Endpoint):
    """`/api/embeddings` (legacy): the prompt in; the vector's length out."""

    def input(self, request: Mapping[str, Any]) -> Any:
        return request.get("prompt")

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        return {"embedding_length": len(response.embedding or [])}


# --- web search and fetch (ollama >= 0.6.0: https://ollama.com/api/...) ------------------------

# Bounds on what a web span keeps: each text (a result's or the page's `content`) is cut to
# WEB_TEXT_LIMIT characters, ending in a note of how many were cut; a page keeps its first
# WEB_LINKS_LIMIT links and `links_omitted` counts the rest.
WEB_TEXT_LIMIT = 4000
WEB_LINKS_LIMIT = 50


@dataclass(frozen=True)
class Web(Endpoint):
    """`web_search` / `web_fetch`: a `tool` span on Ollama's hosted API, the query or URL in and
    the results out, bounded in size. Its host is ollama.com; the `Authorization` header that
    carries OLLAMA_API_KEY is never read."""

    type: str = "tool"
    has_first_token: bool = False

    def input(self, request: Mapping[str, Any]) -> Any:
        return {key: request.get(key) for key in self.content_keys}

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        if _has_field(response, "results"):  # web_search
            return {"results": [_web_page(result) for result in response.results or []]}
        return _web_page(response)

    def metrics(self, last: Any) -> dict[str, float]:
        return {}  # no tokens: a search is not a model call

    def metadata(self, request: Mapping[str, Any], last: Any, host: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {"provider": "ollama"}
        for key, value in request.items():
            if key not in self.content_keys and value is not None:
                metadata[key] = value
        metadata["host"] = _origin(self.path)
        return metadata


def _web_page(page: Any) -> dict[str, Any]:
    """A search result or fetched page: title, url, content (cut), links (cut)."""
    fields: dict[str, Any] = {}
    for key in ("title", "url"):
        value = _field(page, key)
        if value is not None:
            fields[key] = value
    content = _field(page, "content")
    if content is not None:
        fields["content"] = _cut(content, WEB_TEXT_LIMIT)
    links = _field(page, "links")
    if links is not None:
        fields["links"] = list(links[:WEB_LINKS_LIMIT])
        if len(links) > WEB_LINKS_LIMIT:
            fields["links_omitted"] = len(links) - WEB_LINKS_LIMIT
    return fields


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters not logged]"


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


# --- systemone (ollama >= 0.6.3: /v1/systemone) -------------------------------------------------


@dataclass(frozen=True)
class SystemOne(Endpoint):
    """`systemone`: a state and scored questions in, the answers out; its `usage` counts the
    tokens (`input_tokens` as `prompt_tokens`, `output_tokens` as `completion_tokens`)."""

    def input(self, request: Mapping[str, Any]) -> Any:
        return {key: request.get(key) for key in self.content_keys}

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        return {name: _dump(answer) for name, answer in (response.answers or {}).items()}

    def metrics(self, last: Any) -> dict[str, float]:
        usage = _field(last, "usage")
        if usage is None:
            return {}
        prompt, completion = usage.input_tokens, usage.output_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "tokens": prompt + completion,
        }


def _by_path(*endpoints: Endpoint) -> Mapping[str, Endpoint]:
    return {endpoint.path: endpoint for endpoint in endpoints}


# Every traced endpoint, by path.
ENDPOINTS: Mapping[str, Endpoint] = _by_path(
    Chat("/api/chat", "ollama.chat", content_keys=("messages",), chat_schema=True, inspected=True),
    Generate(
        "/api/generate",
        "ollama.generate",
        content_keys=("prompt", "system", "images", "suffix"),
        chat_schema=True,
        inspected=True,
    ),
    Embed("/api/embed", "ollama.embed", content_keys=("input",), has_first_token=False),
    Embeddings(
        "/api/embeddings", "ollama.embeddings", content_keys=("prompt",), has_first_token=False
    ),
    SystemOne("/v1/systemone", "ollama.systemone", content_keys=("state", "questions")),
    Web("https://ollama.com/api/web_search", "ollama.web_search", content_keys=("query",)),
    Web("https://ollama.com/api/web_fetch", "ollama.web_fetch", content_keys=("url",)),
)


# --- shared helpers -----------------------------------------------------------------------------


@functools.cache
def _sdk_has_thinking() -> bool:
    """Whether the installed SDK parses `thinking` (ollama >= 0.5.2): picked once, so a stream's
    per-chunk `add` reads attributes directly instead of `getattr` with a default."""
    import ollama

    return "thinking" in ollama.Message.model_fields and "thinking" in (
        ollama.GenerateResponse.model_fields
    )


def metrics_from_response(response: Any) -> dict[str, float]:
    """Token counts and server timings (seconds) from a response or a stream's final chunk."""
    metrics: dict[str, float] = {}
    prompt = getattr(response, "prompt_eval_count", None)
    completion = getattr(response, "eval_count", None)
    if prompt is not None:
        metrics["prompt_tokens"] = prompt
    if completion is not None:
        metrics["completion_tokens"] = completion
    if prompt is not None or completion is not None:
        metrics["tokens"] = (prompt or 0) + (completion or 0)
    for name in _TIMINGS:
        value = getattr(response, name, None)
        if value is not None:
            metrics[name] = value / 1e9
    prompt_seconds = metrics.get("prompt_eval_duration")
    if prompt and prompt_seconds:
        metrics["prompt_tokens_per_second"] = prompt / prompt_seconds
    completion_seconds = metrics.get("eval_duration")
    if completion and completion_seconds:
        metrics["completion_tokens_per_second"] = completion / completion_seconds
    return metrics


def host_without_credentials(base_url: Any) -> str:
    """`scheme://host:port` of the client's server: never user, password, path or query."""
    host = base_url.host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{base_url.port}" if base_url.port else ""
    return f"{base_url.scheme}://{host}{port}"


def _attachments(images: Any) -> list[Any]:
    return [_attachment(image, i) for i, image in enumerate(images)]


def _has_field(response: Any, name: str) -> bool:
    """Whether this SDK's response type has the field `name`. Asked once per response or stream:
    reading an attribute a pydantic model lacks costs microseconds (it raises and formats an
    AttributeError), far more than the rest of a chunk's accounting."""
    fields = _fields_of(type(response))  # type: ignore[arg-type]  # types are hashable
    return name in fields if fields else hasattr(response, name)


@functools.lru_cache(maxsize=64)
def _fields_of(response_type: type) -> frozenset[str]:
    """A pydantic response type's field names (empty for anything else)."""
    fields = getattr(response_type, "model_fields", None)
    return frozenset(fields) if isinstance(fields, Mapping) else frozenset()


def _field(response: Any, name: str) -> Any:
    """`response.<name>`, or None on an SDK whose response type has no such field."""
    return getattr(response, name) if _has_field(response, name) else None


def _dump(value: Any) -> Any:
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def _attachment(image: Any, index: int, name: str = "image") -> Any:
    """A base64 image as sent to Ollama, as a Braintrust Attachment (uploaded, not inlined)."""
    if not isinstance(image, str):
        return image
    data = base64.b64decode(image)
    content_type, extension = "application/octet-stream", "bin"
    for magic, mime, ext in _IMAGE_TYPES:
        if data.startswith(magic):
            content_type, extension = mime, ext
            break
    return Attachment(data=data, filename=f"{name}-{index}.{extension}", content_type=content_type)
