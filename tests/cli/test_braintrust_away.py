"""`braintrust_ollama.init_logger()` in a user's program, with Braintrust there, away or refusing.

Each test runs the README's quick-start program as a subprocess with a fresh HOME and
BRAINTRUST_OLLAMA_HOME, against an in-process Ollama (`FakeOllama`) and, with a key, a stand-in
for Braintrust's API on 127.0.0.1 (`FakeBraintrust`) or a closed port. The program prints the
time its last line ran, and the time its exit handlers (Braintrust's and this suite's) were
done: the difference is what tracing adds to its exit. (Interpreter teardown after that depends
on how many modules were imported, not on Braintrust.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from braintrust_ollama.local.store import LocalStore
from support.fake_braintrust import PROJECT_ID, FakeBraintrust
from support.ollama_server import Chat, FakeOllama, Generate
from support.spans import children_of, choices, names, only, reply_of, roots

TIMEOUT_S = 5.0  # init_logger's documented default: how long exit waits for Braintrust
SHUTDOWN_S = 1.5  # the local store's last write and thread shutdown, on a busy machine
PROJECT = "my-project"
# For the cases where Braintrust answers or refuses: a timeout well above Braintrust's own
# retries, so that a busy machine cannot turn them into "no answer within 5 s".
GENEROUS = 'project="my-project", timeout_s=30'

PROGRAM = textwrap.dedent(
    """
    import atexit, json, time
    # Registered first, so it runs last: after every exit handler of braintrust and this suite.
    atexit.register(lambda: print(json.dumps({"exit_handlers_done_at": time.time()})))

    import braintrust
    import ollama
    import braintrust_ollama
    {prologue}
    braintrust_ollama.init_logger(project="my-project")
    braintrust_ollama.setup_ollama()
    {after_set_up}
    started = time.monotonic()
    with braintrust.start_span(name="answer"):
        ollama.chat(model="llama3.2", messages=[{"role": "user", "content": "Why is the sky blue?"}])
        for chunk in ollama.generate(model="llama3.2", prompt="Count to 3", stream=True):
            pass
    print(json.dumps({"body_s": time.monotonic() - started, "done_at": time.time()}))
    {epilogue}
    """
)
# What Braintrust's docs tell short scripts to end with (not needed: exit waits for a login still
# under way). Tests use it to have the login and the upload done before exit.
FLUSH = "braintrust.flush()"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr_lines: list[str]
    body_s: float
    done_at: float  # time.time() when the program's last line ran
    exit_lag_s: float
    store: Path

    def rows(self) -> list[dict]:
        shown = subprocess.run(
            [str(Path(sys.executable).with_name("braintrust-ollama")), "traces", "show", "last",
             "--json"],
            env=_env(self.store.parent), capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return json.loads(shown.stdout)


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "BRAINTRUST_OLLAMA_HOME": str(home),
        "LANG": "C.UTF-8",
        **extra,
    }


def run_program(
    tmp_path: Path,
    ollama: FakeOllama,
    prologue: str = "",
    init: str = "",
    epilogue: str = "",
    after_set_up: str = "",
    **env: str,
) -> Run:
    """The quick-start program as a new user runs it: fresh HOME, no .env, given variables."""
    ollama.reply("/api/chat", Chat("Rayleigh scattering.", prompt_eval_count=14, eval_count=4))
    ollama.reply("/api/generate", Generate("1 2 3", prompt_eval_count=9, eval_count=5))
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "quick_start.py"
    code = PROGRAM.replace("{prologue}", prologue).replace("{epilogue}", epilogue)
    code = code.replace("{after_set_up}", after_set_up)
    if init:
        code = code.replace('init_logger(project="my-project")', f"init_logger({init})")
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script)],
        env=_env(home, OLLAMA_HOST=ollama.url, **env),
        cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    *_, body, at_exit = result.stdout.splitlines()
    timing = {**json.loads(body), **json.loads(at_exit)}
    return Run(
        returncode=result.returncode,
        stdout=result.stdout,
        stderr_lines=result.stderr.splitlines(),
        body_s=timing["body_s"],
        done_at=timing["done_at"],
        exit_lag_s=timing["exit_handlers_done_at"] - timing["done_at"],
        store=home / "traces.db",
    )


def braintrust_at(url: str) -> dict[str, str]:
    return {"BRAINTRUST_API_KEY": "sk-dummy", "BRAINTRUST_APP_URL": url, "BRAINTRUST_API_URL": url}


def assert_full_trace_stored(run: Run) -> list[dict]:
    rows = run.rows()
    (root,) = roots(rows)
    assert root["span_attributes"]["name"] == "answer"
    assert names(children_of(rows, root)) == ["ollama.chat", "ollama.generate"]
    chat, generate = only(rows, "ollama.chat"), only(rows, "ollama.generate")
    assert reply_of(chat)["content"] == "Rayleigh scattering."
    assert (chat["metrics"]["prompt_tokens"], chat["metrics"]["completion_tokens"]) == (14, 4)
    assert (
        generate["output"] == choices({"role": "assistant", "content": "1 2 3"})
        and generate["metrics"]["tokens"] == 14
    )
    assert all(r["project_id"] == PROJECT and r["metrics"].get("end") for r in rows)
    return rows


def store_line(run: Run) -> str:
    return (
        f"braintrust-ollama: traces go to the local store {run.store}"
        " (view them: braintrust-ollama traces show last)"
    )


def both_line(run: Run) -> str:
    return (
        f"braintrust-ollama: traces go to Braintrust (project {PROJECT}) and to the local store"
        f" {run.store} (view them: braintrust-ollama traces show last)"
    )


def away_line(run: Run, reason: str) -> str:
    return (
        f"braintrust-ollama: Braintrust is unreachable ({reason}): traces stay in the local store"
        f" {run.store} (send them later: braintrust-ollama traces push)"
    )


@pytest.fixture
def ollama() -> FakeOllama:
    with FakeOllama() as server:
        yield server


def test_no_key_goes_to_the_local_store_and_exits_at_once(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    run = run_program(tmp_path, ollama)
    assert run.stderr_lines == [store_line(run)]
    assert run.exit_lag_s < SHUTDOWN_S
    assert_full_trace_stored(run)


def test_with_a_key_spans_go_to_braintrust_and_to_the_local_copy(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    with FakeBraintrust("ok") as braintrust:
        run = run_program(
            tmp_path, ollama, init=GENEROUS, epilogue=FLUSH, **braintrust_at(braintrust.url)
        )
        sent = list(braintrust.rows)
    assert run.stderr_lines == [both_line(run)]
    assert run.exit_lag_s < SHUTDOWN_S
    stored = assert_full_trace_stored(run)
    # Braintrust got every span, under the project's real id, with the local copy's ids.
    assert {r["id"] for r in sent} == {r["id"] for r in stored}
    assert {r["project_id"] for r in sent} == {PROJECT_ID}
    assert sorted(names(sent)) == sorted(names(stored))


def test_with_a_key_masking_set_first_applies_to_braintrust_and_the_local_copy(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    mask = "braintrust.set_masking_function(lambda v: json.loads(json.dumps(v).replace('Rayleigh', '<masked>')))"
    with FakeBraintrust("ok") as braintrust:
        run = run_program(
            tmp_path,
            ollama,
            prologue=mask,
            init=GENEROUS,
            epilogue=FLUSH,
            **braintrust_at(braintrust.url),
        )
        sent = list(braintrust.rows)
    stored = run.rows()
    for rows in (sent, stored):
        chat = only(rows, "ollama.chat")
        assert reply_of(chat)["content"] == "<masked> scattering."
        assert chat["metrics"]["prompt_tokens"] == 14
        assert "Rayleigh" not in json.dumps(rows)


def test_without_a_local_copy_spans_go_to_braintrust_only(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    with FakeBraintrust("ok") as braintrust:
        run = run_program(
            tmp_path, ollama, init=GENEROUS + ", local_copy=False", epilogue=FLUSH,
            **braintrust_at(braintrust.url),
        )  # fmt: skip
        sent = list(braintrust.rows)
    assert run.stderr_lines == [f"braintrust-ollama: traces go to Braintrust (project {PROJECT})"]
    assert not run.store.exists()
    # Braintrust merges a span's rows by id (a root's end may come in a later batch).
    started = [r for r in sent if "span_attributes" in r]
    assert sorted(names(started)) == ["answer", "ollama.chat", "ollama.generate"]
    assert {r["id"] for r in sent} == {r["id"] for r in started}
    assert {r["project_id"] for r in sent} == {PROJECT_ID}
    assert only(sent, "ollama.chat")["metrics"]["prompt_tokens"] == 14


def test_without_a_local_copy_a_silent_braintrust_costs_the_timeout_and_one_line(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    with FakeBraintrust("hang") as braintrust:
        run = run_program(
            tmp_path, ollama, init='project="my-project", local_copy=False',
            **braintrust_at(braintrust.url),
        )  # fmt: skip
    assert run.stderr_lines == [
        f"braintrust-ollama: traces go to Braintrust (project {PROJECT})",
        f"braintrust-ollama: Braintrust is unreachable (no answer from {braintrust.url} within"
        " 5 s): traces are not kept (init_logger(local_copy=False))",
    ]
    assert run.body_s < TIMEOUT_S / 2
    assert run.exit_lag_s < TIMEOUT_S + SHUTDOWN_S


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("closed", "connection refused"),
        ("500", "HTTP 500 at login: the login failed"),
        ("401", "HTTP 401 at login: the API key was rejected"),
    ],
)
def test_braintrust_refusing_costs_one_line_and_at_most_the_timeout(
    tmp_path: Path, ollama: FakeOllama, closed_port: int, mode: str, reason: str
) -> None:
    init = GENEROUS
    if mode == "closed":
        url = f"http://127.0.0.1:{closed_port}"
        run = run_program(tmp_path, ollama, init=init, epilogue=FLUSH, **braintrust_at(url))
    else:
        with FakeBraintrust(mode) as braintrust:
            run = run_program(
                tmp_path, ollama, init=init, epilogue=FLUSH, **braintrust_at(braintrust.url)
            )
    assert run.stderr_lines == [both_line(run), away_line(run, reason)]
    # Exit waits for the login's own retries (about 3.5 s on newer braintrust, none on 0.10).
    assert run.body_s < TIMEOUT_S / 2
    assert run.exit_lag_s < TIMEOUT_S + SHUTDOWN_S
    assert_full_trace_stored(run)


def test_braintrust_never_answering_delays_exit_by_the_timeout_at_most(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    with FakeBraintrust("hang") as braintrust:
        run = run_program(tmp_path, ollama, **braintrust_at(braintrust.url))
        assert braintrust.first_request.is_set()  # the login was tried, and never answered
    reason = f"no answer from {braintrust.url} within {TIMEOUT_S:g} s"
    assert run.stderr_lines == [both_line(run), away_line(run, reason)]
    assert run.body_s < TIMEOUT_S / 2  # the traced calls never waited for the login
    assert TIMEOUT_S - 0.5 < run.exit_lag_s < TIMEOUT_S + SHUTDOWN_S
    assert_full_trace_stored(run)


def test_braintrust_failing_uploads_costs_one_line(tmp_path: Path, ollama: FakeOllama) -> None:
    with FakeBraintrust("logs-500") as braintrust:
        run = run_program(
            tmp_path, ollama, init=GENEROUS, epilogue=FLUSH, **braintrust_at(braintrust.url)
        )
        assert "/logs3" in braintrust.paths()
    assert run.stderr_lines[0] == both_line(run)
    assert len(run.stderr_lines) == 2
    assert run.stderr_lines[1].startswith(
        "braintrust-ollama: Braintrust did not take some traces (500: "
    )
    assert run.exit_lag_s < TIMEOUT_S + SHUTDOWN_S
    assert_full_trace_stored(run)


def test_demo_with_braintrust_unreachable_prints_its_tree_from_the_local_copy(
    tmp_path: Path, closed_port: int
) -> None:
    home = tmp_path / "home"
    demo = subprocess.run(
        [str(Path(sys.executable).with_name("braintrust-ollama")), "demo"],
        env=_env(home, OLLAMA_HOST=f"127.0.0.1:{closed_port}",
                 **braintrust_at(f"http://127.0.0.1:{closed_port}")),
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    store = home / "traces.db"
    where, away = demo.stderr.splitlines()
    assert where == (
        f"braintrust-ollama: traces go to Braintrust (project braintrust-ollama-demo) and to the"
        f" local store {store} (view them: braintrust-ollama traces show last)"
    )
    # "connection refused", or on a very busy machine "no answer ... within 5 s".
    assert away.startswith("braintrust-ollama: Braintrust is unreachable (")
    assert away.endswith(
        f"): traces stay in the local store {store} (send them later: braintrust-ollama traces push)"
    )
    assert "└── braintrust-ollama demo [task]" in demo.stdout
    assert demo.stdout.count("ollama.chat [llm]") == 3


def test_a_program_ending_before_the_login_is_over_says_so_not_unreachable(capsys) -> None:
    """Python 3.12+ starts no thread at exit: an `init_logger()` called then (in an exit handler)
    cannot start its login's thread, which is not Braintrust being away."""
    from braintrust_ollama.local.uplink import BraintrustUplink, _reason

    uplink = BraintrustUplink(app_url="http://127.0.0.1:9", kept_where="traces stay here")
    uplink._give_up(_reason(RuntimeError("can't create new thread at interpreter shutdown")))
    assert capsys.readouterr().err.splitlines() == [
        "braintrust-ollama: nothing was sent to Braintrust (the program ended before the login"
        " to Braintrust was over): traces stay here"
    ]
    assert uplink.away is not None


