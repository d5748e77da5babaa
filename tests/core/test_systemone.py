"""`systemone` (ollama >= 0.6.3, `/v1/systemone`): one `llm` span with its usage as tokens.

FakeOllama answers with a hand-made body built from the SDK's own `SystemOneResponse`.
"""

from __future__ import annotations

import braintrust
import ollama
import pytest
from core.cassettes import HOST, final_reply, metrics_of, recorded_request, replay
from support.spans import only

STATE = "User: my order is late. Agent: Sorry! It ships tomorrow."
QUESTIONS = {
    "helpful": ollama.SystemOneScoreQuestion(
        instructions="How helpful was the agent?", criteria=["not at all", "somewhat", "very"]
    ),
    "apologised": {"type": "noul", "instructions": "Did the agent apologise?"},
}
ANSWERS = {
    "helpful": {
        "type": "score",
        "score": 1.7,
        "legend": {"0": "not at all", "1": "somewhat", "2": "very"},
        "probabilities": {"0": 0.05, "1": 0.2, "2": 0.75},
        "confidence": 0.75,
    },
    "apologised": {"type": "noul", "noul": 0.98},
}
REPLY = ollama.SystemOneResponse(
    model="systemone:1b",
    answers=ANSWERS,
    usage=ollama.SystemOneUsage(input_tokens=57, output_tokens=4),
).model_dump()


@pytest.mark.parametrize("client_kind", ["sync", "async"])
async def test_systemone_is_an_llm_span_with_answers_out_and_usage_as_tokens(
    memory_logger, ollama_server, traced, client_kind
):
    ollama_server.reply("/v1/systemone", REPLY)
    with braintrust.start_span(name="grade") as parent:
        if client_kind == "sync":
            client = ollama.Client(host=ollama_server.url)
            response = client.systemone(model="systemone:1b", state=STATE, questions=QUESTIONS)
        else:
            aclient = ollama.AsyncClient(host=ollama_server.url)
            response = await aclient.systemone(
                model="systemone:1b", state=STATE, questions=QUESTIONS, keep_alive="5m"
            )
    assert response.answers["apologised"].noul == 0.98
    span = only(memory_logger.pop(), "ollama.systemone")
    assert span["span_attributes"]["type"] == "llm"
    assert span["span_parents"] == [parent.span_id]
    assert span["input"] == {
        "state": STATE,
        "questions": {
            "helpful": {
                "type": "score",
                "instructions": "How helpful was the agent?",
                "criteria": ["not at all", "somewhat", "very"],
            },
            "apologised": {"type": "noul", "instructions": "Did the agent apologise?"},
        },
    }
    assert span["output"] == ANSWERS
    expected_metadata = {
        "provider": "ollama",
        "model": "systemone:1b",
        "host": ollama_server.url,
    }
    if client_kind == "async":
        expected_metadata["keep_alive"] = "5m"
    assert span["metadata"] == expected_metadata
    metrics = span["metrics"]
    assert (metrics["prompt_tokens"], metrics["completion_tokens"], metrics["tokens"]) == (
        57,
        4,
        61,
    )
    assert 0 <= metrics["time_to_first_token"] <= metrics["end"] - metrics["start"]


def test_recorded_systemone_holds_answers_and_usage(memory_logger, traced):
    with replay("systemone"), braintrust.start_span(name="grade"):
        ollama.systemone(
            model="systemone:latest",
            state="User: my parcel is late. Agent: Sorry about that! It ships tomorrow.",
            questions={
                "apologised": {"type": "noul", "instructions": "Did the agent apologise?"},
                "helpful": ollama.SystemOneScoreQuestion(
                    instructions="How helpful was the agent?",
                    criteria=["not at all", "somewhat", "very"],
                ),
            },
        )
    reply = final_reply("systemone")
    span = only(memory_logger.pop(), "ollama.systemone")
    assert span["input"] == {
        "state": recorded_request("systemone")["state"],
        "questions": recorded_request("systemone")["questions"],
    }
    assert span["output"] == reply["answers"]
    assert span["metadata"] == {"provider": "ollama", "model": "systemone:latest", "host": HOST}
    usage = reply["usage"]
    metrics = metrics_of(span)
    assert metrics == {
        "prompt_tokens": usage["input_tokens"],
        "completion_tokens": usage["output_tokens"],
        "tokens": usage["input_tokens"] + usage["output_tokens"],
    }
