"""`braintrust_ollama.init_logger()` in a user's program, with Braintrust there, away or refusing,
and with a local copy that cannot be written.

Each test runs the README's quick-start program as a subprocess with a fresh HOME and
BRAINTRUST_OLLAMA_HOME, against an in-process Ollama (`FakeOllama`) and, with a key, a stand-in
for Braintrust's API on 127.0.0.1 (`FakeBraintrust`) or a closed port. The program prints how
long its traced calls and its `braintrust.flush()` took, the time its last line ran, and the
time its exit handlers (Braintrust's and this suite's) were done: the difference is what tracing
adds to its exit. (Interpreter teardown after that depends on how many modules were imported,
not on Braintrust.)

The bounds checked: `braintrust.flush()` waits at most `timeout_s`, and the exit at most
`timeout_s` + 1 s; once Braintrust counts as away, neither waits for it; a local copy that fails
costs a flush or the exit at most 1 s, and never delays, gates or drops what Braintrust gets.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.fake_braintrust import PROJECT_ID, FakeBraintrust
from support.ollama_server import Chat, FakeOllama, Generate
from support.runner import User
from support.spans import children_of, choices, names, only, reply_of, roots, stored_rows

TIMEOUT_S = 5.0  # init_logger's documented default: how long a flush waits for Braintrust
SHORT_S = 2.0  # the timeout the failure-mode tests set, to keep them short
SLACK_S = 1.0  # a busy machine's scheduling, and the local store's last write
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
    body_s = time.monotonic() - started
    flushes = []
    for _ in range({flushes}):
        before = time.monotonic()
        braintrust.flush()
        flushes.append(time.monotonic() - before)
    print(json.dumps({"body_s": body_s, "flush_s": flushes, "done_at": time.time()}))
    {epilogue}
    """
)
# What Braintrust's docs tell short scripts to end with (not needed: exit waits for a login still
# under way). Tests use it to have the login and the upload done before exit.
FLUSH = "braintrust.flush()"


@dataclass
class Run:
    user: User
    stdout: str
    stderr_lines: list[str]
    body_s: float
    flush_s: list[float]
    done_at: float  # time.time() when the program's last line ran
    exit_lag_s: float
    store: Path

    def rows(self) -> list[dict]:
        return self.user.last_trace()


def run_program(
    user: User,
    ollama: FakeOllama,
    prologue: str = "",
    init: str = "",
    epilogue: str = "",
    after_set_up: str = "",
    flushes: int = 0,
    store_home: Path | None = None,
    **env: str,
) -> Run:
    """The quick-start program as a new user runs it (support/runner.py), with `env` set."""
    ollama.reply("/api/chat", Chat("Rayleigh scattering.", prompt_eval_count=14, eval_count=4))
    ollama.reply("/api/generate", Generate("1 2 3", prompt_eval_count=9, eval_count=5))
    user.ollama_host = ollama.url
    code = PROGRAM.replace("{prologue}", prologue).replace("{epilogue}", epilogue)
    code = code.replace("{after_set_up}", after_set_up).replace("{flushes}", str(flushes))
    if init:
        code = code.replace('init_logger(project="my-project")', f"init_logger({init})")
    if store_home is not None:
        env["BRAINTRUST_OLLAMA_HOME"] = str(store_home)
    result = user.run_python(code, name="quick_start.py", env=env)
    assert result.returncode == 0, result.stderr
    *_, body, at_exit = result.stdout.splitlines()
    timing = {**json.loads(body), **json.loads(at_exit)}
    return Run(
        user=user,
        stdout=result.stdout,
        stderr_lines=result.stderr.splitlines(),
        body_s=timing["body_s"],
        flush_s=timing["flush_s"],
        done_at=timing["done_at"],
        exit_lag_s=timing["exit_handlers_done_at"] - timing["done_at"],
        store=store_home / "traces.db" if store_home else user.store_path,
    )


def braintrust_at(url: str) -> dict[str, str]:
    return {"BRAINTRUST_API_KEY": "sk-dummy", "BRAINTRUST_APP_URL": url, "BRAINTRUST_API_URL": url}


