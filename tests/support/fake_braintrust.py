"""A stand-in for Braintrust's HTTP API on 127.0.0.1: the part the SDK uses to log, and its faults.

`FakeBraintrust(mode)` listens on a free loopback port in a background thread; point the SDK at it
with `BRAINTRUST_APP_URL` / `BRAINTRUST_API_URL` (`fake.url`). Modes:

- `"ok"`: answers like Braintrust: `POST /api/apikey/login` (one org whose `api_url` is this
  server), `POST /api/project/register` (or `/v1/project`), `GET /version`, `POST /logs3` (rows kept in `fake.rows`).
- `"500"`: every request gets `500 Internal Server Error`.
- `"401"`: every request gets `401 Unauthorized` (a rejected API key).
- `"hang"`: every request is read and never answered (until the server stops, at most
  `HANG_LIMIT_S`): an address that accepts and stays silent.
- `"logs-500"`: logs in and registers projects like `"ok"`, then answers `/logs3` with 500.

Every request's method and path is kept in `fake.requests`; `fake.first_request` is set once any
request arrived. Hand-made from the SDK's requests (braintrust 0.10 - 0.48), not recorded.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["PROJECT_ID", "FakeBraintrust"]

PROJECT_ID = "8f6b2a3c-1d4e-4f5a-9b6c-7d8e9f0a1b2c"
ORG_ID = "5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c"
HANG_LIMIT_S = 120.0
MODES = ("ok", "500", "401", "hang", "logs-500")


class FakeBraintrust:
    """Braintrust's logging API (or one of its faults) on 127.0.0.1. Use as a context manager."""

    def __init__(self, mode: str = "ok") -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.requests: list[tuple[str, str]] = []
        self.rows: list[dict[str, Any]] = []
        self.first_request = threading.Event()
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeBraintrust:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()  # releases hanging handlers
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def paths(self) -> list[str]:
        with self._lock:
            return [path for _, path in self.requests]

    def _record(self, method: str, path: str, body: bytes) -> None:
        with self._lock:
            self.requests.append((method, path))
            if path == "/logs3" and body and self.mode == "ok":
                self.rows.extend(json.loads(body).get("rows", []))
        self.first_request.set()

    def answer(self, method: str, path: str) -> tuple[int, Any]:
        """The status and JSON body for one request, by mode."""
        if self.mode == "500":
            return 500, {"error": "Internal Server Error"}
        if self.mode == "401":
            return 401, {"error": "Invalid API key"}
        if path == "/api/apikey/login":
            org = {"id": ORG_ID, "name": "test-org", "api_url": self.url, "proxy_url": self.url}
            return 200, {"org_info": [{**org, "git_metadata": None}]}
        if path == "/api/project/register":  # braintrust < 0.4x
            return 200, {"project": {"id": PROJECT_ID, "name": "", "org_id": ORG_ID}}
        if path == "/v1/project":  # newer braintrust: the OpenAPI client
            return 200, {"id": PROJECT_ID, "name": "", "org_id": ORG_ID}
        if path == "/version":
            return 200, {"logs3_payload_max_bytes": 6 * 1024 * 1024}
        if path == "/logs3":
            return (500, {"error": "logs3 is down"}) if self.mode == "logs-500" else (200, {})
        return 404, {"error": f"not served by FakeBraintrust: {method} {path}"}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBraintrust
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        self.fake._record(method, path, body)
        if self.fake.mode == "hang":
            self.fake.stopped.wait(HANG_LIMIT_S)
            self.close_connection = True
            return
        status, answer = self.fake.answer(method, path)
        if status == 200 and path in ("/api/project/register", "/v1/project"):
            sent = json.loads(body or b"{}")
            project = answer.get("project", answer)
            project["name"] = sent.get("project_name") or sent.get("name") or ""
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")
