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

CORE_TESTS = ("tests/core", "tests/cli", "tests/local")
# The oldest versions core is tested with (CI): ollama 0.4 brought typed responses.
CORE_OLDEST = ("ollama==0.4.0", "braintrust==0.10.0")


@nox.session(name="core-oldest", python="3.10", tags=["ci"])
def core_oldest(session: nox.Session) -> None:
    """Core and CLI tests on the oldest supported ollama SDK and braintrust, on Python 3.10."""
    _install(session, CORE, pins=CORE_OLDEST)
    session.run(*PYTEST, *CORE_TESTS, *session.posargs)


# One session per supported ollama SDK line, each on its newest release.
OLLAMA_LINES = {"0.4": "ollama>=0.4,<0.5", "0.5": "ollama>=0.5,<0.6", "0.6": "ollama>=0.6,<0.7"}


@nox.session(name="core")
@nox.parametrize("ollama_line", list(OLLAMA_LINES))
def core_lines(session: nox.Session, ollama_line: str) -> None:
    """Core and CLI tests on the newest release of one ollama SDK line."""
    _install(session, CORE, pins=(OLLAMA_LINES[ollama_line],))
    session.run(*PYTEST, *CORE_TESTS, *session.posargs)


@nox.session(name="core-newest", python="3.13")
def core_newest(session: nox.Session) -> None:
    """Core and CLI tests on the newest ollama 0.6.x and braintrust, on Python 3.13."""
    _install(session, CORE, pins=("ollama>=0.6,<0.7", "braintrust"))
    session.run(*PYTEST, *CORE_TESTS, *session.posargs)


# --- end core --------------------------------------------------------------------------------

# --- langchain -------------------------------------------------------------------------------

LANGCHAIN = "packages/langchain"
LANGCHAIN_TESTS = "tests/langchain_adapter"
# Supported ranges, one session each (newest of the range is resolved): langchain-core 0.3 with
# langchain-ollama 0.2-0.3 and LangGraph 0.x, and the 1.x line.
LANGCHAIN_RANGES = {
    "0.3": ("langchain-core>=0.3,<0.4", "langchain-ollama>=0.2.1,<0.4", "langgraph<0.7"),
    "1": ("langchain-core>=1,<2", "langchain-ollama>=1,<2", "langgraph>=1,<2"),
}
# The oldest versions the adapter is tested with (CI): see packages/langchain/README.md.
LANGCHAIN_OLDEST = (
    "langchain-core==0.3.20",
    "langchain-ollama==0.2.1",
    "ollama==0.4.0",
    "langgraph==0.2.20",
)


@nox.session(name="langchain")
@nox.parametrize("line", list(LANGCHAIN_RANGES))
def langchain_range(session: nox.Session, line: str) -> None:
    """tests/langchain_adapter on the newest releases of one supported LangChain line."""
    _install(session, CORE, LANGCHAIN, pins=LANGCHAIN_RANGES[line])
    session.run(*PYTEST, LANGCHAIN_TESTS, *session.posargs)


@nox.session(name="langchain-oldest", python="3.10", tags=["ci"])
def langchain_oldest(session: nox.Session) -> None:
    """tests/langchain_adapter on the oldest supported langchain-core / langchain-ollama / ollama."""
    _install(session, CORE, LANGCHAIN, pins=LANGCHAIN_OLDEST)
    session.run(*PYTEST, LANGCHAIN_TESTS, *session.posargs)


@nox.session(name="langchain-legacy-braintrust", tags=["ci"])
def langchain_legacy_braintrust(session: nox.Session) -> None:
    """tests/langchain_adapter with Braintrust < 0.12, whose handler is the braintrust-langchain package."""
    _install(session, CORE, LANGCHAIN, pins=("braintrust==0.10.0", "braintrust-langchain==0.2.1"))
    session.run(*PYTEST, LANGCHAIN_TESTS, *session.posargs)


