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
that is not an `llm` span (a `tool`, say).

The contract of every endpoint:

- `input`: what was sent; images as Braintrust `Attachment`s, never base64 text.
- `output`: what came back; never embedding vectors.
- `metadata`: `provider`, `model`, the request's settings (`options`, `format`, `tools`, `think`,
  `keep_alive`, `stream`, ...), `done_reason` and the server host without credentials.
- `metrics`: `prompt_tokens` (= `prompt_eval_count`), `completion_tokens` (= `eval_count`),
  `tokens` (their sum) and Ollama's server timings in seconds. A counter the server omits is
  left out.
- A `Stream` keeps joined fragments and the last chunk (which holds the counters), never every
  chunk; its `add` runs once per chunk and only appends.
- Never logged: request headers, `Authorization`, `OLLAMA_API_KEY`: nothing here reads them.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from braintrust import Attachment

__all__ = [
    "ENDPOINTS",
    "Chat",
    "Embed",
    "Embeddings",
    "Endpoint",
    "Generate",
    "Stream",
    "SystemOne",
    "Web",
    "host_without_credentials",
    "metrics_from_response",
]

_SKIPPED_KEYS = frozenset({"model", "context"})  # model is its own field; context is token ids
_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
_IMAGE_TYPES = (
    (b"\x89PNG", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF8", "image/gif", "gif"),
    (b"RIFF", "image/webp", "webp"),
)


class Stream:
    """What a stream has shown so far: `add(chunk)` once per chunk, `output(request)` once.

    `first_token` is when the first chunk arrived; `last` is the last chunk, whose counters are
    the span's metrics.
    """

    __slots__ = ("first_token", "last")

    def __init__(self) -> None:
        self.first_token: float | None = None
        self.last: Any = None

    def add(self, chunk: Any) -> None:
        if self.last is None:
            self.first_token = time.time()
        self.last = chunk

    def output(self, request: Mapping[str, Any]) -> Any:
        return None

    def response_metadata(self) -> dict[str, Any]:
        """What the chunks said beyond the output (log probabilities), for the metadata."""
        return {}


@dataclass(frozen=True)
class Endpoint:
    """One traced Ollama endpoint and the span each call to it becomes."""

    path: str
    name: str
    content_keys: tuple[str, ...]
    type: str = "llm"
    has_first_token: bool = True

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
        """Provider, model, the settings sent, `done_reason` and the server host."""
        metadata: dict[str, Any] = {"provider": "ollama", "model": request.get("model")}
        skipped = self.content_keys
        for key, value in request.items():
            if key in skipped or key in _SKIPPED_KEYS or value is None or value == []:
                continue
            metadata[key] = value
        if host:
            metadata["host"] = host
        done_reason = getattr(last, "done_reason", None)
        if done_reason:
            metadata["done_reason"] = done_reason
        return metadata

    def metrics(self, last: Any) -> dict[str, float]:
        """Token counts and server timings from the response or a stream's final chunk."""
        return metrics_from_response(last) if last is not None else {}

    def response_metadata(self, response: Any) -> dict[str, Any]:
        """What a whole response says beyond the output (log probabilities), for the metadata."""
        return {}


# --- chat ---------------------------------------------------------------------------------------


class _ChatStream(Stream):
    __slots__ = ("content", "logprobs", "thinking", "tool_calls")

    def __init__(self) -> None:
        super().__init__()
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: list[Any] = []
        self.logprobs: list[Any] = []

    def add(self, chunk: Any) -> None:
        if self.last is None:
            self.first_token = time.time()
        self.last = chunk
        message = chunk.message
        if message.content:
            self.content.append(message.content)
        thinking = getattr(message, "thinking", None)  # ollama < 0.5.2 has no thinking
        if thinking:
            self.thinking.append(thinking)
        if message.tool_calls:
            self.tool_calls.extend(message.tool_calls)
        logprobs = getattr(chunk, "logprobs", None)  # ollama >= 0.6.1, when requested
        if logprobs:
            self.logprobs.extend(logprobs)

    def output(self, request: Mapping[str, Any]) -> Any:
        return _assistant("".join(self.content), "".join(self.thinking), self.tool_calls)

    def response_metadata(self) -> dict[str, Any]:
        return logprobs_metadata(self.logprobs)


@dataclass(frozen=True)
class Chat(Endpoint):
    """`/api/chat`: the messages in, the assistant message out."""

    def input(self, request: Mapping[str, Any]) -> Any:
        messages = request.get("messages") or []
        return [_message_with_attachments(m) if m.get("images") else m for m in messages]

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        message = response.message
        thinking = getattr(message, "thinking", None)  # ollama < 0.5.2 has no thinking
        return _assistant(message.content, thinking, message.tool_calls)

    def stream(self) -> Stream:
        return _ChatStream()

    def response_metadata(self, response: Any) -> dict[str, Any]:
        return logprobs_metadata(getattr(response, "logprobs", None))


def _assistant(content: str | None, thinking: str | None, tool_calls: Any) -> dict[str, Any]:
    """`role`, `content`, and `thinking` and `tool_calls` when there are any."""
    output: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        output["thinking"] = thinking
    if tool_calls:
        output["tool_calls"] = [_dump(call) for call in tool_calls]
    return output


# --- generate -----------------------------------------------------------------------------------


class _GenerateStream(Stream):
    __slots__ = ("image", "logprobs", "text", "thinking")

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.logprobs: list[Any] = []
        self.image: str | None = None

    def add(self, chunk: Any) -> None:
        if self.last is None:
            self.first_token = time.time()
        self.last = chunk
        if chunk.response:
            self.text.append(chunk.response)
        thinking = getattr(chunk, "thinking", None)  # ollama < 0.5.2 has no thinking
        if thinking:
            self.thinking.append(thinking)
        logprobs = getattr(chunk, "logprobs", None)  # ollama >= 0.6.1, when requested
        if logprobs:
            self.logprobs.extend(logprobs)
        image = getattr(chunk, "image", None)  # ollama >= 0.6.2, image generation models
        if image:
            self.image = image

    def output(self, request: Mapping[str, Any]) -> Any:
        output = _generated("".join(self.text), "".join(self.thinking))
        return _with_image(output, self.image)

    def response_metadata(self) -> dict[str, Any]:
        return logprobs_metadata(self.logprobs)


@dataclass(frozen=True)
class Generate(Endpoint):
    """`/api/generate`: the prompt in, the generated text out."""

    def input(self, request: Mapping[str, Any]) -> Any:
        extras = {k: request[k] for k in ("system", "suffix") if request.get(k)}
        if request.get("images"):
            extras["images"] = _attachments(request["images"])
        prompt = request.get("prompt")
        return {"prompt": prompt, **extras} if extras else prompt

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        output = _generated(response.response, getattr(response, "thinking", None))
        return _with_image(output, getattr(response, "image", None))

    def stream(self) -> Stream:
        return _GenerateStream()

    def response_metadata(self, response: Any) -> dict[str, Any]:
        return logprobs_metadata(getattr(response, "logprobs", None))


def _generated(response: str | None, thinking: str | None) -> Any:
    """The generated text, or a dict with the text and its thinking when there is any."""
    return {"response": response, "thinking": thinking} if thinking else response


def _with_image(output: Any, image: str | None) -> Any:
    """With a generated image (ollama >= 0.6.2), `{"response": ..., "image": Attachment}`:
    the image is uploaded as an attachment, never logged as base64 text."""
    if not image:
        return output
    text = output if isinstance(output, dict) else {"response": output or None}
    return {**{k: v for k, v in text.items() if v}, "image": _attachment(image, 0, "generated")}


# Log probabilities kept on a span (metadata `logprobs`): the first LOGPROBS_LIMIT tokens, each
# with its `top_logprobs` alternatives; `logprobs_omitted` counts the tokens left out.
LOGPROBS_LIMIT = 1000


def logprobs_metadata(logprobs: Any) -> dict[str, Any]:
    """`{"logprobs": [...]}` for a response that has them (requested with `logprobs=True`)."""
    if not logprobs:
        return {}
    kept = [_dump(entry) for entry in logprobs[:LOGPROBS_LIMIT]]
    metadata: dict[str, Any] = {"logprobs": kept}
    if len(logprobs) > LOGPROBS_LIMIT:
        metadata["logprobs_omitted"] = len(logprobs) - LOGPROBS_LIMIT
    return metadata


# --- embeddings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embed(Endpoint):
    """`/api/embed`: the text(s) in; how many vectors and their dimension out, never the vectors."""

    def input(self, request: Mapping[str, Any]) -> Any:
        return request.get("input")

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        vectors = list(response.embeddings or [])
        return {"embeddings": len(vectors), "dimensions": len(vectors[0]) if vectors else 0}


@dataclass(frozen=True)
class Embeddings(Endpoint):
    """`/api/embeddings` (legacy): the prompt in; the vector's dimension out."""

    def input(self, request: Mapping[str, Any]) -> Any:
        return request.get("prompt")

    def output(self, response: Any, request: Mapping[str, Any]) -> Any:
        return {"dimensions": len(response.embedding or [])}


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
        if hasattr(response, "results"):  # web_search
            return {"results": [_web_page(result) for result in response.results or []]}
        return _web_page(response)

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
        value = getattr(page, key, None)
        if value is not None:
            fields[key] = value
    content = getattr(page, "content", None)
    if content is not None:
        fields["content"] = _cut(content, WEB_TEXT_LIMIT)
    links = getattr(page, "links", None)
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
        usage = getattr(last, "usage", None)
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
    Chat("/api/chat", "ollama.chat", content_keys=("messages",)),
    Generate(
        "/api/generate", "ollama.generate", content_keys=("prompt", "system", "suffix", "images")
    ),
    Embed("/api/embed", "ollama.embed", content_keys=("input",)),
    Embeddings("/api/embeddings", "ollama.embeddings", content_keys=("prompt",)),
    SystemOne("/v1/systemone", "ollama.systemone", content_keys=("state", "questions")),
    Web("https://ollama.com/api/web_search", "ollama.web_search", content_keys=("query",)),
    Web("https://ollama.com/api/web_fetch", "ollama.web_fetch", content_keys=("url",)),
)


# --- shared helpers -----------------------------------------------------------------------------


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
    return metrics


def host_without_credentials(base_url: Any) -> str:
    """`scheme://host:port` of the client's server: never user, password, path or query."""
    host = base_url.host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{base_url.port}" if base_url.port else ""
    return f"{base_url.scheme}://{host}{port}"


def _dump(value: Any) -> Any:
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def _message_with_attachments(message: Mapping[str, Any]) -> dict[str, Any]:
    return {**message, "images": _attachments(message["images"])}


def _attachments(images: Any) -> list[Any]:
    return [_attachment(image, i) for i, image in enumerate(images)]


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