def test_with_a_key_rows_still_pending_at_exit_reach_braintrust(
    tmp_path: Path, ollama: FakeOllama
) -> None:
    """A program that outlives its login (here: `braintrust.flush()` right after set-up waits for
    it) and exits with its spans still pending: the local store writes them at exit and hands
    them to Braintrust, whose upload the exit waits for."""
    with FakeBraintrust("ok") as braintrust:
        run = run_program(
            tmp_path, ollama, init=GENEROUS, after_set_up=FLUSH, **braintrust_at(braintrust.url)
        )
        sent = list(braintrust.rows)
    assert run.stderr_lines == [both_line(run)]
    stored = assert_full_trace_stored(run)
    assert {r["id"] for r in sent} == {r["id"] for r in stored}
    assert run.exit_lag_s < SHUTDOWN_S


@pytest.mark.parametrize("local_copy", [True, False])
def test_a_program_ending_before_its_login_is_over_sends_every_span(
    tmp_path: Path, ollama: FakeOllama, local_copy: bool
) -> None:
    """A short script with no `braintrust.flush()`: it ends while the login to Braintrust is still
    under way (answered `LOGIN_DELAY_S` late). Exit waits for the login (at most the timeout) and
    Braintrust gets every span, on Python 3.12+ too, where no thread can start at exit."""
    init = f'project="my-project", local_copy={local_copy}'
    with FakeBraintrust("slow-login") as braintrust:
        run = run_program(tmp_path, ollama, init=init, **braintrust_at(braintrust.url))
        sent = list(braintrust.rows)
        received = braintrust.project_rows(PROJECT)
        login_answered_at = braintrust.login_answered_at
    assert login_answered_at is not None and login_answered_at > run.done_at  # ended first
    assert run.exit_lag_s < TIMEOUT_S + SHUTDOWN_S
    assert {r["project_id"] for r in sent} == {PROJECT_ID}
    assert sorted(names(received)) == ["answer", "ollama.chat", "ollama.generate"]
    assert all(r["metrics"].get("end") for r in received)
    if not local_copy:
        assert run.stderr_lines == [
            f"braintrust-ollama: traces go to Braintrust (project {PROJECT})"
        ]
        return
    assert run.stderr_lines == [both_line(run)]  # no traceback, no "nothing was sent"
    stored = assert_full_trace_stored(run)
    assert {r["id"] for r in received} == {r["id"] for r in stored}


