"""Traced Ollama streams (sync and async).

Contract: the stream yields exactly the chunks the SDK yields and raises exactly what it raises.
Its span is written exactly once: when the stream is exhausted; on any error (an `{"error": ...}`
line, a cut connection, `asyncio` cancellation); on `close()` / `aclose()`; when a `for` loop
over it is left early (`break`); or when a stream that was never finished is garbage-collected
(never iterated, say) — always with the output seen so far. The accumulator keeps joined text
and the last chunk, never every chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._call import CallStream, OllamaCall


class TracedStream(Iterator[Any]):
    """Wraps the SDK's chunk iterator; see the module docstring for when the span is written.

    A `for` loop iterates a generator made by `__iter__`, so a loop left by `break` closes it,
    and that ends the span at once; the SDK's own stream is left open, as it would be untraced.
    """

    __slots__ = ("_acc", "_chunks", "_next")

    def __init__(self, chunks: Iterator[Any], call: OllamaCall) -> None:
        self._chunks = chunks
        self._acc = call.stream()
        self._next: Iterator[Any] | None = None

    def __iter__(self) -> Iterator[Any]:
        return _traced(self._chunks, self._acc, owner=self)

    def __next__(self) -> Any:
        if self._next is None:
            self._next = _traced(self._chunks, self._acc)
        return next(self._next)

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

    __slots__ = ("_acc", "_chunks", "_next")

    def __init__(self, chunks: AsyncIterator[Any], call: OllamaCall) -> None:
        self._chunks = chunks
        self._acc = call.stream()
        self._next: AsyncIterator[Any] | None = None

    def __aiter__(self) -> AsyncIterator[Any]:
        return _traced_async(self._chunks, self._acc, owner=self)

    async def __anext__(self) -> Any:
        if self._next is None:
            self._next = _traced_async(self._chunks, self._acc)
        return await self._next.__anext__()

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            self._acc.finish()

    def __del__(self) -> None:
        _finish_abandoned(self)


def _traced(chunks: Iterator[Any], acc: CallStream, owner: object = None) -> Iterator[Any]:
    """The SDK's chunks, each added to `acc`; the span ends however this generator ends.

    A generator made for a `for` loop holds its stream (`owner`), which a loop over a call's
    result is the only holder of. One kept by the stream for `next()` does not: no reference
    cycle keeps an abandoned stream alive until the garbage collector runs.
    """
    try:
        for chunk in chunks:
            try:
                acc.add(chunk)
            except Exception:
                acc.stop_reading()
            yield chunk
    except GeneratorExit:  # the loop was left early, or the stream closed
        acc.finish()
        raise
    except BaseException as error:
        acc.finish(error)
        raise
    acc.finish()


async def _traced_async(
    chunks: AsyncIterator[Any], acc: CallStream, owner: object = None
) -> AsyncIterator[Any]:
    """The async twin of `_traced`."""
    try:
        async for chunk in chunks:
            try:
                acc.add(chunk)
            except Exception:
                acc.stop_reading()
            yield chunk
    except GeneratorExit:
        acc.finish()
        raise
    except BaseException as error:
        acc.finish(error)
        raise
    acc.finish()


def _finish_abandoned(stream: TracedStream | TracedAsyncStream) -> None:
    """A stream collected before it finished (read with `next()` and dropped, or never iterated):
    write what it saw."""
    with contextlib.suppress(Exception):  # interpreter shutdown, or a half-built stream
        stream._acc.finish()
