"""Run every package's README quick start as a new user would: from the built wheels, each in a
fresh virtual environment, against an Ollama stand-in at a non-default address.

    uv run nox -s quick_starts                      # builds the wheels, then runs this (CI: nox -t ci)
    uv run python scripts/run_quick_starts.py DIST  # with wheels already built into DIST

For each package: a new virtual environment (uv); `pip install` exactly as its README says, this
repository's packages from the wheels and everything else from PyPI; the README's Python block
run with no Braintrust key, HOME in a temporary folder and OLLAMA_HOST set to FakeOllama
(tests/support/ollama_server.py) on a free port, written `127.0.0.1:<port>` as `ollama serve`
takes it. The FastAPI quick start is saved as app.py, served with the README's `uvicorn`
command and asked once over HTTP. Each must exit cleanly with no traceback, and its trace must
be readable with `braintrust-ollama traces show last`. Only PyPI is reached; exits 1 when any
quick start fails, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.ollama_server import FakeOllama  # noqa: E402

INSTALL_TIMEOUT_S = 600  # a cold PyPI download of LlamaIndex's dependencies
RUN_TIMEOUT_S = 120
SERVE_TIMEOUT_S = 60


@dataclass(frozen=True)
class QuickStart:
    readme: str  # its README, which says how to install it and holds its code
    root: str | None  # the trace's root span name (None: any)
    calls: tuple[str, ...]  # the Ollama SDK spans the trace holds
    serve: bool = False  # run with the README's `uvicorn` command, then asked over HTTP


QUICK_STARTS = (
    QuickStart("packages/core/README.md", "answer", ("ollama.chat", "ollama.generate")),
    QuickStart("packages/langchain/README.md", "RunnableSequence", ("ollama.chat",)),
    QuickStart("packages/llamaindex/README.md", None, ("ollama.chat",)),
    QuickStart("packages/fastapi/README.md", "GET /ask/{topic}", ("ollama.chat",), serve=True),
)


class Failed(Exception):
    pass


def main(dist: str) -> int:
    wheels = {_name(w): w for w in Path(dist).resolve().glob("*.whl")}
    failed = 0
    with FakeOllama() as ollama:
        host = ollama.url.removeprefix("http://")
        for quick_start in QUICK_STARTS:
            started = time.monotonic()
            try:
                run(quick_start, wheels, host)
            except Failed as failure:
                print(f"FAILED {quick_start.readme}: {failure}", file=sys.stderr)
                failed += 1
            else:
                print(f"ok     {quick_start.readme} ({time.monotonic() - started:.1f} s)")
    return 1 if failed else 0


def run(quick_start: QuickStart, wheels: dict[str, Path], ollama_host: str) -> None:
    readme = (ROOT / quick_start.readme).read_text()
    with tempfile.TemporaryDirectory(prefix="quick-start-") as folder:
        work = Path(folder)
        python = _fresh_environment(work / "venv", _install_line(readme), wheels)
        home = work / "home"
        env = {
            "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(home),
            "BRAINTRUST_OLLAMA_HOME": str(home),
            "OLLAMA_HOST": ollama_host,
            "LANG": "C.UTF-8",
        }
        code = _python_block(readme)
        if quick_start.serve:
            (work / "app.py").write_text(code)
            _serve(_command(readme, "uvicorn"), python.parent, work, env)
        else:
            (work / "quick_start.py").write_text(code)
            done = _run([str(python), "quick_start.py"], work, env, RUN_TIMEOUT_S)
            if done.returncode != 0 or "Traceback" in done.stderr:
                raise Failed(f"exited {done.returncode}:\n{done.stderr}")
        shown = _run([str(python.parent / "braintrust-ollama"), "traces", "show", "last",
                      "--json"], work, env, RUN_TIMEOUT_S)  # fmt: skip
        if shown.returncode != 0:
            raise Failed(f"traces show last exited {shown.returncode}:\n{shown.stderr}")
        _check_trace(json.loads(shown.stdout), quick_start)


def _fresh_environment(venv: Path, install: list[str], wheels: dict[str, Path]) -> Path:
    """A new virtual environment holding what the README's `pip install` line installs: this
    repository's packages from their wheels (and the core's, which they need), the rest from
    PyPI. Returns its Python."""
    uv = shutil.which("uv")
    if uv is None:
        raise Failed("uv is not on PATH")
    _run([uv, "venv", "--quiet", "-p", sys.executable, str(venv)], ROOT, dict(os.environ), 120)
    requirements = [_from_wheel(r, wheels) for r in install if not r.startswith("-")]
    if not any(r.startswith("braintrust-ollama @") for r in requirements):
        requirements.append(f"braintrust-ollama @ {wheels['braintrust-ollama'].as_uri()}")
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    done = _run([uv, "pip", "install", "--quiet", "-p", str(python), *requirements], ROOT,
                dict(os.environ), INSTALL_TIMEOUT_S)  # fmt: skip
    if done.returncode != 0:
        raise Failed(f"could not install {install}:\n{done.stderr}")
    return python


def _from_wheel(requirement: str, wheels: dict[str, Path]) -> str:
    """`name[extras]` as `name[extras] @ file://<wheel>` for this repository's packages."""
    wheel = wheels.get(requirement.partition("[")[0].lower())
    return f"{requirement} @ {wheel.as_uri()}" if wheel is not None else requirement