def assert_full_trace(rows: list[dict], project_id: str = PROJECT) -> list[dict]:
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
    assert all(r["project_id"] == project_id and r["metrics"].get("end") for r in rows)
    return rows


def assert_full_trace_stored(run: Run) -> list[dict]:
    return assert_full_trace(run.rows())


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
        f"braintrust-ollama: Braintrust is not taking traces ({reason}): nothing waits for it now,"
        " and it is tried again in the background; spans it has not taken are in the local store"
        f" {run.store} (braintrust-ollama traces push sends them)"
    )


@pytest.fixture
def ollama() -> FakeOllama:
    with FakeOllama() as server:
        yield server


def test_no_key_goes_to_the_local_store_and_exits_at_once(user: User, ollama: FakeOllama) -> None:
    run = run_program(user, ollama)
    assert run.stderr_lines == [store_line(run)]
    assert run.exit_lag_s < SLACK_S
    assert_full_trace_stored(run)


def test_with_a_key_spans_go_to_braintrust_and_to_the_local_copy(
    user: User, ollama: FakeOllama
) -> None:
    with FakeBraintrust("ok") as braintrust:
        run = run_program(user, ollama, init=GENEROUS, flushes=1, **braintrust_at(braintrust.url))
        sent = list(braintrust.rows)
        received = braintrust.project_rows(PROJECT)
    assert run.stderr_lines == [both_line(run)]
    assert run.exit_lag_s < SLACK_S
    stored = assert_full_trace_stored(run)
    # Braintrust got every span, under the project's real id, with the local copy's ids.
    assert_full_trace(received, project_id=PROJECT_ID)
    assert {r["id"] for r in sent} == {r["id"] for r in stored}
    assert {r["project_id"] for r in sent} == {PROJECT_ID}


def test_with_a_key_masking_set_first_applies_to_braintrust_and_the_local_copy(
    user: User, ollama: FakeOllama
) -> None:
    mask = "braintrust.set_masking_function(lambda v: json.loads(json.dumps(v).replace('Rayleigh', '<masked>')))"
    with FakeBraintrust("ok") as braintrust:
        run = run_program(
            user, ollama, prologue=mask, init=GENEROUS, flushes=1,
            **braintrust_at(braintrust.url),
        )  # fmt: skip
        sent = list(braintrust.rows)
    stored = run.rows()
    for rows in (sent, stored):
        chat = only(rows, "ollama.chat")
        assert reply_of(chat)["content"] == "<masked> scattering."
        assert chat["metrics"]["prompt_tokens"] == 14
        assert "Rayleigh" not in json.dumps(rows)


def test_without_a_local_copy_spans_go_to_braintrust_only(user: User, ollama: FakeOllama) -> None:
    with FakeBraintrust("ok") as braintrust:
        run = run_program(
            user, ollama, init=GENEROUS + ", local_copy=False", flushes=1,
            **braintrust_at(braintrust.url),
        )  # fmt: skip
        received = braintrust.project_rows(PROJECT)
    assert run.stderr_lines == [f"braintrust-ollama: traces go to Braintrust (project {PROJECT})"]
    assert not run.store.exists()
    assert_full_trace(received, project_id=PROJECT_ID)


# --- Braintrust away: every failure mode, bounded ---------------------------------------------

FAILURES = {
    # mode: (the timeout set, the reason the line gives). Where Braintrust answers (refusing),
    # the timeout outlasts its own retries (about 3.5 s), and the reason is its answer.
    "closed": (10.0, "connection refused"),
    "hang": (SHORT_S, "no answer from {url} within 2 s"),  # the login never answers
    "500": (10.0, "HTTP 500 at login"),
    "logs-hang": (SHORT_S, "no answer from {url} within 2 s"),  # uploads never answer
    "logs-500": (10.0, "HTTP 500 at uploads"),
}


