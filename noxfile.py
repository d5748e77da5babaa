"""Sessions: lint, the whole suite, and the version matrix of `[tool.braintrust-ollama.matrix]`.

The matrix lives in pyproject.toml, one table per package; each entry becomes a session
`<package>-<entry>` (`uv run nox -s core-0.5-oldest`, `uv run nox -l` lists them). `nox -t ci`
runs what CI runs (.ci/run): lint, the whole suite on the newest versions (uv.lock), every entry
marked `ci` (the oldest and newest release of each ollama SDK line and each adapter's ends), and
the README quick starts from the built wheels.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import nox
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
MATRIX: dict[str, dict[str, Any]] = PYPROJECT["tool"]["braintrust-ollama"]["matrix"]
WORKSPACE = set(PYPROJECT["tool"]["uv"]["sources"])  # our own packages: installed editable
PYTEST = ("pytest", "-q")


def _test_group() -> list[str]:
    """The `test` dependency group: what every test session installs beside its pins."""
    return [r for r in PYPROJECT["dependency-groups"]["test"] if isinstance(r, str)]


def _declared(path: str) -> dict[str, SpecifierSet]:
    """The version range of each dependency a workspace package declares, by name."""
    project = tomllib.loads((ROOT / path / "pyproject.toml").read_text("utf-8"))["project"]
    return {r.name: r.specifier for r in map(Requirement, project["dependencies"])}


def _exact(pins: list[str]) -> dict[str, str]:
    """The `name==version` pins of a matrix entry, as {name: version}."""
    exact = {}
    for pin in map(Requirement, pins):
        versions = [s.version for s in pin.specifier if s.operator == "=="]
        if versions:
            exact[pin.name] = versions[0]
    return exact


def check_matrix() -> None:
    """The matrix tests what users can install, both ends: every exact pin lies inside the
    ranges the installed packages declare, and every declared floor (`>=X`) of a package is
    pinned exactly by one of its entries. Raises ValueError (nox then runs nothing)."""
    for package, table in MATRIX.items():
        pinned: dict[str, set[str]] = {}
        for entry, spec in table["sessions"].items():
            for name, version in _exact(spec["pins"]).items():
                pinned.setdefault(name, set()).add(version)
                for path in table["install"]:
                    allowed = _declared(path).get(name)
                    if allowed is not None and version not in allowed:
                        raise ValueError(f"{package}-{entry}: {name}=={version} not in {allowed}")
        for name, allowed in _declared(table["install"][-1]).items():
            floors = [s.version for s in allowed if s.operator == ">="]
            if name not in WORKSPACE and floors and floors[0] not in pinned.get(name, ()):
                raise ValueError(f"{package}: the floor {name}>={floors[0]} is pinned by no entry")


def _matrix_session(package: str, entry: str, spec: dict[str, Any]) -> None:
    table = MATRIX[package]
    install: list[str] = table["install"]
    pins: list[str] = spec["pins"]
    tests: list[str] = spec.get("tests", table["tests"])  # an entry may run fewer

    def run(session: nox.Session) -> None:
        # --upgrade: a reused environment still gets the newest releases the pins allow.
        session.install("--upgrade", *(f"-e{p}" for p in install), *_test_group(), *pins)
        session.run(*PYTEST, *tests, *session.posargs)

    run.__doc__ = f"{', '.join(tests)} with {', '.join(pins)}"
    nox.session(
        name=f"{package}-{entry}",
        python=spec.get("python", "3.12"),
        tags=["ci"] if spec.get("ci") else [],
    )(run)


check_matrix()
for _package, _table in MATRIX.items():
    for _entry, _spec in _table["sessions"].items():
        _matrix_session(_package, _entry, _spec)


@nox.session(python=False, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy over every package."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", *(str(p) for p in sorted(ROOT.glob("packages/*/src"))))


@nox.session(python=False, tags=["ci"])
def tests(session: nox.Session) -> None:
    """The whole suite on the newest versions: the workspace environment (uv.lock)."""
    session.run(*PYTEST, *session.posargs)


@nox.session(python=False, tags=["ci"])
def quick_starts(session: nox.Session) -> None:
    """Every package's README quick start, from the built wheels, each in a fresh virtual
    environment, against an Ollama stand-in at a non-default address (scripts/run_quick_starts.py;
    needs PyPI for the packages' dependencies)."""
    dist = Path(session.create_tmp()) / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("uv", "build", "--all-packages", "--wheel", "--quiet", "-o", str(dist))
    session.run("python", str(ROOT / "scripts" / "run_quick_starts.py"), str(dist))


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """The pyperf benchmarks, in the workspace environment, then the targets of BENCHMARKS.md
    as Markdown (results kept in .bench/; `-- --fast` for a quicker, noisier run)."""
    out = ROOT / ".bench"
    out.mkdir(exist_ok=True)
    results = []
    for script in sorted(ROOT.glob("benchmarks/bench_*.py")):
        result = out / f"{script.stem}.json"
        result.unlink(missing_ok=True)
        session.run("python", str(script), "--quiet", "-o", str(result), *session.posargs)
        results.append(str(result))
    session.run("python", str(ROOT / "benchmarks" / "report.py"), *results)
    session.run("python", str(ROOT / "benchmarks" / "pool_workers.py"))
