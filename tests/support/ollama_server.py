"""An in-process server speaking Ollama's wire protocol, for what a recording cannot hold.

`FakeOllama` listens on 127.0.0.1 (a free port) in a background thread and answers like Ollama:
JSON bodies, NDJSON streams whose last chunk is `{"done": true, ...counters}`, `{"error": ...}`
bodies with a status code, and `{"error": ...}` lines mid-stream.

Replies are scripted per path with `server.reply(path, *replies)` (consumed in order); with no
script left, a path gets its canned reply. A scripted `Chat` / `Generate` reply renders as one JSON
body or as a stream, whichever the request asked for, so the same script serves `invoke` and
`stream` callers alike. Every completion served is recorded in `server.served` (its counters), so a
test can compare the tokens in a trace with what the server sent.

    server.reply("/api/chat", Chat("Paris.", prompt_eval_count=12, eval_count=3))
    server.reply("/api/chat", Chat(tool_calls=[{"function": {"name": "add", "arguments": {"a": 1}}}]))
    server.reply("/api/chat", Fault(chunks=2, then="cut"))        # connection cut mid-stream
    server.reply("/api/chat", Fault(chunks=1, then="error", message="model crashed"))
    server.reply("/api/generate", Error(404, 'model "nope" not found, try pulling it first'))
    gate = threading.Semaphore(0); server.reply("/api/chat", Chat("a b c", gate=gate))  # slow stream
    server.reply("/v1/systemone", {...})                          # any JSON body, as given
    server.reply("/api/generate", Lines([{...}, {...}]))          # these NDJSON lines, streamed

Model information, as a real server gives it: `/api/show` answers a canned llama description;
`/api/ps` lists the models a completion has loaded (`server.load(model, ...)` sets one up with
its window, size and VRAM share). Faults for it: `Hang(release)` (no answer until `release` is
set, then a cut connection), `Trickle(body, every_s)` (the body one byte at a time), `Raw(bytes)`
(a body that is not JSON), and any odd JSON as a scripted reply.

    server.reply("/api/show", Hang(release))                      # a server that never answers
    server.reply("/api/chat", Chat("...", prompt_eval_count=2050, prompt_eval_cached_count=4))
"""

from __future__ import annotations

import json
import sys
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Chat",
    "Embed",
    "Error",
    "FakeOllama",
    "Fault",
    "Generate",
    "Hang",
    "Lines",
    "Raw",
    "Served",
    "Trickle",
]

MODEL = "llama3.2:1b"
CREATED_AT = "2026-08-12T10:11:12.123456789Z"
GATE_TIMEOUT_S = 30.0


@dataclass
class Chat:
    """An assistant message, sent as JSON or streamed word by word."""

    content: str = "Hello! How can I help you today?"
    thinking: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    prompt_eval_count: int | None = 26
    eval_count: int = 10
    done_reason: str = "stop"
    gate: Any = None  # a Semaphore/Event-like object with .acquire(timeout=) gating chunks 2..n
    prompt_eval_cached_count: int | None = None  # newer servers: the prompt tokens from cache
    load_duration: int | None = None  # nanoseconds; default 12 ms (warm)
    delay_s: float = 0.0  # how long the model "thinks" before the first byte of the answer


@dataclass
class Generate:
    """A completion for /api/generate."""

    response: str = "The sky is blue because of Rayleigh scattering."
    thinking: str | None = None
    prompt_eval_count: int | None = 31
    eval_count: int = 12
    done_reason: str = "stop"
    gate: Any = None
    prompt_eval_cached_count: int | None = None
    load_duration: int | None = None
    delay_s: float = 0.0


@dataclass
class Embed:
    """Vectors for /api/embed (one per input) or /api/embeddings."""

    dimensions: int = 4
    prompt_eval_count: int = 6


@dataclass
class Error:
    """An `{"error": message}` body with a status code."""

    status: int
    message: str


@dataclass
class Fault:
    """A stream that sends `chunks` content chunks, then an error line or a cut connection."""

    chunks: int = 2
    then: str = "cut"  # "cut" | "error"
    message: str = "an error was encountered while running the model"


@dataclass
class Lines:
    """A stream of exactly these JSON objects, one per NDJSON line (hand-made exchanges)."""

    chunks: list[dict[str, Any]]


@dataclass
class Hang:
    """No answer until `release` is set (or GATE_TIMEOUT_S passes); then the connection is cut.
    `reached` is set when the request arrives."""

    release: threading.Event
    reached: threading.Event = field(default_factory=threading.Event)


@dataclass
class Trickle:
    """A JSON body sent one byte every `every_s` seconds (a server too slow to read)."""

    body: Any
    every_s: float = 0.05


@dataclass
class Raw:
    """These bytes as the body, whatever they are (not JSON, say)."""

    data: bytes
    status: int = 200


@dataclass
class Served:
    path: str
    model: str
    prompt_eval_count: int | None
    eval_count: int | None


