"""User programs run as their own processes, each with a fresh HOME and store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from braintrust_ollama.local.store import LocalStore

RUN_TIMEOUT_S = 90


@dataclass
class Program:
    """A user's Python program, run as its own process with a fresh HOME and store."""

    home: Path
    ollama_url: str

    @property
    def store_path(self) -> Path:
        return self.home / "store" / "traces.db"

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.store_path)

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "BRAINTRUST_OLLAMA_HOME": str(self.store_path.parent),
            "OLLAMA_HOST": self.ollama_url,
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "BRAINTRUST_OLLAMA_MODEL_INFO": "false",  # off, as for the whole suite
        }

    def write(self, source: str, name: str = "app.py") -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        script = self.home / name
        script.write_text(textwrap.dedent(source), encoding="utf-8")
        return script

    def run(self, source: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `source` to completion; its last stdout line, if JSON, is its report."""
        return subprocess.run(
            [sys.executable, str(self.write(source)), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )

    def start(self, source: str, *args: str, name: str = "app.py") -> subprocess.Popen[str]:
        """Start `source`; talk to it over its stdin and stdout."""
        return subprocess.Popen(
            [sys.executable, str(self.write(source, name)), *args],
            env=self.env,
            cwd=self.home,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def report(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a program printed last."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def all_rows(store: LocalStore) -> list[dict[str, Any]]:
    return [row for trace in store.traces(limit=100_000) for row in store.rows(trace.root_span_id)]
