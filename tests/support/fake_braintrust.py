"""A stand-in for Braintrust's HTTP API on 127.0.0.1: the part the SDK uses to log, and its faults.

`FakeBraintrust(mode)` listens on a free loopback port in a background thread; point the SDK at it
with `BRAINTRUST_APP_URL` / `BRAINTRUST_API_URL` (`fake.url`). It takes any API key. Modes:

- `"ok"`: answers like Braintrust:
  - `POST /api/apikey/login`: one organisation whose API and proxy URLs are this server.
  - `POST /api/project/register` (older SDKs), `POST /v1/project` (newer): a project id per
    name, kept in `fake.projects`; the first project registered gets `PROJECT_ID`.
  - `GET /version`, `GET /ping`: what the SDK asks before logging.
  - `POST /logs3` (`{"rows": [...], "api_version": 2}`): rows kept as received in `fake.rows`,
    and per project merged by `id` the way Braintrust merges them (a row replaces the stored
    one unless marked `_is_merge`): `fake.project_rows(name)`.
  - `POST /attachment` → a signed URL on this server; `PUT` it stores the bytes in
    `fake.uploads`; `POST /attachment/status` records the upload's status.
  - anything else answers 404, and is recorded in `fake.unknown`.
- `"500"`: every request gets `500 Internal Server Error`.
- `"401"`: every request gets `401 Unauthorized` (a rejected API key).
- `"hang"`: every request is read and never answered (until the server stops, at most
  `HANG_LIMIT_S`): an address that accepts and stays silent.
- `"logs-500"`: logs in and registers projects like `"ok"`, then answers `/logs3` with 500 (and
  keeps none of its rows).
- `"logs-hang"`: logs in and registers projects like `"ok"`, then reads `/logs3` requests and
  never answers them (uploads that never answer).
- `"slow-login"`: like `"ok"`, but answers the login `LOGIN_DELAY_S` after it arrived (when:
  `fake.login_answered_at`, a `time.time()`): a program can end while its login is under way.

Every request's method and path is kept in `fake.requests`; `fake.first_request` is set once any
request arrived. The mode may be changed while the server runs (Braintrust gone mid-run), and
`logs_delay_s` delays each `/logs3` answer (a slow Braintrust). Hand-made from the SDK's
requests (braintrust 0.10 - 0.48), not recorded.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["API_KEY", "LOGIN_DELAY_S", "PROJECT_ID", "FakeBraintrust"]

API_KEY = "sk-local-test"  # any key is taken; this one reads as a test's
PROJECT_ID = "8f6b2a3c-1d4e-4f5a-9b6c-7d8e9f0a1b2c"
ORG_ID = "5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c"
HANG_LIMIT_S = 120.0
LOGIN_DELAY_S = 0.5
MODES = ("ok", "500", "401", "hang", "logs-500", "logs-hang", "slow-login")


class FakeBraintrust:
    """Braintrust's logging API (or one of its faults) on 127.0.0.1. Use as a context manager."""

    def __init__(self, mode: str = "ok") -> None:
        assert mode in MODES, mode
        self.mode = mode
        self.requests: list[tuple[str, str]] = []  # (method, path without query), as received
        self.rows: list[dict[str, Any]] = []  # rows taken by /logs3, as received
        self.projects: dict[str, str] = {}  # name -> id
        self.merged: dict[str, dict[str, dict[str, Any]]] = {}  # project id -> row id -> row
        self.uploads: dict[str, bytes] = {}  # attachment key -> bytes
        self.unknown: list[str] = []  # "METHOD /path?query" of requests answered 404
        self.first_request = threading.Event()
        self.login_answered_at: float | None = None
        self.logs_delay_s = 0.0
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

    def project_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows Braintrust keeps for project `name`: one per row id, merged."""
        with self._lock:
            return list(self.merged.get(self.projects.get(name, ""), {}).values())

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))
        self.first_request.set()

    def answer(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        """The status and JSON body for one request (`target`: path and query), by mode."""
        if self.mode == "500":
            return 500, {"error": "Internal Server Error"}
        if self.mode == "401":
            return 401, {"error": "Invalid API key"}
        path = target.split("?", 1)[0].rstrip("/")
        if method == "POST" and path == "/api/apikey/login":
            org = {"id": ORG_ID, "name": "test-org", "api_url": self.url, "proxy_url": self.url}
            return 200, {"org_info": [{**org, "git_metadata": None}]}
        if method == "POST" and path in ("/api/project/register", "/v1/project"):
            sent = json.loads(body or b"{}")
            name = sent.get("project_name") or sent.get("name") or ""  # older SDKs, newer SDKs
            project = {"id": self._project_id(name), "name": name, "org_id": ORG_ID}
            # braintrust < 0.4x wraps it; newer braintrust (the OpenAPI client) does not
            return 200, {"project": project} if path.startswith("/api") else project
        if method == "GET" and path == "/version":
            return 200, {"logs3_payload_max_bytes": 6 * 1024 * 1024}
        if method == "GET" and path == "/ping":
            return 200, {}
        if method == "POST" and path == "/logs3":
            if self.mode in ("logs-500", "logs-hang"):
                return 500, {"error": "database unavailable"}
            self._insert(json.loads(body)["rows"])
            return 200, {}
        if method == "POST" and path == "/attachment":
            key = json.loads(body)["key"]
            return 200, {"signedUrl": f"{self.url}/upload/{key}", "headers": {}}
        if method == "PUT" and path.startswith("/upload/"):
            with self._lock:
                self.uploads[path.removeprefix("/upload/")] = body
            return 200, {}
        if method == "POST" and path == "/attachment/status":
            return 200, {}
        with self._lock:
            self.unknown.append(f"{method} {target}")
        return 404, {"error": f"not served by FakeBraintrust: {method} {path}"}

    def _project_id(self, name: str) -> str:
        with self._lock:
            if name not in self.projects:
                self.projects[name] = str(uuid.uuid4()) if self.projects else PROJECT_ID
            return self.projects[name]

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            for row in rows:
                self.rows.append(row)
                kept = {k: v for k, v in row.items() if k != "_is_merge"}
                table = self.merged.setdefault(row["project_id"], {})
                stored = table.get(row["id"])
                if stored is not None and row.get("_is_merge"):
                    stored.update(kept)
                else:
                    table[row["id"]] = kept


class _Handler(BaseHTTPRequestHandler):
    fake: FakeBraintrust
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.fake._record(self.command, self.path.split("?", 1)[0])
        path = self.path.split("?", 1)[0]
        if self.fake.mode == "hang" or (self.fake.mode == "logs-hang" and path == "/logs3"):
            self.fake.stopped.wait(HANG_LIMIT_S)
            self.close_connection = True
            return
        if path == "/logs3" and self.fake.logs_delay_s:
            self.fake.stopped.wait(self.fake.logs_delay_s)
        if self.fake.mode == "slow-login" and self.path.startswith("/api/apikey/login"):
            self.fake.stopped.wait(LOGIN_DELAY_S)  # bounded: the server stopping ends it early
            self.fake.login_answered_at = time.time()
        status, answer = self.fake.answer(self.command, self.path, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _serve
