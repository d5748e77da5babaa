"""Every process the suite starts, run as a new user runs it: one environment, made from nothing.

`User(home, ollama_host=None)` is a user of this machine with a fresh home and a private store.
Through it a test runs

- `run_python(program, *args)`: a Python program, to its end. `program` is a script file (a
  `Path`) or source text (a `str`, written to `<home>/<name>`);
- `start_python(program, *args)`: the same, left running, with stdin, stdout and stderr pipes;
- `cli(*args)`: the `braintrust-ollama` console script, to its end;
- `run(argv)` / `start(argv)`: any other command (`python -m braintrust_ollama`, a hint's line);
- `in_terminal(argv, columns=)`: a command with its stdout on a real pseudo-terminal.

Each gets the same environment (`User.env`), which holds only:

    HOME                          the user's home (a fresh directory; the working directory too)
    BRAINTRUST_OLLAMA_HOME        <home>/store, made 0700: the store refuses a directory others
                                  can read
    PATH                          the test environment's bin first (its python and
                                  `braintrust-ollama`), then the suite's own PATH
    LANG                          C.UTF-8
    BRAINTRUST_OLLAMA_MODEL_INFO  false: no background /api/show or /api/ps (as for the suite)
    OLLAMA_HOST                   the user's Ollama, when one is given

Nothing of the test process leaks in: no `BRAINTRUST_API_KEY` (nor any other `BRAINTRUST_*`), no
`UV_*` (the CLI's hints would say `uv run`), no `VIRTUAL_ENV`, `XDG_*` or `PYTHONPATH`. A call's
`env` adds or replaces variables, `None` removing one: a key, `COLUMNS`, or
`PYTHONPATH=str(TESTS)` for a program that imports `support`.

Every run is bounded (`timeout`, `RUN_TIMEOUT_S` unless given): a program still running then is
killed with every process it started (each runs in a session of its own), and the test fails
with what it wrote on stderr. Output is the exact text written: UTF-8, decoded strictly, with no
newline translation. Processes `start`ed are killed, with theirs, when the user is closed (`with
User(...)`; the `user` fixtures close theirs).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from braintrust_ollama.local.store import LocalStore

TESTS = Path(__file__).resolve().parents[1]  # put on PYTHONPATH, a program can import `support`
BIN = Path(sys.executable).parent  # the test environment's python and console scripts
CLI = BIN / "braintrust-ollama"
RUN_TIMEOUT_S = 90.0  # under pytest's 120 s, so that a hang fails here, with the program's stderr

Env = Mapping[str, "str | None"]


@dataclass
class User:
    """A new user of this machine: a fresh home, a private store, no Braintrust key."""

    home: Path
    ollama_host: str | None = None
    _started: list[subprocess.Popen[str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.store_dir.mkdir(mode=0o700, exist_ok=True)
        self.store_dir.chmod(0o700)  # mkdir's mode is cut by the umask

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def store_path(self) -> Path:
        return self.store_dir / "traces.db"

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.store_path)

    @property
    def env(self) -> dict[str, str]:
        return self.environment()

    def environment(self, env: Env | None = None) -> dict[str, str]:
        """The user's environment (see the module docstring), with `env` added or replaced."""
        variables: dict[str, str | None] = {
            "HOME": str(self.home),
            "BRAINTRUST_OLLAMA_HOME": str(self.store_dir),
            "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
            "LANG": "C.UTF-8",
            "BRAINTRUST_OLLAMA_MODEL_INFO": "false",
            "OLLAMA_HOST": self.ollama_host,
            **(env or {}),
        }
        return {name: value for name, value in variables.items() if value is not None}

    def write(self, source: str, name: str = "app.py") -> Path:
        """`source` (dedented) as the file `name` in the user's home."""
        script = self.home / name
        script.write_text(textwrap.dedent(source), encoding="utf-8")
        return script

    def python(self, program: Path | str, *args: str, name: str = "app.py") -> list[str]:
        """The command line running `program`: a script file, or source text written as `name`."""
        script = program if isinstance(program, Path) else self.write(program, name)
        return [sys.executable, str(script), *args]

    def run_python(
        self,
        program: Path | str,
        *args: str,
        name: str = "app.py",
        env: Env | None = None,
        timeout: float = RUN_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        return self.run(self.python(program, *args, name=name), env=env, timeout=timeout)

    def start_python(
        self, program: Path | str, *args: str, name: str = "app.py", env: Env | None = None
    ) -> subprocess.Popen[str]:
        return self.start(self.python(program, *args, name=name), env=env)

    def cli(
        self, *args: str, env: Env | None = None, timeout: float = RUN_TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        """`braintrust-ollama *args`, to its end."""
        return self.run([str(CLI), *args], env=env, timeout=timeout)

    def last_trace(self) -> list[dict[str, Any]]:
        """The rows of the store's last trace, as `braintrust-ollama traces show last --json`
        prints them."""
        shown = self.cli("traces", "show", "last", "--json")
        assert shown.returncode == 0, shown.stderr
        rows: list[dict[str, Any]] = json.loads(shown.stdout)
        return rows

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Env | None = None,
        timeout: float = RUN_TIMEOUT_S,
        stdout: int = subprocess.PIPE,
    ) -> subprocess.CompletedProcess[str]:
        """`argv` to its end, its stdin empty; `stdout` may be a file descriptor to write to."""
        process = subprocess.Popen(
            list(argv),
            env=self.environment(env),
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            out, err = process.communicate()
            pytest.fail(f"{argv} still ran after {timeout} s; its stderr:\n{_text(err)}")
        return subprocess.CompletedProcess(list(argv), process.returncode, _text(out), _text(err))

    def start(self, argv: Sequence[str], *, env: Env | None = None) -> subprocess.Popen[str]:
        """`argv` left running, with stdin, stdout and stderr pipes (text, line by line)."""
        process = subprocess.Popen(
            list(argv),
            env=self.environment(env),
            cwd=self.home,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        self._started.append(process)
        return process

    def in_terminal(
        self,
        argv: Sequence[str],
        *,
        columns: int,
        env: Env | None = None,
        timeout: float = RUN_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """`argv` to its end with its stdin and stdout on a pseudo-terminal `columns` wide (40
        rows, `TERM=xterm-256color`), as a user's shell runs it; its stdout is what the terminal
        received, its stderr kept apart (POSIX only)."""
        import fcntl
        import pty
        import termios

        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        process = subprocess.Popen(
            list(argv),
            env=self.environment({"TERM": "xterm-256color", **(env or {})}),
            cwd=self.home,
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.close(terminal)
        assert process.stderr is not None
        errors = process.stderr.fileno()
        received = {controller: bytearray(), errors: bytearray()}
        still_open = set(received)
        deadline = time.monotonic() + timeout
        try:
            while still_open:
                left = deadline - time.monotonic()
                ready, _, _ = select.select(list(still_open), [], [], max(0.0, left))
                if not ready:
                    _kill_group(process)
                    pytest.fail(f"{argv} still ran after {timeout} s in a terminal")
                for fd in ready:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:  # the terminal closed: the command exited
                        chunk = b""
                    received[fd] += chunk
                    if not chunk:
                        still_open.discard(fd)
            returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()))
        finally:
            os.close(controller)
            process.stderr.close()
        out, err = bytes(received[controller]), bytes(received[errors])
        return subprocess.CompletedProcess(list(argv), returncode, _text(out), _text(err))

    def close(self) -> None:
        """Kill what `start` started and still runs, with every process it started."""
        for process in self._started:
            if process.poll() is None:  # not reaped: its process group is still this one
                _kill_group(process)
            process.wait()
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        self._started.clear()

    def __enter__(self) -> User:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def report(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a program printed last; fails unless it exited 0."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _kill_group(process: subprocess.Popen[Any]) -> None:
    """Kill a process not yet reaped and every process it started (its session's group, on
    POSIX): until it is reaped, its id names no other group."""
    with contextlib.suppress(ProcessLookupError):  # it and every process it started have ended
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()


def _text(output: bytes | None) -> str:
    return "" if output is None else output.decode("utf-8")
