"""Run a command in a real pseudo-terminal of a given width, as a user's shell would."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass
class Shown:
    returncode: int
    output: str  # what the terminal received (stdout), decoded as UTF-8
    stderr: str


def in_terminal(
    command: Sequence[str], env: Mapping[str, str], *, columns: int, timeout: float = 60
) -> Shown:
    """Run `command` with its stdout on a pseudo-terminal `columns` wide (stderr kept apart)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        list(command),
        env={**env, "TERM": "xterm-256color"},
        stdin=terminal,
        stdout=terminal,
        stderr=subprocess.PIPE,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command exited
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.stderr is not None
    stderr = process.stderr.read().decode("utf-8", "replace")
    process.stderr.close()
    return Shown(process.wait(timeout=timeout), output.decode("utf-8", "strict"), stderr)
