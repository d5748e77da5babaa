"""The version matrix in pyproject.toml tests what users can install, at both ends."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # checks the real matrix on import
    return module


def test_every_declared_floor_is_pinned_and_every_pin_is_installable(noxfile: ModuleType) -> None:
    noxfile.check_matrix()
    oldest = noxfile.MATRIX["core"]["sessions"]["0.4-oldest"]["pins"]
    assert "ollama==0.4.0" in oldest and "braintrust==0.10.0" in oldest


def test_a_pin_outside_the_declared_range_is_refused(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix = copy.deepcopy(noxfile.MATRIX)
    matrix["langchain"]["sessions"]["oldest"]["pins"].append("braintrust==0.11.0")
    monkeypatch.setattr(noxfile, "MATRIX", matrix)
    with pytest.raises(
        ValueError, match=r"langchain-oldest: braintrust==0.11.0 not in <1,>=0.12.0"
    ):
        noxfile.check_matrix()


def test_a_floor_no_entry_pins_is_refused(
    noxfile: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    matrix = copy.deepcopy(noxfile.MATRIX)
    pins = matrix["llamaindex"]["sessions"]["oldest"]["pins"]
    pins.remove("ollama==0.5.1")
    monkeypatch.setattr(noxfile, "MATRIX", matrix)
    with pytest.raises(
        ValueError, match=r"llamaindex: the floor ollama>=0.5.1 is pinned by no entry"
    ):
        noxfile.check_matrix()


def test_ci_runs_both_ends_of_every_ollama_line_and_of_each_adapter(noxfile: ModuleType) -> None:
    ci = {
        f"{package}-{entry}"
        for package, table in noxfile.MATRIX.items()
        for entry, spec in table["sessions"].items()
        if spec.get("ci")
    }
    lines = {f"core-{line}-{end}" for line in ("0.4", "0.5", "0.6") for end in ("oldest", "newest")}
    adapters = {
        f"{a}-{end}" for a in ("langchain", "llamaindex", "fastapi") for end in ("oldest", "newest")
    }
    assert lines | adapters <= ci
