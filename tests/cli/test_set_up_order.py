"""Whatever order a user calls the set-up functions in, traces land in the logger they chose.

`auto_instrument()` after `init_logger()` keeps the user's logger (Braintrust 0.10's pydantic-ai
set-up calls `braintrust.init_logger()`), and a masking function applies whether it was set
before or after `init_logger()`. Each case is a user's program run as a subprocess with no key
(`auto_instrument()` patches the process for good), its trace read back from the local store.
"""

from __future__ import annotations

import pytest
from cli.test_quick_starts import run_offline
from support.runner import User
from support.spans import names, only

CHAT = """
with braintrust.start_span(name="request") as root:
    root.log(input={"password": "secret"})
    ollama.chat(model="llama3.2", messages=[{"role": "user", "content": "tell me the secret"}])
"""

MASK = """
def mask(value):
    if isinstance(value, str):
        return value.replace("secret", "******")
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value
"""


def program(*steps: str) -> str:
    head = "import braintrust, ollama\nfrom braintrust_ollama import *\n"
    return head + MASK + "\n".join(steps) + "\nsetup_ollama()\n" + CHAT


def test_auto_instrument_after_init_logger_keeps_the_users_logger(user: User) -> None:
    run_offline(
        user,
        program(
            'logger = init_logger(project="mine")',
            "auto_instrument()",
            "assert braintrust.current_logger() is logger",
        ),
    )
    rows = user.last_trace()
    assert names(rows) == ["request", "ollama.chat"]
    assert only(rows, "ollama.chat")["metrics"]["completion_tokens"] > 0
    assert {r["project_id"] for r in rows} == {"mine"}


@pytest.mark.parametrize(
    "steps",
    [
        ("braintrust.set_masking_function(mask)", 'init_logger(project="mine")'),
        ('init_logger(project="mine")', "braintrust.set_masking_function(mask)"),
        (
            "braintrust.set_masking_function(mask)",
            'init_logger(project="mine")',
            "auto_instrument()",
        ),
    ],
    ids=["before", "after", "before-then-auto-instrument"],
)
def test_masking_applies_whichever_order_it_was_set_in(user: User, steps: tuple[str, ...]) -> None:
    run_offline(user, program(*steps))
    rows = user.last_trace()
    assert only(rows, "request")["input"] == {"password": "******"}
    chat = only(rows, "ollama.chat")
    assert chat["input"][0]["content"] == "tell me the ******"
    assert "secret" not in str(rows)