# --- end langchain ---------------------------------------------------------------------------

# --- llamaindex ------------------------------------------------------------------------------

LLAMAINDEX = "packages/llamaindex"
# Oldest supported: llama-index-core 0.13.0 (Braintrust's LlamaIndex integration needs 0.13),
# the first llms-ollama for it, and embeddings-ollama 0.8.1 (0.8.0 reads `result["embedding"]`
# from `embed()`, which fails on every ollama SDK).
LLAMAINDEX_OLDEST = (
    "llama-index-core==0.13.0",
    "llama-index-llms-ollama==0.7.0",
    "llama-index-embeddings-ollama==0.8.1",
)
LLAMAINDEX_VERSIONS = {
    "0.13": LLAMAINDEX_OLDEST,
    "0.14": (
        "llama-index-core>=0.14,<0.15",
        "llama-index-llms-ollama>=0.8",
        "llama-index-embeddings-ollama>=0.8.1",
    ),
}


@nox.session(name="llamaindex-oldest", python="3.10", tags=["ci"])
def llamaindex_oldest(session: nox.Session) -> None:
    """tests/llamaindex on the oldest supported llama-index packages."""
    _install(session, CORE, LLAMAINDEX, pins=LLAMAINDEX_OLDEST)
    session.run(*PYTEST, "tests/llamaindex", *session.posargs)


@nox.session(name="llamaindex", python=["3.10", "3.13"])
@nox.parametrize("llamaindex", list(LLAMAINDEX_VERSIONS))
def llamaindex(session: nox.Session, llamaindex: str) -> None:
    """tests/llamaindex across the supported llama-index-core minor versions."""
    _install(session, CORE, LLAMAINDEX, pins=LLAMAINDEX_VERSIONS[llamaindex])
    session.run(*PYTEST, "tests/llamaindex", *session.posargs)


# --- end llamaindex --------------------------------------------------------------------------

# --- fastapi ---------------------------------------------------------------------------------

FASTAPI = "packages/fastapi"
FASTAPI_TESTS = "tests/fastapi"
# The oldest versions the middleware is tested with (CI): see packages/fastapi/README.md.
FASTAPI_OLDEST = (
    "fastapi==0.115.0",
    "starlette==0.37.2",
    "uvicorn==0.30.0",
    "httpx==0.27.2",
    "braintrust==0.30.0",
)


@nox.session(name="fastapi", python=False)
def fastapi_newest(session: nox.Session) -> None:
    """tests/fastapi on the newest FastAPI / Starlette / uvicorn (the workspace lock)."""
    session.run(*PYTEST, FASTAPI_TESTS, *session.posargs)


@nox.session(name="fastapi-oldest", python="3.10", tags=["ci"])
def fastapi_oldest(session: nox.Session) -> None:
    """tests/fastapi on the oldest supported FastAPI / Starlette / uvicorn."""
    _install(session, CORE, FASTAPI, pins=FASTAPI_OLDEST)
    session.run(*PYTEST, FASTAPI_TESTS, *session.posargs)


@nox.session(name="bench-fastapi", python=False)
def bench_fastapi(session: nox.Session) -> None:
    """Per-request overhead of BraintrustMiddleware against one bare Braintrust span."""
    session.run("python", "benchmarks/bench_fastapi.py", *session.posargs)


# --- end fastapi -----------------------------------------------------------------------------

# --- bench -----------------------------------------------------------------------------------


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Every `benchmarks/bench_*.py`, in the workspace environment, printing its tables.

    Each script takes `--quick` (a smoke run of seconds) and `--write` (put its numbers in its
    own section of BENCHMARKS.md): `uv run nox -s bench -- --quick`.
    """
    import glob

    for script in sorted(glob.glob("benchmarks/bench_*.py")):
        session.run("python", script, *session.posargs)


# --- end bench -------------------------------------------------------------------------------
