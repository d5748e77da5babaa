"""Kept only for tests/fastapi/test_uvicorn_workers.py until it uses support/runner.py (issue 20's
FastAPI branch reworks that folder): `Program` is the runner's `User`, `all_rows` the store's rows.
Delete this file once nothing imports it."""

from __future__ import annotations

from pathlib import Path

from support.runner import User
from support.spans import stored_rows as all_rows

__all__ = ["Program", "all_rows"]


class Program(User):
    def __init__(self, home: Path, ollama_url: str) -> None:
        super().__init__(home, ollama_url)
