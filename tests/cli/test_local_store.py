"""`init_local_logger()` and the store, in process: the rows Braintrust would receive, merged."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import cast

import braintrust
import pytest
from braintrust.logger import SpanImpl
from braintrust.span_types import SpanTypeAttribute
from braintrust_ollama.local import logger as local_logger
from braintrust_ollama.local.replay import load_recordings, replay_client
from braintrust_ollama.local.store import LocalStore, default_store_path
from support.spans import children_of, only


def test_init_local_logger_stores_one_merged_row_per_span(
    tmp_path: Path,
    restore_braintrust: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UV_RUN_RECURSION_DEPTH", raising=False)  # the hint names `uv run` under it
    monkeypatch.delenv("UV", raising=False)
    store_path = tmp_path / "traces.db"
    local_logger.init_local_logger("unit", path=store_path)
    with braintrust.start_span(name="request", type=SpanTypeAttribute.TASK) as root:
        root.log(input={"question": "why?"})
        braintrust.flush()  # the start of the span is written before its end
        with root.start_span(name="step", type=SpanTypeAttribute.LLM) as step:
            step.log(output="because", metrics={"prompt_tokens": 3, "completion_tokens": 2})
        root.log(output={"answer": "because"})
    braintrust.flush()
    root_span_id = cast(SpanImpl, root).root_span_id

    store = LocalStore(store_path)
    rows = store.rows(root_span_id)
    assert len(rows) == 2
    request = only(rows, "request")
    assert request["input"] == {"question": "why?"} and request["output"] == {"answer": "because"}
    assert request["project_id"] == "unit" and "_is_merge" not in request
    assert request["metrics"]["end"] >= request["metrics"]["start"]
    assert children_of(rows, request) == [only(rows, "step")]
    assert only(rows, "step")["metrics"]["prompt_tokens"] == 3
    assert store.resolve("last") == root_span_id
    (trace,) = store.traces()
    assert (trace.name, trace.spans, trace.tokens, trace.errors) == ("request", 2, 0, 0)
    assert capsys.readouterr().err == (
        f"braintrust-ollama: traces go to the local store {store_path}"
        " (view them: braintrust-ollama traces show last)\n"
    )


def test_store_location_follows_braintrust_ollama_home_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRAINTRUST_OLLAMA_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "braintrust-ollama" / "traces.db"
    monkeypatch.setenv("BRAINTRUST_OLLAMA_HOME", str(tmp_path / "mine"))
    assert default_store_path() == tmp_path / "mine" / "traces.db"


def test_replay_answers_a_request_it_has_no_recording_for_with_a_404() -> None:
    import ollama

    client = replay_client("http://127.0.0.1:11434", load_recordings()[-1:])  # the embed only
    with pytest.raises(ollama.ResponseError) as raised:
        client.chat(model="qwen3.6:latest", messages=[])
    assert raised.value.status_code == 404
    assert "replay expects /api/embed all-minilm" in str(raised.value)


def test_every_recording_but_the_hand_made_embed_names_its_source() -> None:
    data = resources.files("braintrust_ollama.local.recordings").joinpath("ollama_demo.json")
    interactions = json.loads(data.read_text("utf-8"))["interactions"]
    assert [i["step"] for i in interactions if i["hand_made"]] == ["embed"]
    for recorded in (i for i in interactions if not i["hand_made"]):
        assert recorded["source"]["license"] == "Apache-2.0"
        assert recorded["source"]["repository"] in (
            "Arize-ai/openinference",
            "traceloop/openllmetry",
        )
        assert len(recorded["source"]["commit"]) == 40
    assert [r.step for r in load_recordings()] == [i["step"] for i in interactions]