# The parent sends a first span (its login is then over, and Braintrust's request pool has had
# work; `{prepare}`, left out to fork during the login), then each child makes a traced Ollama
# call under the parent's span, still open (its rows pending) while they run. Children must not
# send the parent's rows. (The parent calls no Ollama before forking: children sharing its open
# connection to Ollama would fail untraced too.)
FORKED_CHILDREN = textwrap.dedent(
    """
    import json, multiprocessing
    import braintrust, ollama
    import braintrust_ollama

    def ask(n):
        with braintrust.start_span(name=f"child {n}"):
            ollama.chat(model="llama3.2", messages=[{"role": "user", "content": f"Question {n}"}])
        return n

    if __name__ == "__main__":
        braintrust_ollama.setup_ollama()
        braintrust_ollama.init_logger(project="my-project")
        {prepare}
        fork = multiprocessing.get_context("fork")
        with braintrust.start_span(name="parent") as parent:
            parent.log(input="fan out")
            processes = [fork.Process(target=ask, args=(n,)) for n in (1, 2)]
            for process in processes:
                process.start()
            for process in processes:
                process.join()
            pool = fork.Pool(2)
            answered = pool.map(ask, [3, 4, 5])
            pool.close()  # the workers exit (and flush) instead of being killed
            pool.join()
            parent.log(output={"exitcodes": [p.exitcode for p in processes], "pool": answered})
        print(json.dumps({"exitcodes": [p.exitcode for p in processes], "pool": answered}))
    """
)
HANG_S = 60  # a program of forked children still running after this long hangs
PREPARE = 'with braintrust.start_span(name="prepare"):\n        pass\n    braintrust.flush()'


