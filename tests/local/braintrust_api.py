"""A small stand-in for Braintrust's HTTP API on 127.0.0.1: the part the `braintrust` SDK uses
to log (hand-made from the SDK's requests, not a recording).

- `POST /api/apikey/login`: one organisation whose API and proxy URLs are this server.
- `POST /api/project/register` (older SDKs), `POST /v1/project` (newer): a project id per name.
- `GET /version`, `GET /ping`: what the SDK asks before logging.
- `POST /logs3` (`{"rows": [...], "api_version": 2}`): rows kept per project, merged by `id` the
  way Braintrust merges them (a row replaces the stored one unless marked `_is_merge`).
- `POST /attachment` → a signed URL on this server; `PUT` it stores the bytes;
  `POST /attachment/status` records the upload's status.
Anything else answers 404, and is recorded in `unknown`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

API_KEY = "sk-local-test"
ORG_ID = "org-local"


class FakeBraintrust:
    def __init__(self) -> None:
        self.projects: dict[str, str] = {}  # name -> id
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}  # project id -> row id -> row
        self.inserts = 0  # rows received, before merging
        self.uploads: dict[str, bytes] = {}  # attachment key -> bytes
        self.unknown: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeBraintrust:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def project_rows(self, name: str) -> list[dict[str, Any]]:
        return list(self.rows.get(self.projects.get(name, ""), {}).values())

    # --- handlers --------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        route = urlparse(path).path.rstrip("/")
        if method == "POST" and route == "/api/apikey/login":
            org = {"id": ORG_ID, "name": "local-org", "api_url": self.url, "proxy_url": self.url}
            return 200, {"org_info": [org]}
        if method == "POST" and route in ("/api/project/register", "/v1/project"):
            request = json.loads(body)
            name = request.get("project_name") or request["name"]  # older SDKs, newer SDKs
            with self._lock:
                project_id = self.projects.setdefault(name, f"project-{len(self.projects) + 1}")
            project = {"id": project_id, "name": name, "org_id": ORG_ID}
            return 200, {"project": project} if route.startswith("/api") else project
        if method == "GET" and route in ("/version", "/ping"):
            return 200, {}
        if method == "POST" and route == "/logs3":
            self._insert(json.loads(body)["rows"])
            return 200, {}
        if method == "POST" and route == "/attachment":
            key = json.loads(body)["key"]
            return 200, {"signedUrl": f"{self.url}/upload/{key}", "headers": {}}
        if method == "PUT" and route.startswith("/upload/"):
            self.uploads[route.removeprefix("/upload/")] = body
            return 200, {}
        if method == "POST" and route == "/attachment/status":
            return 200, {}
        self.unknown.append(f"{method} {path}")
        return 404, {"error": "not found"}

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            for row in rows:
                self.inserts += 1
                table = self.rows.setdefault(row["project_id"], {})
                stored = table.get(row["id"])
                if stored is not None and row.get("_is_merge"):
                    stored.update({k: v for k, v in row.items() if k != "_is_merge"})
                else:
                    table[row["id"]] = {k: v for k, v in row.items() if k != "_is_merge"}


def _handler(api: FakeBraintrust) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # silence stderr
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, payload = api.answer(self.command, self.path, self.rfile.read(length))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

    return Handler