@pytest.mark.parametrize("mode", list(FAILURES))
@pytest.mark.parametrize("flushes", [0, 2], ids=["exit only", "two flushes, then exit"])
def test_braintrust_away_costs_one_line_a_flush_at_most_the_timeout_and_then_nothing(
    user: User, ollama: FakeOllama, closed_port: int, mode: str, flushes: int
) -> None:
    timeout, reason = FAILURES[mode]
    init = f'project="my-project", timeout_s={timeout}'
    if mode == "closed":
        url = f"http://127.0.0.1:{closed_port}"
        run = run_program(user, ollama, init=init, flushes=flushes, **braintrust_at(url))
    else:
        with FakeBraintrust(mode) as braintrust:
            url = braintrust.url
            run = run_program(user, ollama, init=init, flushes=flushes, **braintrust_at(url))
    print(f"\n{mode}: flushes {[f'{s:.2f}' for s in run.flush_s]} s, exit {run.exit_lag_s:.2f} s")
    assert run.stderr_lines == [both_line(run), away_line(run, reason.format(url=url))]
    assert run.body_s < SHORT_S / 2  # the traced calls never waited for Braintrust
    if flushes:
        first, second = run.flush_s
        assert first < timeout + SLACK_S
        # Braintrust counts as away: nothing waits for it any more. Waiting would cost what the
        # first flush cost (2 s to 3.5 s here); the local copy's write, a loaded machine's
        # scheduling, at most SLACK_S.
        assert second < SLACK_S
        assert run.exit_lag_s < SLACK_S
    else:
        assert run.exit_lag_s < timeout + SLACK_S
    assert_full_trace_stored(run)


def test_a_rejected_key_costs_one_line_and_no_wait(user: User, ollama: FakeOllama) -> None:
    with FakeBraintrust("401") as braintrust:
        run = run_program(user, ollama, init=GENEROUS, flushes=1, **braintrust_at(braintrust.url))
        logins = braintrust.paths().count("/api/apikey/login")
    assert run.stderr_lines == [
        both_line(run),
        "braintrust-ollama: Braintrust rejected the API key (HTTP 401 at login: the API key was"
        " rejected): nothing is sent to it; spans it has not taken are in the local store"
        f" {run.store} (braintrust-ollama traces push sends them)",
    ]
    assert logins == 1  # not tried again
    assert run.exit_lag_s < SLACK_S
    assert_full_trace_stored(run)


def test_without_a_local_copy_a_silent_braintrust_costs_the_timeout_and_one_line(
    user: User, ollama: FakeOllama
) -> None:
    with FakeBraintrust("hang") as braintrust:
        run = run_program(
            user, ollama, init='project="my-project", local_copy=False',
            **braintrust_at(braintrust.url),
        )  # fmt: skip
    assert run.stderr_lines == [
        f"braintrust-ollama: traces go to Braintrust (project {PROJECT})",
        f"braintrust-ollama: Braintrust is not taking traces (no answer from {braintrust.url}"
        " within 5 s): nothing waits for it now, and it is tried again in the background; spans"
        " it has not taken by exit are lost (init_logger(local_copy=False))",
    ]
    assert run.body_s < TIMEOUT_S / 2
    assert TIMEOUT_S - 0.5 < run.exit_lag_s < TIMEOUT_S + SLACK_S


def test_the_braintrust_address_is_said_without_its_credentials(
    user: User, ollama: FakeOllama
) -> None:
    with FakeBraintrust("hang") as braintrust:
        host = braintrust.url.removeprefix("http://")
        url = f"http://admin:SECRET@{host}/path?token=SECRET2"
        run = run_program(user, ollama, init=f'project="my-project", timeout_s={SHORT_S}',
                          **braintrust_at(url))  # fmt: skip
    assert run.stderr_lines[1] == away_line(run, f"no answer from http://{host} within 2 s")
    assert "SECRET" not in "\n".join(run.stderr_lines) and "admin" not in run.stdout


# A server: one request every 0.1 s while Braintrust's uploads are slower than the timeout for
# `SLOW_FOR_S`, then normal; the program flushes after each request, as a worker may.
SERVER = """
import json, sys, time
import braintrust, braintrust_ollama
braintrust_ollama.init_logger(project="my-project", timeout_s=1)
flushes = []
for n in range(int(sys.argv[1])):
    with braintrust.start_span(name=f"request {n}") as span:
        span.log(input=n, output=n * n)
    before = time.monotonic()
    braintrust.flush()
    flushes.append(time.monotonic() - before)
    time.sleep(0.1)  # the next request comes in
print(json.dumps({"max_flush_s": max(flushes)}), flush=True)
"""
SLOW_FOR_S = 3.0


