"""What this suite relies on in Braintrust beyond its documented API (`braintrust_ollama._braintrust`
and the delivery), checked against the installed release: a release that changes any of it fails
here, loudly, before it fails a user. See docs/CONTRACTS.md for the list."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import braintrust
import pytest
from braintrust import logger as bt_logger
from braintrust.logger import Attachment, BraintrustState
from braintrust.util import LazyValue
from braintrust_ollama import _braintrust
from braintrust_ollama._delivery import quiet
from support.fake_braintrust import API_KEY, FakeBraintrust


@pytest.fixture
def state(restore_braintrust: None) -> BraintrustState:
    """The process's Braintrust state, with a logger of its own for the test."""
    logger = braintrust.init_logger(project="contract", set_current=False)
    return logger.logging_state


@pytest.fixture
def api() -> Iterator[FakeBraintrust]:
    with FakeBraintrust() as fake:
        yield fake


def test_a_logger_names_its_rows_project_by_the_local_id_with_no_login(
    restore_braintrust: None,
) -> None:
    """`Logger._lazy_id`: the id rows resolve their `project_id` from."""
    logger = braintrust.init_logger(project="local-only", set_current=False)
    _braintrust.name_rows_by(logger, "local-only")
    rows: list[LazyValue[dict]] = []
    background = _braintrust.background_of(logger)
    background.log = lambda *lazy: rows.extend(lazy)  # the instance's own `log`, as routed
    try:
        logger.start_span(name="s").end()
    finally:
        del background.log
    resolved = [row.get() for row in rows]  # no network: no key, no login
    assert {row["project_id"] for row in resolved} == {"local-only"}
    assert not logger._lazy_id.has_succeeded  # exported spans name the project, as before a login
    assert json.loads(json.dumps(logger.export()))  # and export works


def test_braintrust_flush_calls_the_background_loggers_flush_on_the_instance(
    state: BraintrustState,
) -> None:
    """The router replaces `log` and `flush` on the very object `global_bg_logger()` returns;
    `braintrust.flush()` and every span's row go through them."""
    background = state.global_bg_logger()
    calls: list[str] = []
    background.flush = lambda batch_size=None: calls.append("flush")
    try:
        braintrust.flush()
    finally:
        del background.flush
    assert calls == ["flush"]


def test_masking_set_before_is_read_back_as_braintrust_applies_it(state: BraintrustState) -> None:
    """`_export_customizers` (braintrust >= 0.41) or `masking_function` (earlier)."""
    background = state.global_bg_logger()
    braintrust.set_masking_function(lambda v: json.loads(json.dumps(v).replace("secret", "***")))
    try:
        (mask,) = _braintrust.maskers_of(background)
        row = {"id": "r", "input": "my secret", "metadata": {"k": "secret"}, "tags": ["secret"]}
        assert mask(row)["input"] == "my ***" and mask(row)["metadata"] == {"k": "***"}
        target = BraintrustState().global_bg_logger()
        _braintrust.carry_masking(background, target)
        assert len(_braintrust.maskers_of(target)) == 1
    finally:
        braintrust.set_masking_function(None)


def test_a_logger_made_current_again_is_the_current_one(restore_braintrust: None) -> None:
    """`BraintrustState._cv_logger` and `_local_logger`."""
    mine = braintrust.init_logger(project="mine")
    braintrust.init_logger(project="someone else's")
    _braintrust.make_current(mine)
    assert braintrust.current_logger() is mine
    seen = []
    thread = threading.Thread(target=lambda: seen.append(braintrust.current_logger()))
    thread.start()
    thread.join()
    assert seen == [mine]  # in other threads too


def test_the_request_pool_is_braintrusts_and_posts_in_daemon_threads(
    state: BraintrustState, api: FakeBraintrust, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`braintrust.logger.HTTP_REQUEST_THREAD_POOL`, replaced by a pool of daemon threads; and
    `sync_flush`: a flush raises when a batch was not taken."""
    monkeypatch.setattr(bt_logger, "HTTP_REQUEST_THREAD_POOL", bt_logger.HTTP_REQUEST_THREAD_POOL)
    _braintrust.use_daemon_request_pool()
    state = BraintrustState()
    state.login(app_url=api.url, api_key=API_KEY)
    background = state.global_bg_logger()
    quiet(background)
    background.sync_flush = True
    row = {"id": "r1", "project_id": "p", "log_id": "g", "input": "x"}
    background.log(LazyValue(lambda: row, use_mutex=False))
    background.flush()
    assert [r["id"] for r in api.rows] == ["r1"]
    pool = bt_logger.HTTP_REQUEST_THREAD_POOL
    assert isinstance(pool, _braintrust.DaemonPool)
    thread = pool.submit(threading.current_thread).result(timeout=5)
    assert thread.name == "braintrust-ollama-post" and thread.daemon

    api.mode = "logs-500"
    background.log(LazyValue(lambda: {**row, "id": "r2"}, use_mutex=False))
    with pytest.raises(BaseException):  # noqa: B017  (an exception group, on newer releases)
        background.flush(1)
    assert [r["id"] for r in api.rows] == ["r1"]


def test_an_attachments_reference_is_the_dict_its_upload_sends(api: FakeBraintrust) -> None:
    """`Attachment.reference`: a pushed attachment keeps its stored key by changing it there."""
    attachment = Attachment(data=b"png", filename="a.png", content_type="image/png")
    reference = attachment.reference
    reference["key"] = "kept-key"  # type: ignore[typeddict-item]
    assert attachment.reference["key"] == "kept-key"
    assert attachment.debug_info()["reference"]["key"] == "kept-key"
