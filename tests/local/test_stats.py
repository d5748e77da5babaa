"""`braintrust-ollama traces stats`: one row per model from the local store, fast on a big one."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import braintrust
import ollama
import pytest
from braintrust_ollama.local import logger as local_logger
from braintrust_ollama.local.stats import ModelSpan, ModelStats, model_stats
from braintrust_ollama.local.store import LocalStore
from support.ollama_server import Chat, Error, FakeOllama, Generate
from support.runner import User

DAY = 86_400.0


def span(i: int, model: str | None, start: float, seconds: float, **fields: Any) -> dict[str, Any]:
    """A stored Ollama span row, as Braintrust's logger writes one (`fields` go in metadata,
    `metrics`, or at the top for `error`)."""
    metrics = {"start": start, "end": start + seconds, **fields.pop("metrics", {})}
    metadata = {
        "provider": "ollama",
        **({"model": model} if model else {}),
        **fields.pop("metadata", {}),
    }
    return {
        "id": f"span-{i}",
        "span_id": f"span-{i}",
        "root_span_id": f"trace-{i}",
        "created": "2026-08-12T10:11:12Z",
        "span_attributes": {"name": "ollama.chat", "type": "llm"},
        "metadata": metadata,
        "metrics": metrics,
        **fields,
    }


def test_model_stats_gives_one_row_per_model_busiest_first():
    spans = [
        *(
            ModelSpan("llama3.2:1b", float(s), False, 100, 20, 40.0 + s, s == 1, s == 2, False)
            for s in range(1, 21)
        ),
        ModelSpan("qwen3:8b", 2.0, True, None, None, None, False, False, False),
        ModelSpan("qwen3:8b", 4.0, False, 3000, 500, 12.5, True, False, True),
        ModelSpan("all-minilm", None, False, 7, None, None, False, False, False),
        ModelSpan(
            "all-minilm", float("nan"), False, "7", None, True, False, False, False
        ),  # odd row
    ]
    assert model_stats(spans) == [
        ModelStats(
            model="llama3.2:1b",
            calls=20,
            errors=0,
            median_s=10.5,
            p95_s=19.0,  # nearest rank: the 19th of 20
            prompt_tokens=2000,
            completion_tokens=400,
            median_tokens_per_second=50.5,
            cold_starts=1,
            truncated_prompts=1,
            format_errors=0,
        ),
        ModelStats("all-minilm", 2, 0, None, None, 7, 0, None, 0, 0, 0),
        ModelStats("qwen3:8b", 2, 1, 3.0, 4.0, 3000, 500, 12.5, 1, 0, 1),
    ]
    assert model_stats([]) == []


def test_the_store_gives_each_ollama_model_call_and_nothing_else(tmp_path: Path):
    store = LocalStore(tmp_path / "traces.db")
    now = 1_800_000_000.0
    store.append(
        [
            span(
                1,
                "llama3.2:1b",
                now,
                1.5,
                metrics={
                    "prompt_tokens": 2050,
                    "completion_tokens": 9,
                    "completion_tokens_per_second": 30.0,
                },
                metadata={"cold_start": True, "prompt_truncated": True, "warnings": ["x"]},
            ),
            span(
                2,
                "llama3.2:1b",
                now - DAY,
                0.5,
                error="Traceback...\nResponseError: boom",
                metadata={"cold_start": False, "format_error": "output is not valid JSON"},
            ),
            span(3, None, now, 0.2, metadata={"host": "https://ollama.com"}),  # web_search
            {**span(4, "gpt-4o", now, 1.0), "metadata": {"provider": "openai", "model": "gpt-4o"}},
            {
                "id": "root",
                "span_id": "root",
                "root_span_id": "root",
                "created": "x",
                "span_attributes": {"name": "request"},
                "metrics": {"start": now},
            },
            span(5, "llama3.2:1b", now, 1.0, metadata={"model": {"not": "a name"}}),
        ]
    )
    assert store.model_spans() == [
        ModelSpan("llama3.2:1b", 1.5, False, 2050, 9, 30.0, True, True, False),
        ModelSpan("llama3.2:1b", 0.5, True, None, None, None, False, False, True),
    ]
    assert store.model_spans(since=now - 60) == [
        ModelSpan("llama3.2:1b", 1.5, False, 2050, 9, 30.0, True, True, False),
    ]
    assert LocalStore(tmp_path / "none.db").model_spans() == []


def _run(user: User, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    return user.cli(*args, env={"COLUMNS": str(columns)})


def test_traces_stats_prints_one_row_per_model_in_80_columns(user: User):
    now = time.time()
    rows = [
        span(
            i,
            "qwen3:8b",
            now - 10 * i,
            0.5 + i / 10,
            metrics={
                "prompt_tokens": 2050,
                "completion_tokens": 128,
                "completion_tokens_per_second": 20.0 + i,
            },
            metadata={"cold_start": i == 0, "prompt_truncated": i < 2},
        )
        for i in range(10)
    ]
    rows += [
        span(
            10,
            "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M",
            now,
            2.0,
            error="ResponseError: model not found",
        ),
        span(
            11,
            "[bold red]llama3[/]",
            now,
            0.25,
            metadata={"format_error": "x"},
            metrics={"prompt_tokens": 12_345_678, "completion_tokens": 45_678},
        ),
    ]
    LocalStore(user.store_path).append(rows)
    shown = _run(user, "traces", "stats")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    lines = shown.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert [line.rstrip() for line in lines] == [
        "model               calls err      p50      p95    in   out tok/s cold trunc fmt",
        "qwen3:8b               10   - 950.0 ms   1.40 s 20.5k  1280  24.5    1     2   -",
        "[bold red]llama3[/]     1   - 250.0 ms 250.0 ms   12M 45.7k     -    -     -   1",
        "hf.co/bartowski/Lla     1   1   2.00 s   2.00 s     0     0     -    -     -   -",
        "ma-3.2-3B-Instruct-",
        "GGUF:Q4_K_M",
        "in / out: prompt / output tokens; p50 / p95: duration of a call; tok/s: median",
        "output tokens per second; cold: cold starts; trunc: truncated prompts; fmt:",
        "format errors",
    ]  # busiest first; a model name is text, never markup; a long one folds


def test_traces_stats_json_and_since(user: User):
    now = time.time()
    LocalStore(user.store_path).append(
        [span(1, "llama3.2:1b", now - 3 * DAY, 1.0), span(2, "llama3.2:1b", now - 60, 3.0)]
    )
    everything = json.loads(_run(user, "traces", "stats", "--json").stdout)
    assert [(s["model"], s["calls"], s["median_s"]) for s in everything] == [
        ("llama3.2:1b", 2, 2.0)
    ]
    recent = json.loads(_run(user, "traces", "stats", "--since", "2h", "--json").stdout)
    assert [(s["calls"], s["median_s"], s["p95_s"]) for s in recent] == [(1, 3.0, 3.0)]
    assert set(recent[0]) == {
        "model",
        "calls",
        "errors",
        "median_s",
        "p95_s",
        "prompt_tokens",
        "completion_tokens",
        "median_tokens_per_second",
        "cold_starts",
        "truncated_prompts",
        "format_errors",
    }
    none = _run(user, "traces", "stats", "--since", "2030-01-01")
    assert none.returncode == 0
    assert (
        none.stdout
        == f"No Ollama calls since 2030-01-01 in {user.store_path}. Make some: braintrust-ollama demo\n"
    )
    bad = _run(user, "traces", "stats", "--since", "yesterday")
    assert bad.returncode == 1
    assert bad.stderr == (
        "braintrust-ollama: error: --since 'yesterday': expected a date, a time or an age like 2h\n"
    )


def test_stats_of_traced_calls(tmp_path: Path, restore_braintrust: None, traced: None):
    """A user's program traces calls to two models into the local store; `traces stats` counts
    them: calls, errors, tokens, cold starts, truncated prompts, format errors."""
    path = tmp_path / "traces.db"
    local_logger.init_local_logger("stats", path=path)
    with FakeOllama() as server:
        server.reply(
            "/api/chat",
            Chat("Hi!", prompt_eval_count=20, eval_count=5, load_duration=2_000_000_000),
            Chat("Revenue grew.", prompt_eval_count=2050, eval_count=3),
            Chat("Paris", eval_count=2),
            Error(404, 'model "llama3.2:1b" not found, try pulling it first'),
        )
        server.reply("/api/generate", Generate("Blue.", prompt_eval_count=31, eval_count=12))
        client = ollama.Client(host=server.url)
        with braintrust.start_span(name="app"):
            client.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "Hi"}])
            client.chat(
                model="llama3.2:1b",
                messages=[{"role": "user", "content": "report " * 4000}],
                options={"num_ctx": 4096},
            )
            client.chat(
                model="llama3.2:1b", messages=[{"role": "user", "content": "?"}], format="json"
            )
            with pytest.raises(ollama.ResponseError):
                client.chat(model="llama3.2:1b", messages=[{"role": "user", "content": "Hi"}])
            client.generate(model="qwen3:8b", prompt="Why is the sky blue?")
            client.embed(model="all-minilm", input="Hi")
        braintrust.flush()
    stats = {s.model: s for s in model_stats(LocalStore(path).model_spans())}
    llama, qwen, minilm = stats["llama3.2:1b"], stats["qwen3:8b"], stats["all-minilm"]
    assert (llama.calls, llama.errors, llama.prompt_tokens, llama.completion_tokens) == (
        4,
        1,
        2096,
        10,
    )
    assert (llama.cold_starts, llama.truncated_prompts, llama.format_errors) == (1, 1, 1)
    assert llama.median_s is not None and llama.median_s > 0
    assert llama.median_tokens_per_second == 50.0  # FakeOllama: 20 ms per token
    assert (qwen.calls, qwen.prompt_tokens, qwen.completion_tokens) == (1, 31, 12)
    assert (minilm.calls, minilm.prompt_tokens, minilm.completion_tokens) == (1, 6, 0)


# --- a big store --------------------------------------------------------------------------------

BIG = 100_000
MODELS = ("llama3.2:1b", "qwen3:8b", "gemma3:4b", "all-minilm")


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100,000 spans (80,000 Ollama calls under 20,000 request spans), ~800 bytes each, written
    through the store's own `write`."""
    path = tmp_path_factory.mktemp("big") / "traces.db"
    store = LocalStore(path)
    start = time.time() - BIG
    text = "lorem ipsum " * 20
    rows: list[dict[str, Any]] = []
    for i in range(BIG):
        if i % 5 == 4:
            rows.append(
                {
                    "id": f"root-{i}",
                    "span_id": f"root-{i}",
                    "root_span_id": f"root-{i}",
                    "created": "x",
                    "span_attributes": {"name": "request", "type": "task"},
                    "input": text,
                    "metrics": {"start": start + i, "end": start + i + 1},
                }
            )
            continue
        row = span(
            i,
            MODELS[i % 4],
            start + i,
            0.5 + (i % 100) / 100,
            metrics={
                "prompt_tokens": 100,
                "completion_tokens": 10,
                "completion_tokens_per_second": 40.0,
            },
            metadata={"cold_start": i % 1000 == 0, "prompt_truncated": i % 500 == 0},
        )
        row["input"] = [{"role": "user", "content": text}]
        row["output"] = {"role": "assistant", "content": text}
        rows.append(row)
        if len(rows) == 10_000:
            store.append(rows)
            rows = []
    store.append(rows)
    return path


def test_stats_of_100000_spans_take_seconds_not_minutes(big_store: Path):
    started = time.perf_counter()
    stats = model_stats(LocalStore(big_store).model_spans())
    took = time.perf_counter() - started
    assert [s.calls for s in stats] == [20_000] * 4
    assert sum(s.truncated_prompts for s in stats) == 200
    assert sum(s.cold_starts for s in stats) == 100
    assert took < 5.0  # ~0.5 s on an idle 2-core VM


def test_traces_stats_on_100000_spans(big_store: Path, user: User):
    shown = user.cli(
        "traces", "stats", "--json", env={"BRAINTRUST_OLLAMA_HOME": str(big_store.parent)}
    )
    assert shown.returncode == 0, shown.stderr
    assert sorted(s["model"] for s in json.loads(shown.stdout)) == sorted(MODELS)
