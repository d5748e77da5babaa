"""Version matrices: one session per package and supported version range.

`nox -t ci` runs what CI runs: lint, the whole suite on the newest versions (the workspace
lock), and each package's tests on its oldest supported versions.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

CORE = "packages/core"
PYTEST = ("pytest", "-q")


def _install(session: nox.Session, *packages: str, pins: tuple[str, ...] = ()) -> None:
    """Install workspace packages (editable) with pinned third-party versions and dev tools."""
    session.install(
        *(f"-e{p}" for p in packages),
        "pytest>=8",
        "pytest-asyncio>=0.24",
        "pytest-timeout>=2.3",
        "vcrpy>=6",
        *pins,
    )


@nox.session(python=False, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy over every package."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run(
        "mypy",
        "packages/core/src",
        "packages/langchain/src",
        "packages/llamaindex/src",
        "packages/fastapi/src",
    )


@nox.session(python=False, tags=["ci"])
def tests(session: nox.Session) -> None:
    """The whole suite on the newest versions: the workspace environment (uv.lock)."""
    session.run(*PYTEST, *session.posargs)


# --- core ------------------------------------------------------------------------------------

# --- end core --------------------------------------------------------------------------------

# --- langchain -------------------------------------------------------------------------------

# --- end langchain ---------------------------------------------------------------------------

# --- llamaindex ------------------------------------------------------------------------------

# --- end llamaindex --------------------------------------------------------------------------

# --- fastapi ---------------------------------------------------------------------------------

# --- end fastapi -----------------------------------------------------------------------------

# --- bench -----------------------------------------------------------------------------------

# --- end bench -------------------------------------------------------------------------------
