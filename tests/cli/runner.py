"""`braintrust-ollama` run as a new user would: a subprocess with a fresh HOME and no key."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("braintrust-ollama")


@dataclass
class Cli:
    """The `braintrust-ollama` command in a clean environment of its own."""

    home: Path
    ollama_host: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{SCRIPT.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.home),
            "OLLAMA_HOST": self.ollama_host,
            "LANG": "C.UTF-8",
            # Off, as for the whole suite (tests/conftest.py): only what a test sends reaches
            # its FakeOllama, and spans do not depend on when a background fetch answers.
            "BRAINTRUST_OLLAMA_MODEL_INFO": "false",
        }

    @property
    def store(self) -> Path:
        return self.home / ".local" / "share" / "braintrust-ollama" / "traces.db"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = str(SCRIPT) if SCRIPT.exists() else shutil.which("braintrust-ollama")
        assert command, "the braintrust-ollama console script is not installed"
        return subprocess.run(
            [command, *args],
            env=self.env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=60,
            check=False,
        )
