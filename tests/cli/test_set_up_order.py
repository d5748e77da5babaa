"""Whatever order a user calls the set-up functions in, traces land in the logger they chose.

`auto_instrument()` after `init_logger()` keeps the user's logger (Braintrust 0.10's pydantic-ai
set-up calls `braintrust.init_logger()`), and a masking function applies whether it was set
before or after `init_logger()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import braintrust
import ollama
import pytest
from braintrust import logger as bt_logger
from braintrust.logger import SpanImpl
from braintrust_ollama import auto_instrument, init_logger, unpatch_ollama
from braintrust_ollama.local import logger as local_logger
from braintrust_ollama.local.store import LocalStore
from support.ollama_server import Chat, FakeOllama
from support.spans import names, only


@pytest.fixture
def fresh_braintrust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Braintrust's process state as a new program has it, restored after the test."""
    monkeypatch.delenv("BRAINTRUST_API_KEY", raising=False)
    state = bt_logger._state
    for name in ("_global_bg_logger", "_local_logger", "current_logger"):
        if name in vars(state):
            monkeypatch.setattr(state, name, getattr(state, name))
    monkeypatch.setattr(local_logger, "_installed", None)
    current = getattr(state, "_cv_logger", None)
    token = current.set(None) if current is not None else None
    state._global_bg_logger = bt_logger.LazyValue(
        lambda: bt_logger._HTTPBackgroundLogger(bt_logger.LazyValue(lambda: None, use_mutex=True)),
        use_mutex=True,
    )
    yield
    if current is not None and token is not None:
        current.reset(token)
    state.reset_parent_state()


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("secret", "******")
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def _traced_chat(server: FakeOllama) -> str:
    """One request span with one traced Ollama chat under it; returns the trace id."""
    server.reply("/api/chat", Chat("the secret is safe", prompt_eval_count=11, eval_count=5))
    with braintrust.start_span(name="request") as root:
        root.log(input={"password": "secret"})
        ollama.Client(host=server.url).chat(
            model="llama3.2", messages=[{"role": "user", "content": "tell me the secret"}]
        )
    braintrust.flush()
    return cast(SpanImpl, root).root_span_id


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with FakeOllama() as fake:
        yield fake
    unpatch_ollama()


def test_auto_instrument_after_init_logger_keeps_the_users_logger(
    tmp_path: Path, fresh_braintrust: None, server: FakeOllama
) -> None:
    logger = init_logger(project="mine", path=tmp_path / "traces.db")
    background = bt_logger._state.global_bg_logger()
    results = auto_instrument()
    assert results["ollama"] is True
    assert braintrust.current_logger() is logger
    assert bt_logger._state.global_bg_logger() is background

    rows = LocalStore(tmp_path / "traces.db").rows(_traced_chat(server))
    assert names(rows) == ["request", "ollama.chat"]
    assert only(rows, "ollama.chat")["metrics"]["prompt_tokens"] == 11


def _mask_before(path: Path) -> None:
    braintrust.set_masking_function(_mask)
    init_logger(project="mine", path=path)


def _mask_after(path: Path) -> None:
    init_logger(project="mine", path=path)
    braintrust.set_masking_function(_mask)


@pytest.mark.parametrize("set_up", [_mask_before, _mask_after], ids=["before", "after"])
def test_masking_applies_whichever_order_it_was_set_in(
    tmp_path: Path,
    fresh_braintrust: None,
    server: FakeOllama,
    set_up: Callable[[Path], None],
) -> None:
    set_up(tmp_path / "traces.db")
    auto_instrument()
    try:
        rows = LocalStore(tmp_path / "traces.db").rows(_traced_chat(server))
    finally:
        braintrust.set_masking_function(None)
    assert only(rows, "request")["input"] == {"password": "******"}
    chat = only(rows, "ollama.chat")
    assert chat["output"]["content"] == "the ****** is safe"
    assert "secret" not in str(rows)