@pytest.mark.parametrize("fault", ["slow uploads", "gone mid-run"])
def test_a_server_loses_nothing_when_braintrust_is_slow_or_gone_for_a_while(
    user: User, fault: str
) -> None:
    with FakeBraintrust("ok") as braintrust:
        server = user.start_python(
            SERVER, "60", name="server.py", env=braintrust_at(braintrust.url)
        )
        while not braintrust.rows:  # the server runs, and Braintrust takes its spans
            assert server.poll() is None, server.communicate()
            time.sleep(0.05)
        if fault == "slow uploads":
            braintrust.logs_delay_s = 1.5  # each upload answered 1.5 s late: past the 1 s bound
        else:
            braintrust.mode = "500"  # every request refused
        time.sleep(SLOW_FOR_S)
        braintrust.logs_delay_s, braintrust.mode = 0.0, "ok"
        stdout, stderr = server.communicate(timeout=60)
        received = {r["span_attributes"]["name"] for r in braintrust.project_rows(PROJECT)}
    assert server.returncode == 0, stderr
    assert received == {f"request {n}" for n in range(60)}  # every span, after the fault too
    lines = stderr.splitlines()
    assert len(lines) == 2 and "Braintrust is not taking traces (" in lines[1]
    assert json.loads(stdout)["max_flush_s"] < 1 + SLACK_S  # no flush waited past its bound


# --- The local copy failing never touches what Braintrust gets -------------------------------


def _unwritable(home: Path, how: str) -> Path:
    """A store home where the store cannot be written: a file where its directory should be,
    or a store file that is not a database."""
    home = home / "store-home"
    if how == "not a directory":
        home.write_text("a file where the store's directory should be")
    else:
        home.mkdir(mode=0o700)
        (home / "traces.db").write_bytes(os.urandom(8192))
        (home / "traces.db").chmod(0o600)
    return home


@pytest.mark.parametrize("how", ["not a directory", "not a database"])
@pytest.mark.parametrize("key", [True, False], ids=["with a key", "no key"])
def test_a_local_copy_that_cannot_be_written_costs_at_most_1_s_and_one_true_line(
    user: User, ollama: FakeOllama, how: str, key: bool
) -> None:
    store_home = _unwritable(user.home, how)
    sent: list[dict] = []
    with FakeBraintrust("ok") as braintrust:
        env = braintrust_at(braintrust.url) if key else {}
        run = run_program(user, ollama, init=GENEROUS, flushes=2, store_home=store_home, **env)
        sent = braintrust.project_rows(PROJECT)
    print(f"\n{how}: flushes {[f'{s:.2f}' for s in run.flush_s]} s, exit {run.exit_lag_s:.2f} s")
    where, failing, *rest = run.stderr_lines
    assert where == (both_line(run) if key else store_line(run))
    reason = "NotADirectoryError" if how == "not a directory" else "DatabaseError"
    assert failing.startswith(
        f"braintrust-ollama: the local store {run.store} cannot be written ({reason}: "
    )
    assert failing.endswith(
        "new traces wait in memory (at most 100000 rows) and are written when it can be; those"
        " still waiting at exit are lost from it"
        + (" (Braintrust still gets them)" if key else " (they are not kept)")
    )
    (lost,) = rest  # the count, at exit
    assert re.fullmatch(
        rf"braintrust-ollama: [1-9]\d* trace rows were not written to the local store"
        rf" {re.escape(str(run.store))}" + (r" \(Braintrust got them\)" if key else ""),
        lost,
    )
    assert all(s < 1 + SLACK_S for s in run.flush_s)
    assert run.exit_lag_s < 1 + SLACK_S
    if key:  # Braintrust got every span, as with a store that works
        assert_full_trace(sent, project_id=PROJECT_ID)


