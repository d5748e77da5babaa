"""The store holds prompts and outputs: only its owner can read it."""

from __future__ import annotations

import os
import sqlite3
import stat
import sys
from contextlib import closing
from pathlib import Path

import pytest
from braintrust_ollama.local.store import LocalStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")

ROW = {"id": "a", "span_id": "a", "root_span_id": "a", "input": "my secret prompt"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask: files 0644, directories 0755
    try:
        store = LocalStore(tmp_path / "new" / "dir" / "traces.db")
        store.write([ROW])
        with closing(sqlite3.connect(store.path)) as reader:  # keeps the WAL files in place
            reader.execute("SELECT COUNT(*) FROM spans").fetchone()
            store.write([{**ROW, "output": "and its answer"}])
            wal = store.path.with_name("traces.db-wal")
            shm = store.path.with_name("traces.db-shm")
            assert wal.exists() and shm.exists()
            assert _mode(wal) == _mode(shm) == 0o600  # SQLite gives them the file's mode
    finally:
        os.umask(previous)
    assert _mode(store.path.parent) == 0o700
    assert _mode(store.path) == 0o600


def test_an_existing_store_and_default_directory_are_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRAINTRUST_OLLAMA_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    directory = tmp_path / "xdg" / "braintrust-ollama"
    directory.mkdir(parents=True, mode=0o755)
    directory.chmod(0o755)
    LocalStore(directory / "traces.db").write([ROW])
    with closing(sqlite3.connect(directory / "traces.db")) as reader:  # keeps the WAL files
        reader.execute("SELECT COUNT(*) FROM spans").fetchone()
        for name in ("traces.db", "traces.db-wal", "traces.db-shm"):
            (directory / name).chmod(0o644)  # as an earlier version left them
        directory.chmod(0o755)

        assert LocalStore().rows("a")[0]["input"] == "my secret prompt"  # opening tightens
        assert _mode(directory) == 0o700
        for name in ("traces.db", "traces.db-wal", "traces.db-shm"):
            assert _mode(directory / name) == 0o600, name


def test_a_directory_the_user_chose_keeps_its_mode_but_the_files_are_private(
    tmp_path: Path,
) -> None:
    chosen = tmp_path / "project"
    chosen.mkdir()
    chosen.chmod(0o755)
    store = LocalStore(chosen / "traces.db")
    store.write([ROW])
    assert _mode(chosen) == 0o755
    assert _mode(store.path) == 0o600
