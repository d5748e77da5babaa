"""How a hint names the `braintrust-ollama` command: as the user can run it from their shell.

A hint such as "see it again: braintrust-ollama traces show ID" is only useful if the user can
paste it. Under `uv run` the console script is on PATH for uv's children only, and a script run
from a virtual environment that is not activated is on no PATH at all, so the bare name gives
`command not found`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

NAME = "braintrust-ollama"
MODULE = "braintrust_ollama"


def cli_command() -> str:
    """The command line that runs the CLI from the user's shell, as this process was started:

    - `python -m braintrust_ollama` (the interpreter as it was typed) when started that way;
    - `uv run braintrust-ollama` under `uv run` (uv tells its children: UV_RUN_RECURSION_DEPTH);
    - `braintrust-ollama` when that name on PATH is this environment's script;
    - else `uvx braintrust-ollama` in an environment uv ran, or the script's path.

    From a user's program (not the CLI), the same rules name the CLI of the program's
    environment.
    """
    under_uv_run = bool(os.environ.get("UV_RUN_RECURSION_DEPTH"))
    if _started_as_module():
        python = getattr(sys, "orig_argv", [sys.executable])[0] or sys.executable
        return ("uv run " if under_uv_run else "") + f"{shlex.quote(python)} -m {MODULE}"
    if under_uv_run:
        return f"uv run {NAME}"
    script = _script()
    found = shutil.which(NAME)
    if found is not None and (script is None or _same_file(found, script)):
        return NAME
    if os.environ.get("UV"):  # uv made and ran this environment: `uvx`
        return f"uvx {NAME}"
    if script is not None:
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m {MODULE}"


def _started_as_module() -> bool:
    main = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    return main is not None and main.name == "__main__.py" and main.parent.name == MODULE


def _script() -> Path | None:
    """The console script: the one running, else the one beside this environment's Python."""
    running = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if running is not None and running.stem == NAME:
        return running
    folder = Path(sys.executable).parent
    for candidate in (folder / NAME, folder / f"{NAME}.exe"):
        if candidate.is_file():
            return candidate
    return None


def _same_file(first: str | Path, second: str | Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False
