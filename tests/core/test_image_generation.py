"""Image generation through `generate` (ollama >= 0.6.2: `width`, `height`, `steps`): the
generated image is an `Attachment` on the output's choice, never base64 text; the image settings
are metadata.

FakeOllama answers with hand-made bodies built from the SDK's own `GenerateResponse`: progress
chunks (`completed` / `total`) while streaming, then the image.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import braintrust
import ollama
import pytest
from braintrust import Attachment
from core.cassettes import HOST, final_reply, replay
from support.ollama_server import Lines
from support.spans import only

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x01" * 32
IMAGE = base64.b64encode(PNG).decode()
SETTINGS = {"width": 512, "height": 384, "steps": 4}
FINAL = {"done": True, "done_reason": "stop", "total_duration": 2_500_000_000}


def response(**fields: Any) -> dict[str, Any]:
    return ollama.GenerateResponse(model="x/z-image-turbo", response="", **fields).model_dump(
        exclude_none=True
    )


def image_choices(image: Any) -> list[dict[str, Any]]:
    """The output of an image model's generate: a choice with no text, holding the image."""
    message = {"role": "assistant", "content": ""}
    return [{"index": 0, "finish_reason": "stop", "message": message, "image": image}]


def assert_image_output(span: dict[str, Any], memory_logger: Any) -> None:
    (uploaded,) = memory_logger.uploaded_attachments
    assert isinstance(uploaded, Attachment)
    assert (uploaded.data, uploaded.reference["content_type"]) == (PNG, "image/png")
    assert span["output"] == image_choices(uploaded.reference)
    assert span["input"] == [{"role": "user", "content": "a lighthouse at dusk"}]
    for key, value in SETTINGS.items():
        assert span["metadata"][key] == value
    assert IMAGE not in json.dumps(span, default=str)


def test_generated_image_is_an_output_attachment(memory_logger, ollama_server, traced):
    ollama_server.reply("/api/generate", response(image=IMAGE, **FINAL))
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="draw"):
        result = client.generate(model="x/z-image-turbo", prompt="a lighthouse at dusk", **SETTINGS)
    assert result.image == IMAGE
    span = only(memory_logger.pop(), "ollama.generate")
    assert_image_output(span, memory_logger)
    assert span["metrics"]["total_duration"] == pytest.approx(2.5)


async def test_streamed_image_generation_keeps_the_image_not_the_progress(
    memory_logger, ollama_server, traced
):
    progress = [response(completed=step, total=4, done=False) for step in range(1, 5)]
    ollama_server.reply("/api/generate", Lines([*progress, response(image=IMAGE, **FINAL)]))
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="draw"):
        stream = await client.generate(
            model="x/z-image-turbo", prompt="a lighthouse at dusk", stream=True, **SETTINGS
        )
        steps = [chunk.completed async for chunk in stream]
    assert steps == [1, 2, 3, 4, None]
    span = only(memory_logger.pop(), "ollama.generate")
    assert_image_output(span, memory_logger)
    assert span["metadata"]["stream"] is True


def test_recorded_generated_image_is_an_attachment(memory_logger, traced):
    with replay("generate_image"), braintrust.start_span(name="draw"):
        ollama.generate(model="x/z-image-turbo", prompt="a lighthouse at dusk", **SETTINGS)
    reply = final_reply("generate_image")
    span = only(memory_logger.pop(), "ollama.generate")
    (uploaded,) = memory_logger.uploaded_attachments
    assert uploaded.data == base64.b64decode(reply["image"])
    assert uploaded.reference["content_type"] == "image/png"
    assert span["output"] == image_choices(uploaded.reference)
    assert span["metadata"] == {
        "provider": "ollama",
        "model": "x/z-image-turbo",
        "stream": False,
        **SETTINGS,
        "done_reason": "stop",
        "cold_start": reply["load_duration"] > 0.5e9,
        "host": HOST,
    }
    assert reply["image"] not in json.dumps(span, default=str)


NOT_BASE64 = "not an image"  # a server bug, or a proxy answering with text


def assert_image_left_out(span: dict[str, Any], memory_logger: Any) -> None:
    """The span is written with everything but the image, and says what was left out."""
    assert memory_logger.uploaded_attachments == []
    message = {"role": "assistant", "content": "here you are"}
    assert span["output"] == [{"index": 0, "finish_reason": "stop", "message": message}]
    assert span["input"] == [{"role": "user", "content": "a lighthouse at dusk"}]
    assert span["metrics"]["prompt_tokens"] == 7 and span["metrics"]["completion_tokens"] == 1
    assert span["metrics"]["total_duration"] == pytest.approx(2.5)
    assert span["metadata"]["done_reason"] == "stop"
    assert span["metadata"]["not_recorded"] == {
        "output.image": f"not valid base64 ({len(NOT_BASE64)} characters)"
    }
    assert span.get("error") is None


def test_an_image_that_is_not_base64_costs_the_image_only(memory_logger, ollama_server, traced):
    final = {**FINAL, "prompt_eval_count": 7, "eval_count": 1}
    ollama_server.reply(
        "/api/generate",
        {**response(image=NOT_BASE64, **final), "response": "here you are"},
    )
    client = ollama.Client(host=ollama_server.url)
    with braintrust.start_span(name="draw"):
        result = client.generate(model="x/z-image-turbo", prompt="a lighthouse at dusk")
    assert result.image == NOT_BASE64  # the caller gets what the server sent
    assert_image_left_out(only(memory_logger.pop(), "ollama.generate"), memory_logger)


async def test_a_streamed_image_that_is_not_base64_costs_the_image_only(
    memory_logger, ollama_server, traced
):
    final = {**FINAL, "prompt_eval_count": 7, "eval_count": 1}
    ollama_server.reply(
        "/api/generate",
        Lines(
            [
                {**response(done=False), "response": "here you are"},
                response(image=NOT_BASE64, **final),
            ]
        ),
    )
    client = ollama.AsyncClient(host=ollama_server.url)
    with braintrust.start_span(name="draw"):
        stream = await client.generate(
            model="x/z-image-turbo", prompt="a lighthouse at dusk", stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].image == NOT_BASE64
    assert_image_left_out(only(memory_logger.pop(), "ollama.generate"), memory_logger)