# Fills the disk (a file size limit, as a full disk refuses writes), logs, flushes, makes room
# again, logs and flushes: the spans logged while full are written once there is room.
FULL_DISK = """
import json, resource, signal, time
import braintrust, braintrust_ollama
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
braintrust_ollama.init_logger(project="my-project")
with braintrust.start_span(name="before"):
    pass
braintrust.flush()
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # the disk is full
flushes = []
for n in range(3):
    with braintrust.start_span(name=f"while full {n}") as span:
        span.log(input="x" * 100_000)
    before = time.monotonic()
    braintrust.flush()
    flushes.append(time.monotonic() - before)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again
with braintrust.start_span(name="after"):
    pass
before = time.monotonic()
braintrust.flush()
print(json.dumps({"while_full_s": flushes, "after_s": time.monotonic() - before}))
"""


def test_a_full_disk_costs_each_flush_at_most_1_s_and_the_store_recovers_by_itself(
    user: User,
) -> None:
    done = user.run_python(FULL_DISK, name="full.py")
    assert done.returncode == 0, done.stderr
    timing = json.loads(done.stdout)
    print(f"\nfull disk: {timing}")
    assert all(s < 1 + SLACK_S for s in timing["while_full_s"])
    _, failing = done.stderr.splitlines()  # said once, and nothing lost at the end
    assert "cannot be written (" in failing
    stored = sorted(t.name for t in user.store.traces())
    assert stored == sorted(["before", "after", *(f"while full {n}" for n in range(3))])


# --- Short scripts, and processes ------------------------------------------------------------


def test_demo_with_braintrust_unreachable_prints_its_tree_from_the_local_copy(
    user: User, closed_port: int
) -> None:
    user.ollama_host = f"127.0.0.1:{closed_port}"
    demo = user.cli("demo", env=braintrust_at(f"http://127.0.0.1:{closed_port}"))
    assert demo.returncode == 0, demo.stderr
    store = user.store_path
    where, away = demo.stderr.splitlines()
    assert where == (
        f"braintrust-ollama: traces go to Braintrust (project braintrust-ollama-demo) and to the"
        f" local store {store} (view them: braintrust-ollama traces show last)"
    )
    # "connection refused", or on a very busy machine "no answer ... within 5 s".
    assert away.startswith("braintrust-ollama: Braintrust is not taking traces (")
    assert away.endswith(
        f"spans it has not taken are in the local store {store} (braintrust-ollama traces push"
        " sends them)"
    )
    assert "└── braintrust-ollama demo [task]" in demo.stdout
    assert demo.stdout.count("ollama.chat [llm]") == 3


def test_with_a_key_rows_still_pending_at_exit_reach_braintrust(
    user: User, ollama: FakeOllama
) -> None:
    """A program that outlives its login and exits with its spans still pending: the exit
    hands them to Braintrust and waits for the upload."""
    with FakeBraintrust("ok") as braintrust:
        run = run_program(
            user, ollama, init=GENEROUS, after_set_up="time.sleep(0.5)",
            **braintrust_at(braintrust.url),
        )  # fmt: skip
        sent = list(braintrust.rows)
    assert run.stderr_lines == [both_line(run)]
    stored = assert_full_trace_stored(run)
    assert {r["id"] for r in sent} == {r["id"] for r in stored}
    assert run.exit_lag_s < SLACK_S


