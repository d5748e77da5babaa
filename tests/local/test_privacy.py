"""The store holds prompts and outputs: only its owner can read it, or it is not written at all.

A store file, or its directory, that another user owns or that others can open is refused with
one line, and nothing is written to it; the directories the store makes are 0700 whatever the
umask, its file 0600.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import stat
import sys
from contextlib import closing
from pathlib import Path

import pytest
from braintrust_ollama.local.store import LocalStore, UnsafeStoreError
from support.runner import User

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")

ROW = {"id": "a", "span_id": "a", "root_span_id": "a", "input": "my secret prompt"}

APP = """
    import braintrust, braintrust_ollama
    braintrust_ollama.init_local_logger(project="app")
    with braintrust.start_span(name="request") as span:
        span.log(input="my secret prompt")
    print("done")
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_a_new_store_is_0600_in_directories_it_makes_0700(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        store = LocalStore(tmp_path / "new" / "dir" / "traces.db")
        store.append([ROW])
        with closing(sqlite3.connect(store.path)) as reader:  # keeps the WAL files in place
            reader.execute("SELECT COUNT(*) FROM rows").fetchone()
            store.append([{**ROW, "output": "and its answer"}])
            wal = store.path.with_name("traces.db-wal")
            shm = store.path.with_name("traces.db-shm")
            assert wal.exists() and shm.exists()
            assert _mode(wal) == _mode(shm) == 0o600  # SQLite gives them the file's mode
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "new") == _mode(tmp_path / "new" / "dir") == 0o700
    assert _mode(store.path) == 0o600


def _nobody() -> int:
    return pwd.getpwnam("nobody").pw_uid


@pytest.mark.parametrize(
    "case",
    ["another user's file, open to all", "the user's own file, readable by others",
     "a directory others can list"],
)  # fmt: skip
def test_a_store_others_can_read_is_refused_with_one_line_and_nothing_written(
    user: User, case: str
) -> None:
    directory = user.store_dir  # made 0700 by the runner
    if case == "a directory others can list":
        directory.chmod(0o755)
    else:
        user.store_path.write_bytes(b"")
        user.store_path.chmod(0o666 if case.startswith("another") else 0o644)
        if case.startswith("another"):
            if os.geteuid() != 0:
                pytest.fail("needs root to give the file to another user")
            os.chown(user.store_path, _nobody(), -1)
    before = sorted(p.name for p in directory.iterdir())

    result = user.run_python(APP)

    assert result.returncode == 0 and result.stdout == "done\n", result.stderr
    where, refused = result.stderr.splitlines()
    assert where.startswith("braintrust-ollama: traces go to the local store")
    assert refused.startswith("braintrust-ollama: not writing traces to the local store: the ")
    assert refused.endswith("; they are not kept")
    assert ("belongs to another user" in refused) == case.startswith("another")
    assert sorted(p.name for p in directory.iterdir()) == before  # no -wal, no -shm
    if user.store_path.exists():
        assert user.store_path.read_bytes() == b""


def test_the_store_refuses_before_opening_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir(mode=0o700)
    store_path = directory / "traces.db"
    store_path.write_bytes(b"")
    store_path.chmod(0o664)
    with pytest.raises(UnsafeStoreError, match="open to other users"):
        LocalStore(store_path).append([ROW])
    assert sorted(p.name for p in directory.iterdir()) == ["traces.db"]