@pytest.mark.parametrize(
    ("when", "local_copy"),
    [("after the login", True), ("after the login", False),
     ("during the login", True), ("during the login", False)],
)  # fmt: skip
def test_forked_children_send_their_spans_once_and_not_the_parents_again(
    tmp_path: Path, ollama: FakeOllama, when: str, local_copy: bool
) -> None:
    """Children forked once the parent's login is over use it; children forked while it is under
    way log in themselves."""
    after_login = when == "after the login"
    ollama.reply("/api/chat", *[Chat("Rayleigh scattering.", prompt_eval_count=14)] * 5)
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "children.py"
    # A masking function set first applies to the children's rows too.
    mask = "braintrust.set_masking_function(lambda v: json.loads(json.dumps(v).replace('Rayleigh', '<masked>')))"
    code = FORKED_CHILDREN.replace('    braintrust_ollama.init_logger(project="my-project")',
                                   f"    {mask}\n    braintrust_ollama.init_logger("
                                   f'project="my-project", local_copy={local_copy})')  # fmt: skip
    script.write_text(code.replace("{prepare}", PREPARE if after_login else ""))
    with FakeBraintrust("ok" if after_login else "slow-login") as braintrust:
        started = time.monotonic()
        result = _run_process_group(
            [sys.executable, str(script)],
            env=_env(home, OLLAMA_HOST=ollama.url, **braintrust_at(braintrust.url)),
            cwd=tmp_path,
        )
        elapsed = time.monotonic() - started
        sent = list(braintrust.rows)
        received = braintrust.project_rows(PROJECT)
        logins = braintrust.paths().count("/api/apikey/login")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"exitcodes": [0, 0], "pool": [3, 4, 5]}
    where = f"Braintrust (project {PROJECT})"
    if local_copy:
        where += f" and to the local store {home / 'traces.db'} (view them: braintrust-ollama traces show last)"
    assert result.stderr.splitlines() == [f"braintrust-ollama: traces go to {where}"]
    assert elapsed < HANG_S  # each process's exit waits at most TIMEOUT_S for Braintrust

    # Braintrust holds every span of the parent and of each child, masked...
    expected = ["parent", *(f"child {n}" for n in range(1, 6)), *["ollama.chat"] * 5]
    expected += ["prepare"] if after_login else []
    assert sorted(names(received)) == sorted(expected)
    assert {r["id"] for r in sent} == {r["id"] for r in received}
    assert all(r["metrics"].get("end") for r in received)
    chats = [r for r in received if r["span_attributes"]["name"] == "ollama.chat"]
    assert [r["output"] for r in chats] == [
        choices({"role": "assistant", "content": "<masked> scattering."})
    ] * 5
    assert "Rayleigh" not in json.dumps(sent)
    # ... each sent once: no row twice, one first row per span (the rest are merges into it).
    assert len({json.dumps(r, sort_keys=True) for r in sent}) == len(sent)
    first_rows = Counter(r["id"] for r in sent if not r.get("_is_merge"))
    assert set(first_rows.values()) == {1}
    if after_login:
        assert logins == 1  # the children used the parent's login
    else:  # each process logged in at most once: the parent, 2 children, 2 pool workers
        assert 1 <= logins <= 5
    if local_copy:  # the local copy holds the same spans
        store = LocalStore(home / "traces.db")
        stored = [row for trace in store.traces() for row in store.rows(trace.root_span_id)]
        assert {r["id"] for r in stored} == {r["id"] for r in received}


def _run_process_group(args: list[str], **popen: Any) -> subprocess.CompletedProcess[str]:
    """Run a program that forks; if it hangs, end it and every process it forked, and fail."""
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        **popen,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"hung for {HANG_S} s:\n{stderr}")
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
