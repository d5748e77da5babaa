"""Record the spans Braintrust's own Ollama integration writes for tests/support/plugin_exchanges.

    uv run python scripts/record_plugin_spans.py                 # the versions below
    uv run python scripts/record_plugin_spans.py 3.35.0 0.6.3    # braintrust, ollama (npm)

Needs Node.js and npm (the packages are installed in a temporary folder); no Ollama server: the
replies come from the in-process FakeOllama. Writes tests/cassettes/plugin/braintrust-js.json,
which tests/core/test_plugin_parity.py compares this project's spans with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.ollama_server import FakeOllama  # noqa: E402
from support.plugin_exchanges import EXCHANGES, PATHS  # noqa: E402

BRAINTRUST, OLLAMA = "3.35.0", "0.6.3"
OUT = ROOT / "tests" / "cassettes" / "plugin" / "braintrust-js.json"


def main(braintrust: str = BRAINTRUST, ollama: str = OLLAMA) -> None:
    exchanges = [
        {"name": e.name, "calls": [{"method": c.method, "request": c.request} for c in e.calls]}
        for e in EXCHANGES
    ]
    with tempfile.TemporaryDirectory() as folder, FakeOllama() as server:
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", folder,
             f"braintrust@{braintrust}", f"ollama@{ollama}"],
            check=True,
        )  # fmt: skip
        script = Path(folder) / "plugin_spans.mjs"
        shutil.copy(ROOT / "scripts" / "plugin_spans.mjs", script)
        for exchange in EXCHANGES:
            for call in exchange.calls:
                server.reply(PATHS[call.method], call.reply)
        env = {**os.environ, "OLLAMA_HOST": server.url, "BRAINTRUST_API_KEY": ""}
        done = subprocess.run(
            ["node", str(script)], input=json.dumps(exchanges), env=env, cwd=folder,
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
    recorded = {
        "recorded_with": {"braintrust (npm)": braintrust, "ollama (npm)": ollama},
        "replies": {e.name: [asdict(c.reply) for c in e.calls] for e in EXCHANGES},
        "spans": json.loads(done.stdout),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(recorded, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