@dataclass
class _Request:
    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _durations(eval_count: int) -> dict[str, int]:
    return {
        "total_duration": 1_234_567_000,
        "load_duration": 12_345_000,
        "prompt_eval_duration": 98_765_000,
        "eval_duration": 20_000_000 * max(eval_count, 1),
    }


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p if i == len(parts) - 1 else p + " " for i, p in enumerate(parts)] if text else []


class FakeOllama:
    """An Ollama-protocol HTTP server on 127.0.0.1, for tests. Use as a context manager."""

    def __init__(self) -> None:
        self._scripts: dict[str, deque[Any]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[_Request] = []
        self.served: list[Served] = []
        self.loaded: dict[str, dict[str, Any]] = {}  # what /api/ps lists, by model
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        # A short poll interval: shutdown() waits for the serving loop to notice it.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeOllama:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reply(self, path: str, *replies: Any) -> None:
        """Queue replies for `path`, served in order before the canned reply."""
        with self._lock:
            self._scripts[path].extend(replies)

    def load(
        self,
        model: str,
        *,
        context_length: int | None = 4096,
        size: int = 2_019_393_189,
        size_vram: int | None = None,
        digest: str = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
    ) -> None:
        """List `model` in /api/ps as loaded, as a real server would after serving it."""
        entry: dict[str, Any] = {
            "name": model,
            "model": model,
            "size": size,
            "digest": digest,
            "details": dict(_SHOW["details"]),
            "expires_at": "2026-08-12T10:16:12.123456789Z",
            "size_vram": size if size_vram is None else size_vram,
        }
        if context_length is not None:  # servers before v0.9.7 do not say
            entry["context_length"] = context_length
        with self._lock:
            self.loaded[model] = entry

    def tokens_served(self) -> tuple[int, int]:
        """(sum of prompt_eval_count, sum of eval_count) over every completion served."""
        with self._lock:
            return (
                sum(s.prompt_eval_count or 0 for s in self.served),
                sum(s.eval_count or 0 for s in self.served),
            )

    def _next_reply(self, path: str) -> Any:
        with self._lock:
            script = self._scripts.get(path)
            if script:
                return script.popleft()
        return _CANNED.get(path)

    def _record(self, request: _Request, served: Served | None) -> None:
        with self._lock:
            self.requests.append(request)
            if served is not None:
                self.served.append(served)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # hundreds of concurrent clients; read by listen() in __init__

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away, or a connection a Fault cut on purpose
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # stream chunks go out as they are written
    fake: FakeOllama

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def do_GET(self) -> None:
        self._dispatch({})

    def do_DELETE(self) -> None:
        self._dispatch(self._body())

    def do_POST(self) -> None:
        self._dispatch(self._body())

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else {}

    def _dispatch(self, body: dict[str, Any]) -> None:
        path = self.path.split("?", 1)[0]
        request = _Request(path, body, dict(self.headers.items()))
        reply = self.fake._next_reply(path)
        model = body.get("model") or body.get("name") or MODEL
        streaming = body.get("stream", True) if path in ("/api/chat", "/api/generate") else False
        # Record before answering: a client may read `served` as soon as it has its reply.
        if isinstance(reply, (Chat, Generate)):
            self.fake._record(
                request, Served(path, model, reply.prompt_eval_count, reply.eval_count)
            )
        elif isinstance(reply, Embed):
            counted = reply.prompt_eval_count if path == "/api/embed" else None
            self.fake._record(request, Served(path, model, counted, None))
        else:
            self.fake._record(request, None)

        if isinstance(reply, (Chat, Generate)):
            with self.fake._lock:
                loaded = model in self.fake.loaded
            if not loaded:
                self.fake.load(model)
        if reply is _LOADED:
            with self.fake._lock:
                reply = {"models": list(self.fake.loaded.values())}

        if reply is None:
            self._json(404, {"error": "404 page not found"})
        elif isinstance(reply, Hang):
            reply.reached.set()
            reply.release.wait(GATE_TIMEOUT_S)
            self._cut()
        elif isinstance(reply, Trickle):
            self._trickle(reply)
        elif isinstance(reply, Raw):
            self._raw(reply)
        elif isinstance(reply, Error):
            self._json(reply.status, {"error": reply.message})
        elif isinstance(reply, Fault):
            self._fault(path, model, reply)
        elif isinstance(reply, Lines):
            self._start_stream()
            if all(self._send_chunk(chunk) for chunk in reply.chunks):
                self._end_stream()
        elif isinstance(reply, (Chat, Generate)):
            self._completion(path, model, reply, streaming)
        elif isinstance(reply, Embed):
            self._embed(path, body, reply)
        elif callable(reply):
            self._json(200, reply(body))
        else:
            self._json(200, reply)

    # --- bodies ------------------------------------------------------------------------------

    def _completion(self, path: str, model: str, reply: Chat | Generate, streaming: bool) -> None:
        key = "message" if path == "/api/chat" else "response"
        text = reply.content if isinstance(reply, Chat) else reply.response
        final: dict[str, Any] = {
            "model": model,
            "created_at": CREATED_AT,
            "done": True,
            "done_reason": reply.done_reason,
            **_durations(reply.eval_count),
            "eval_count": reply.eval_count,
        }
        if reply.load_duration is not None:
            final["load_duration"] = reply.load_duration
        if reply.prompt_eval_count is not None:
            final["prompt_eval_count"] = reply.prompt_eval_count
        if reply.prompt_eval_cached_count is not None:
            final["prompt_eval_cached_count"] = reply.prompt_eval_cached_count
        if reply.delay_s:
            threading.Event().wait(reply.delay_s)  # the model at work (a measurement's latency)
        if not streaming:
            payload: dict[str, Any] = {"model": model, "created_at": CREATED_AT}
            payload[key] = self._piece(
                key, text, reply.thinking, getattr(reply, "tool_calls", None)
            )
            if key == "response" and reply.thinking:  # generate's thinking sits beside it
                payload["thinking"] = reply.thinking
            self._json(200, {**payload, **final})
            return
        chunks: list[dict[str, Any]] = []
        for piece in _words(reply.thinking or ""):
            chunks.append(self._piece_chunk(key, model, "", thinking=piece))
        for piece in _words(text):
            chunks.append(self._piece_chunk(key, model, piece))
        if isinstance(reply, Chat) and reply.tool_calls:
            chunk = self._piece_chunk(key, model, "")
            chunk["message"]["tool_calls"] = reply.tool_calls
            chunks.append(chunk)
        final[key] = {"role": "assistant", "content": ""} if key == "message" else ""
        self._start_stream()
        for i, chunk in enumerate([*chunks, final]):
            if i and reply.gate is not None and not reply.gate.acquire(timeout=GATE_TIMEOUT_S):
                self._cut()
                return
            if not self._send_chunk(chunk):
                return
        self._end_stream()

    @staticmethod
    def _piece(key: str, text: str, thinking: str | None, tool_calls: Any) -> Any:
        if key == "response":
            return text
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:
            message["thinking"] = thinking
        if tool_calls:
            message["tool_calls"] = tool_calls
        return message

    @staticmethod
    def _piece_chunk(
        key: str, model: str, text: str, thinking: str | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {"model": model, "created_at": CREATED_AT, "done": False}
        if key == "message":
            chunk["message"] = {"role": "assistant", "content": text}
            if thinking:
                chunk["message"]["thinking"] = thinking
        else:
            chunk["response"] = text
            if thinking:
                chunk["thinking"] = thinking
        return chunk

    def _fault(self, path: str, model: str, fault: Fault) -> None:
        key = "message" if path == "/api/chat" else "response"
        self._start_stream()
        for i in range(fault.chunks):
            if not self._send_chunk(self._piece_chunk(key, model, f"part{i} ")):
                return
        if fault.then == "error":
            self._send_chunk({"error": fault.message})
            self._end_stream()
        else:
            self._cut()

    def _embed(self, path: str, body: dict[str, Any], reply: Embed) -> None:
        def vector(i: int) -> list[float]:
            return [round(0.1 * (i + 1) + 0.01 * d, 4) for d in range(reply.dimensions)]

        if path == "/api/embeddings":
            self._json(200, {"embedding": vector(0)})
            return
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        self._json(
            200,
            {
                "model": body.get("model") or MODEL,
                "embeddings": [vector(i) for i in range(len(texts))],
                "total_duration": 14_143_917,
                "load_duration": 1_019_500,
                "prompt_eval_count": reply.prompt_eval_count,
            },
        )

    def _trickle(self, reply: Trickle) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        pause = threading.Event()
        for i in range(len(data)):
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:
                self.close_connection = True
                return
            pause.wait(reply.every_s)

    def _raw(self, reply: Raw) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(reply.data)))
        self.end_headers()
        self.wfile.write(reply.data)

    # --- transport ---------------------------------------------------------------------------

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_chunk(self, payload: dict[str, Any]) -> bool:
        line = json.dumps(payload).encode() + b"\n"
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            return True
        except OSError:  # the client went away
            self.close_connection = True
            return False

    def _end_stream(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _cut(self) -> None:
        """Drop the connection mid-body, as a crashed server or a broken network would."""
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)


_SHOW = {
    "license": "",
    "modelfile": "FROM llama3.2:1b",
    "parameters": "stop <|eot_id|>",
    "template": "{{ .Prompt }}",
    "details": {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "1.2B",
        "quantization_level": "Q8_0",
    },
    "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
    "capabilities": ["completion", "tools"],
    "modified_at": "2026-08-01T10:00:00Z",
}

_LOADED = object()  # /api/ps: the models FakeOllama has loaded

_CANNED: dict[str, Any] = {
    "/api/chat": Chat(),
    "/api/generate": Generate(),
    "/api/embed": Embed(),
    "/api/embeddings": Embed(),
    "/api/show": _SHOW,
    "/api/version": {"version": "0.12.6"},
    "/api/tags": {"models": []},
    "/api/ps": _LOADED,
}
