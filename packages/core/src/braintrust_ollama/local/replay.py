"""Replaying recorded Ollama traffic through the real `ollama` SDK.

`replay_client()` is an `ollama.Client` whose httpx transport answers from the recordings in
`recordings/ollama_demo.json` instead of the network, so every layer above the socket (the SDK's
request building and response parsing, our tracing) runs for real. Exchanges are served in
order; a request that does not match the next recording (path and model) gets a 404 naming
what was expected, as Ollama answers an unknown model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
import ollama

__all__ = ["Recording", "load_recordings", "replay_client"]

DATA_FILE = "ollama_demo.json"


@dataclass(frozen=True)
class Recording:
    step: str
    path: str
    request: dict[str, Any]
    status: int
    content_type: str
    body: str
    hand_made: bool

    @property
    def model(self) -> str:
        return str(self.request.get("model", ""))


def load_recordings() -> list[Recording]:
    text = (
        resources.files("braintrust_ollama.local.recordings").joinpath(DATA_FILE).read_text("utf-8")
    )
    return [
        Recording(
            step=item["step"],
            path=item["request"]["path"],
            request=item["request"]["body"],
            status=item["response"]["status"],
            content_type=item["response"]["content_type"],
            body=item["response"]["body"],
            hand_made=bool(item.get("hand_made")),
        )
        for item in json.loads(text)["interactions"]
    ]


class _Replayer:
    def __init__(self, recordings: list[Recording]) -> None:
        self._pending = list(recordings)
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        with self._lock:
            expected = self._pending[0] if self._pending else None
            if (
                expected is None
                or expected.path != request.url.path
                or expected.model != body.get("model")
            ):
                wanted = f"{expected.path} {expected.model}" if expected else "nothing more"
                return httpx.Response(
                    404,
                    json={"error": f"no recording for {request.url.path}; replay expects {wanted}"},
                )
            self._pending.pop(0)
        headers = {"content-type": expected.content_type}
        if expected.content_type.startswith("application/x-ndjson"):
            return httpx.Response(expected.status, headers=headers, content=_lines(expected.body))
        return httpx.Response(expected.status, headers=headers, content=expected.body.encode())


def _lines(body: str) -> Iterator[bytes]:
    """A recorded stream, sent one NDJSON line at a time as Ollama sends it."""
    for line in body.splitlines(keepends=True):
        yield line.encode()


def replay_client(host: str, recordings: list[Recording] | None = None) -> ollama.Client:
    """An `ollama.Client` for `host` whose requests are answered from the recordings."""
    transport = httpx.MockTransport(_Replayer(recordings or load_recordings()))
    return ollama.Client(host=host, transport=transport)
