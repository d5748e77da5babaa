"""Streams left unfinished when the program exits are written before it ends, quietly."""

from __future__ import annotations

from pathlib import Path

from support.runner import User
from support.spans import choices, reply_of

PROGRAM = Path(__file__).parent / "programs" / "streams_left_at_exit.py"


def test_streams_left_unfinished_at_exit_are_stored_without_a_traceback(user: User):
    done = user.run_python(PROGRAM)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["sync: one ", "async: uno ", "exiting"]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert len(done.stderr.splitlines()) == 1  # init_local_logger's line saying where traces go

    store = user.store
    (trace,) = store.traces()
    rows = store.rows(trace.root_span_id)
    (program,) = [r for r in rows if r["span_attributes"]["name"] == "program"]
    ollama_spans = [r for r in rows if r["span_attributes"]["name"] != "program"]
    written = [(r["span_attributes"]["name"], r["output"]) for r in ollama_spans]
    assert sorted(written, key=str) == [
        ("ollama.chat", choices({"role": "assistant", "content": "one "})),
        ("ollama.chat", choices({"role": "assistant", "content": "uno "})),
        ("ollama.generate", choices({"role": "assistant", "content": ""})),
        ("ollama.generate", choices({"role": "assistant", "content": ""})),
    ]
    for span in ollama_spans:
        assert span["span_parents"] == [program["span_id"]]
        assert span["metadata"]["unfinished_at_exit"] is True
        assert span.get("error") is None


def test_streams_left_unfinished_in_multiprocessing_children_are_stored(user: User):
    done = user.run_python(PROGRAM.with_name("streams_left_in_a_child.py"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "fork: one ",
        "fork exit code: 0",
        "spawn: uno ",
        "spawn exit code: 0",
    ]
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr

    store = user.store
    for method, first_chunk in (("fork", "one "), ("spawn", "uno ")):
        (trace,) = [t for t in store.traces() if t.name == f"{method} child"]
        rows = store.rows(trace.root_span_id)
        (root,) = [r for r in rows if r["span_attributes"]["name"] == f"{method} child"]
        (chat,) = [r for r in rows if r["span_attributes"]["name"] == "ollama.chat"]
        assert chat["span_parents"] == [root["span_id"]]
        assert chat["output"] == choices({"role": "assistant", "content": first_chunk})
        assert chat["metadata"]["unfinished_at_exit"] is True
        assert chat["metrics"]["end"] >= chat["metrics"]["start"]
        assert root["metrics"]["end"] >= root["metrics"]["start"]


def test_a_stream_another_thread_is_reading_is_left_to_it_at_exit(user: User):
    """The exit pass writes the span of a stream a daemon thread is reading, and leaves the
    stream to that thread: its loop neither ends early (as if the answer were complete) nor
    fails, and nothing is printed."""
    done = user.run_python(PROGRAM.with_name("stream_read_by_another_thread_at_exit.py"))
    assert done.returncode == 0, done.stderr
    answer = " ".join(f"w{i}" for i in range(64))
    assert done.stdout.splitlines() == ["main: exiting", f"slow reader: 65 chunks, {answer!r}"]
    assert len(done.stderr.splitlines()) == 1, done.stderr  # init_local_logger's line only

    store = user.store
    (trace,) = store.traces()
    rows = store.rows(trace.root_span_id)
    chats = [r for r in rows if r["span_attributes"]["name"] == "ollama.chat"]
    assert len(chats) == 2  # each written once
    blocked, slow = sorted(chats, key=lambda r: reply_of(r)["content"])  # "first ", "w0 ..."
    for span in chats:
        assert span["metadata"]["unfinished_at_exit"] is True
        assert span.get("error") is None
    assert reply_of(blocked)["content"] == "first "
    read_at_exit = reply_of(slow)["content"]
    assert read_at_exit and answer.startswith(read_at_exit) and read_at_exit != answer
