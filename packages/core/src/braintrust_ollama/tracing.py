"""What an Ollama span holds: requests and responses turned into Braintrust span fields.

One module owns the translation, and the adapters reuse it. The contract:

- `input`: what was sent. Chat messages as dicts (role, content, tool_calls, tool_name, ...),
  images as Braintrust `Attachment`s, never base64 text; a generate prompt (a dict when
  `system`, `suffix` or images are given); the text(s) to embed.
- `output`: the assistant message (`role`, `content`, `thinking` and `tool_calls` when present),
  the generated text, or the number and dimension of embedding vectors (never the vectors).
- `metadata`: `provider`, `model`, the request's settings (`options`, `format`, `tools`, `think`,
  `keep_alive`, `stream`, ...), `done_reason` and the server host without credentials.
- `metrics`: `prompt_tokens` (= `prompt_eval_count`), `completion_tokens` (= `eval_count`),
  `tokens` (their sum) and Ollama's server timings in seconds. A counter the server omits is
  left out.
- Never logged: request headers, `Authorization`, `OLLAMA_API_KEY`: nothing here reads them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from braintrust import Attachment

__all__ = [
    "ENDPOINTS",
    "assistant_output",
    "host_without_credentials",
    "metrics_from_response",
    "output_for_chat",
    "output_for_embed",
    "output_for_embeddings",
    "output_for_generate",
    "span_input",
    "span_metadata",
]

# The endpoints that are traced, and the span name each gets. Management calls (show, list,
# ps, pull, push, create, copy, delete) are not here, so they are never traced.
ENDPOINTS: Mapping[str, str] = {
    "/api/chat": "ollama.chat",
    "/api/generate": "ollama.generate",
    "/api/embed": "ollama.embed",
    "/api/embeddings": "ollama.embeddings",
}

# Request keys that are the span's input, per endpoint; every other key is metadata.
_INPUT_KEYS: Mapping[str, tuple[str, ...]] = {
    "/api/chat": ("messages",),
    "/api/generate": ("prompt", "system", "suffix", "images"),
    "/api/embed": ("input",),
    "/api/embeddings": ("prompt",),
}
_SKIPPED_KEYS = frozenset({"model", "context"})  # model is its own field; context is token ids

_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
_IMAGE_TYPES = (
    (b"\x89PNG", "image/png", "png"),
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"GIF8", "image/gif", "gif"),
    (b"RIFF", "image/webp", "webp"),
)


def span_input(path: str, request: Mapping[str, Any]) -> Any:
    """The span input for the request body the SDK sent to `path`."""
    if path == "/api/chat":
        messages = request.get("messages") or []
        return [_message_with_attachments(m) if m.get("images") else m for m in messages]
    if path == "/api/generate":
        extras = {k: request[k] for k in ("system", "suffix") if request.get(k)}
        if request.get("images"):
            extras["images"] = _attachments(request["images"])
        prompt = request.get("prompt")
        return {"prompt": prompt, **extras} if extras else prompt
    if path == "/api/embed":
        return request.get("input")
    return request.get("prompt")


def span_metadata(path: str, request: Mapping[str, Any], host: str | None) -> dict[str, Any]:
    """Metadata for a request: provider, model, the settings sent, and the server host."""
    metadata: dict[str, Any] = {"provider": "ollama", "model": request.get("model")}
    skipped = _INPUT_KEYS[path]
    for key, value in request.items():
        if key in skipped or key in _SKIPPED_KEYS or value is None or value == []:
            continue
        metadata[key] = value
    if host:
        metadata["host"] = host
    return metadata


def output_for_chat(message: Any) -> dict[str, Any]:
    """The assistant message of a chat response."""
    thinking = getattr(message, "thinking", None)  # ollama < 0.5.2 has no thinking
    return assistant_output(message.content, thinking, message.tool_calls)


def assistant_output(content: str | None, thinking: str | None, tool_calls: Any) -> dict[str, Any]:
    """`role`, `content`, and `thinking` and `tool_calls` when there are any."""
    output: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        output["thinking"] = thinking
    if tool_calls:
        output["tool_calls"] = [_dump(call) for call in tool_calls]
    return output


def output_for_generate(response: str | None, thinking: str | None) -> Any:
    """The generated text, or a dict with the text and its thinking when there is any."""
    return {"response": response, "thinking": thinking} if thinking else response


def output_for_embed(embeddings: Any) -> dict[str, int]:
    """How many vectors came back and their dimension: never the vectors themselves."""
    vectors = list(embeddings or [])
    return {"embeddings": len(vectors), "dimensions": len(vectors[0]) if vectors else 0}


def output_for_embeddings(embedding: Any) -> dict[str, int]:
    return {"dimensions": len(embedding or [])}


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


def _attachment(image: Any, index: int) -> Any:
    """A base64 image as sent to Ollama, as a Braintrust Attachment (uploaded, not inlined)."""
    if not isinstance(image, str):
        return image
    data = base64.b64decode(image)
    content_type, extension = "application/octet-stream", "bin"
    for magic, mime, ext in _IMAGE_TYPES:
        if data.startswith(magic):
            content_type, extension = mime, ext
            break
    return Attachment(data=data, filename=f"image-{index}.{extension}", content_type=content_type)
