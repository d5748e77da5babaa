"""Traced Ollama streams (sync and async).

Contract: the stream yields exactly the chunks the SDK yields and raises exactly what it raises.
Its span is written exactly once: when the stream is exhausted; on any error (an `{"error": ...}`
line, a cut connection, `asyncio` cancellation); on `close()` / `aclose()`; or when a stream that
was never finished is garbage-collected (an early `break`, or never iterated) — always with the
output seen so far. The accumulator keeps joined text and the last chunk, never every chunk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from . import tracing
from ._call import OllamaCall, warn_failure


class _Accumulator:
    """Content, thinking and tool calls seen so far, plus the last chunk (which holds counters)."""

    __slots__ = ("call", "content", "first_token", "last", "thinking", "tool_calls")

    def __init__(self, call: OllamaCall) -> None:
        self.call = call
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: list[Any] = []
        self.first_token: float | None = None
        self.last: Any = None

    def add(self, chunk: Any) -> None:
        if self.first_token is None:
            self.first_token = time.time()
        self.last = chunk
        message = getattr(chunk, "message", None)
        if message is not None:
            if message.content:
                self.content.append(message.content)
            thinking = getattr(message, "thinking", None)  # ollama < 0.5.2 has no thinking
            if thinking:
                self.thinking.append(thinking)
            if message.tool_calls:
                self.tool_calls.extend(message.tool_calls)
        else:
            if chunk.response:
                self.content.append(chunk.response)
            thinking = getattr(chunk, "thinking", None)
            if thinking:
                self.thinking.append(thinking)

    def output(self) -> Any:
        content = "".join(self.content)
        thinking = "".join(self.thinking) or None
        if self.call.path != "/api/chat":
            return tracing.output_for_generate(content, thinking)
        output: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            output["thinking"] = thinking
        if self.tool_calls:
            output["tool_calls"] = [tracing._dump(call) for call in self.tool_calls]
        return output

    def finish(self, error: BaseException | None = None) -> None:
        if self.call.finished:
            return
        try:
            self.call.write(
                self.output(), self.last, time.time(), first_token=self.first_token, error=error
            )
        except Exception:
            warn_failure("recording a stream")


class TracedStream(Iterator[Any]):
    """Wraps the SDK's chunk iterator; see the module docstring for when the span is written."""

    __slots__ = ("_acc", "_chunks")

    def __init__(self, chunks: Iterator[Any], call: OllamaCall) -> None:
        self._chunks = chunks
        self._acc = _Accumulator(call)

    def __iter__(self) -> TracedStream:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._acc.finish()
            raise
        except BaseException as error:
            self._acc.finish(error)
            raise
        try:
            self._acc.add(chunk)
        except Exception:
            warn_failure("reading a stream chunk")
        return chunk

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            self._acc.finish()

    def __del__(self) -> None:
        _finish_abandoned(self)


class TracedAsyncStream(AsyncIterator[Any]):
    """The async twin of `TracedStream`, with the same contract."""

    __slots__ = ("_acc", "_chunks")

    def __init__(self, chunks: AsyncIterator[Any], call: OllamaCall) -> None:
        self._chunks = chunks
        self._acc = _Accumulator(call)

    def __aiter__(self) -> TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._acc.finish()
            raise
        except BaseException as error:
            self._acc.finish(error)
            raise
        try:
            self._acc.add(chunk)
        except Exception:
            warn_failure("reading a stream chunk")
        return chunk

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._acc.finish()

    def __del__(self) -> None:
        _finish_abandoned(self)


def _finish_abandoned(stream: TracedStream | TracedAsyncStream) -> None:
    """A stream collected before it finished (early `break`, never iterated): write what it saw."""
    with contextlib.suppress(Exception):  # interpreter shutdown, or a half-built stream
        stream._acc.finish()