@pytest.mark.parametrize("local_copy", [True, False])
def test_a_program_ending_before_its_login_is_over_sends_every_span(
    user: User, ollama: FakeOllama, local_copy: bool
) -> None:
    """A short script with no `braintrust.flush()`: it ends while the login to Braintrust is still
    under way (answered `LOGIN_DELAY_S` late). Exit waits for the login (at most the timeout) and
    Braintrust gets every span, on Python 3.12+ too, where no thread can start at exit."""
    init = f'project="my-project", local_copy={local_copy}'
    with FakeBraintrust("slow-login") as braintrust:
        run = run_program(user, ollama, init=init, **braintrust_at(braintrust.url))
        sent = list(braintrust.rows)
        received = braintrust.project_rows(PROJECT)
        login_answered_at = braintrust.login_answered_at
    assert login_answered_at is not None and login_answered_at > run.done_at  # ended first
    assert run.exit_lag_s < TIMEOUT_S + SLACK_S
    assert {r["project_id"] for r in sent} == {PROJECT_ID}
    assert_full_trace(received, project_id=PROJECT_ID)
    if not local_copy:
        assert run.stderr_lines == [
            f"braintrust-ollama: traces go to Braintrust (project {PROJECT})"
        ]
        return
    assert run.stderr_lines == [both_line(run)]  # no traceback, no "not taking traces"
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
    user: User, ollama: FakeOllama, when: str, local_copy: bool
) -> None:
    """Children forked once the parent's login is over use it; children forked while it is under
    way log in themselves."""
    after_login = when == "after the login"
    ollama.reply("/api/chat", *[Chat("Rayleigh scattering.", prompt_eval_count=14)] * 5)
    user.ollama_host = ollama.url
    # A masking function set first applies to the children's rows too.
    mask = "braintrust.set_masking_function(lambda v: json.loads(json.dumps(v).replace('Rayleigh', '<masked>')))"
    code = FORKED_CHILDREN.replace('    braintrust_ollama.init_logger(project="my-project")',
                                   f"    {mask}\n    braintrust_ollama.init_logger("
                                   f"{GENEROUS}, local_copy={local_copy})")  # fmt: skip
    code = code.replace("{prepare}", PREPARE if after_login else "")
    with FakeBraintrust("ok" if after_login else "slow-login") as braintrust:
        # A program of forked children still running after HANG_S fails the test, killed with
        # every process it started. Braintrust answers: GENEROUS's timeout, so that a loaded
        # machine cannot make a process's exit count it away (5 s, by default, was seen to).
        result = user.run_python(
            code, name="children.py", env=braintrust_at(braintrust.url), timeout=HANG_S
        )
        sent = list(braintrust.rows)
        received = braintrust.project_rows(PROJECT)
        logins = braintrust.paths().count("/api/apikey/login")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"exitcodes": [0, 0], "pool": [3, 4, 5]}
    where = f"Braintrust (project {PROJECT})"
    if local_copy:
        where += f" and to the local store {user.store_path} (view them: braintrust-ollama traces show last)"
    assert result.stderr.splitlines() == [f"braintrust-ollama: traces go to {where}"]

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
        stored = stored_rows(user.store)
        assert {r["id"] for r in stored} == {r["id"] for r in received}


# A parent that already counts Braintrust as away (its login never answered), then runs a Pool.
CHILDREN_OF_AN_AWAY_PARENT = """
import json, multiprocessing, time
import braintrust, braintrust_ollama

def task(n):
    with braintrust.start_span(name=f"task {n}"):
        return n

if __name__ == "__main__":
    braintrust_ollama.init_logger(project="my-project", timeout_s=2)
    with braintrust.start_span(name="parent"):
        pass
    braintrust.flush()  # 2 s: Braintrust never answers, and counts as away from now on
    started = time.monotonic()
    pool = multiprocessing.get_context("fork").Pool(4)
    done = pool.map(task, range(8))
    pool.close()
    pool.join()  # each worker exits, flushing: none waits for Braintrust again
    print(json.dumps({"done": sum(done), "pool_s": time.monotonic() - started}))
"""


def test_children_of_a_parent_that_counts_braintrust_away_neither_wait_nor_repeat_its_line(
    user: User,
) -> None:
    with FakeBraintrust("hang") as braintrust:
        result = user.run_python(
            CHILDREN_OF_AN_AWAY_PARENT, name="pool.py", env=braintrust_at(braintrust.url),
            timeout=HANG_S,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    print(f"\nPool of 4 after Braintrust went away: {outcome['pool_s']:.2f} s")
    assert outcome["done"] == sum(range(8))
    # The program's timeout_s: what one worker waiting for Braintrust at its exit would take.
    assert outcome["pool_s"] < 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "Braintrust is not taking traces (" in lines[1]  # the parent's
    stored = user.store.traces()
    assert sorted(t.name for t in stored) == sorted(["parent", *(f"task {n}" for n in range(8))])