def _serve(command: list[str], bin_dir: Path, work: Path, env: dict[str, str]) -> None:
    """Serve app.py with the README's command (on a free port), ask it once, stop it with
    Ctrl-C as a user would."""
    port = _free_port()
    if "--port" in command:
        command[command.index("--port") + 1] = str(port)
    else:
        command += ["--port", str(port)]
    server = subprocess.Popen(
        [str(bin_dir / command[0]), *command[1:]], cwd=work, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def read_stderr() -> None:
        assert server.stderr is not None
        for line in server.stderr:
            lines.append(line)
            if "Uvicorn running on" in line:
                ready.set()
        ready.set()  # it exited before listening

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        if not ready.wait(SERVE_TIMEOUT_S) or server.poll() is not None:
            raise Failed(f"`{shlex.join(command)}` is not serving:\n{''.join(lines)}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ask/sky", timeout=30) as reply:
            answer = json.loads(reply.read())
        if not answer.get("answer"):
            raise Failed(f"GET /ask/sky answered {answer}")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        reader.join(10)
    if server.returncode != 0 or "Traceback" in "".join(lines):
        raise Failed(f"the server exited {server.returncode}:\n{''.join(lines)}")


def _check_trace(rows: list[dict], quick_start: QuickStart) -> None:
    roots = [r for r in rows if not r.get("span_parents")]
    calls = sorted(
        r["span_attributes"]["name"]
        for r in rows
        if r["span_attributes"]["name"].startswith("ollama.")
    )
    if len(roots) != 1 or calls != sorted(quick_start.calls):
        raise Failed(f"the trace holds {[r['span_attributes']['name'] for r in rows]}")
    if quick_start.root is not None and roots[0]["span_attributes"]["name"] != quick_start.root:
        raise Failed(f"the trace's root is {roots[0]['span_attributes']['name']}")
    for row in rows:
        failed = row.get("error") or not row["metrics"].get("completion_tokens")
        if row["span_attributes"]["name"].startswith("ollama.") and failed:
            raise Failed(f"an Ollama span failed or counted nothing: {row}")


def _install_line(readme: str) -> list[str]:
    found = re.search(r"^\s*pip install ([^#\n]+)", readme, re.M)
    if found is None:
        raise Failed("the README says no `pip install`")
    return shlex.split(found.group(1))


def _python_block(readme: str) -> str:
    section = readme[readme.index("## Quick start") :]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    if found is None:
        raise Failed("no Python block under `## Quick start`")
    return found.group(1)


def _command(readme: str, program: str) -> list[str]:
    section = readme[readme.index("## Quick start") :]
    found = re.search(rf"^{program} ([^#\n]+)", section, re.M)
    if found is None:
        raise Failed(f"the quick start gives no `{program}` command")
    return [program, *shlex.split(found.group(1))]


def _name(wheel: Path) -> str:
    return wheel.name.split("-", 1)[0].replace("_", "-").lower()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(
    command: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as expired:
        raise Failed(f"`{shlex.join(command)}` took over {timeout:.0f} s") from expired


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
