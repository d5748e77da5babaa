"""Traced Ollama streams (sync and async): generators, as the SDK's own streams are.

Contract: a traced stream is a generator (an async generator for `AsyncClient`), like the one
the SDK returns untraced, so `inspect.isgenerator` / `isasyncgen`, `send`, `throw`, `close`,
`asend`, `athrow` and `aclose` behave as they would untraced. It yields exactly the chunks the
SDK yields and raises exactly what it raises. Its span is written exactly once, with the output
seen so far: when the stream is exhausted; on any error (an `{"error": ...}` line, a cut
connection, `asyncio` cancellation, an exception passed to `throw`); on `close()` / `aclose()`;
when it is released unfinished (a `for` loop over a call's result left by `break`, a stream read
with `next()` and dropped, one never iterated); or, for a stream still alive when the
interpreter exits, before Braintrust's and the local store's own exit flush, marked
`unfinished_at_exit` in its metadata. The accumulator keeps joined text and the last chunk,
never every chunk.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from . import tracing
from ._call import OllamaCall, warn_failure


class _Accumulator:
    """Content, thinking and tool calls seen so far, plus the last chunk (which holds counters).

    `add` runs once per chunk, so it is picked once per stream (chat or generate, and whether
    this SDK's chunks carry `thinking`) and does nothing but append.
    """

    __slots__ = (
        "__weakref__",
        "_stream",
        "add",
        "call",
        "content",
        "first_token",
        "last",
        "thinking",
        "tool_calls",
    )

    def __init__(self, call: OllamaCall) -> None:
        self.call = call
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: list[Any] = []
        self.first_token: float | None = None
        self.last: Any = None
        self.add = self._first
        self._stream: weakref.ref[Any] | None = None  # the stream, watched until it is written

    def _first(self, chunk: Any) -> None:
        self.first_token = time.time()
        part = chunk.message if self.call.path == "/api/chat" else chunk
        has_thinking = "thinking" in type(part).model_fields  # ollama >= 0.5.2
        if self.call.path == "/api/chat":
            self.add = self._add_chat if has_thinking else self._add_chat_without_thinking
        else:
            self.add = self._add_generate if has_thinking else self._add_generate_without_thinking
        self.add(chunk)

    def stop_reading(self) -> None:
        """After a failure in our own code: log it once, and keep the output seen so far."""
        warn_failure("reading a stream chunk")
        self.add = _ignore

    def _add_chat(self, chunk: Any) -> None:
        self.last = chunk
        message = chunk.message
        if message.content:
            self.content.append(message.content)
        if message.thinking:
            self.thinking.append(message.thinking)
        if message.tool_calls:
            self.tool_calls.extend(message.tool_calls)

    def _add_chat_without_thinking(self, chunk: Any) -> None:
        self.last = chunk
        message = chunk.message
        if message.content:
            self.content.append(message.content)
        if message.tool_calls:
            self.tool_calls.extend(message.tool_calls)

    def _add_generate(self, chunk: Any) -> None:
        self.last = chunk
        if chunk.response:
            self.content.append(chunk.response)
        if chunk.thinking:
            self.thinking.append(chunk.thinking)

    def _add_generate_without_thinking(self, chunk: Any) -> None:
        self.last = chunk
        if chunk.response:
            self.content.append(chunk.response)

    def output(self) -> Any:
        content = "".join(self.content)
        thinking = "".join(self.thinking) or None
        if self.call.path == "/api/chat":
            return tracing.assistant_output(content, thinking, self.tool_calls)
        return tracing.output_for_generate(content, thinking)

    def watch(self, stream: weakref.ref[Any]) -> None:
        self._stream = stream

    def collected(self, stream: weakref.ref[Any]) -> None:
        """The stream was released before it finished (never iterated, say)."""
        self.finish()

    def finish(self, error: BaseException | None = None, *, at_exit: bool = False) -> None:
        """Write the span once, with the output seen so far."""
        if self.call.finished:
            return
        self._stream = None
        _live.forget(self)
        try:
            self.call.write(
                self.output(),
                self.last,
                time.time(),
                first_token=self.first_token,
                error=error,
                unfinished_at_exit=at_exit,
            )
        except Exception:
            warn_failure("recording a stream")


def _ignore(chunk: Any) -> None:
    pass


def traced_stream(chunks: Iterator[Any], call: OllamaCall) -> Generator[Any, Any, None]:
    """The SDK's chunk generator, traced: a generator too (see the module docstring)."""
    acc = _Accumulator(call)
    stream = _traced(chunks, acc)
    _live.watch(stream, acc)
    return stream


def traced_async_stream(chunks: AsyncIterator[Any], call: OllamaCall) -> AsyncGenerator[Any, Any]:
    """The async twin of `traced_stream`: an async generator, as the SDK returns."""
    acc = _Accumulator(call)
    stream = _traced_async(chunks, acc)
    _live.watch(stream, acc)
    return stream


def _traced(chunks: Iterator[Any], acc: _Accumulator) -> Generator[Any, Any, None]:
    """The SDK's chunks, each added to `acc`; the span ends however this generator ends.

    A value passed to `send()` is dropped, as the SDK's generator drops it. `close()` (or being
    released unfinished) closes the SDK's generator too, as `yield from` would, so its HTTP
    response is closed when it would be untraced.
    """
    try:
        for chunk in chunks:
            try:
                acc.add(chunk)
            except Exception:
                acc.stop_reading()
            yield chunk
    except GeneratorExit:
        acc.finish()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as error:
        acc.finish(error)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # an exception given to throw(): the SDK's stream ends with ours
        raise
    acc.finish()


async def _traced_async(chunks: AsyncIterator[Any], acc: _Accumulator) -> AsyncGenerator[Any, Any]:
    """The async twin of `_traced`. The span is written before the SDK's stream is closed, so
    it is written even where that close cannot run (a loop that has gone away)."""
    try:
        async for chunk in chunks:
            try:
                acc.add(chunk)
            except Exception:
                acc.stop_reading()
            yield chunk
    except GeneratorExit:
        acc.finish()
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    except BaseException as error:
        acc.finish(error)
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    acc.finish()


class _LiveStreams:
    """The accumulators of streams not yet finished, each watching its stream through a weak
    reference: a stream released unfinished (never iterated, say) is written when it is
    collected, and every one still alive at exit is written before any exit flush.

    At exit: `threading._register_atexit` callbacks run when the main thread is done, before
    non-daemon threads are joined and before any `atexit` callback. From there we register our
    `atexit` pass, which thus runs after those threads finished and before every `atexit`
    callback registered earlier (LIFO): Braintrust's background-logger flush and the local
    store's, whenever they were set up. Forked children start with an empty set (the parent
    writes its own streams).
    """

    def __init__(self) -> None:
        self._accumulators: set[_Accumulator] = set()
        register_at_thread_exit = getattr(threading, "_register_atexit", None)
        try:
            if register_at_thread_exit is None:
                raise RuntimeError("no threading._register_atexit")
            register_at_thread_exit(self._register_exit_pass)
        except RuntimeError:
            atexit.register(self.finish_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._accumulators.clear)

    def watch(self, stream: Any, acc: _Accumulator) -> None:
        try:
            acc.watch(weakref.ref(stream, acc.collected))
            self._accumulators.add(acc)
        except Exception:
            warn_failure("watching a stream")

    def forget(self, acc: _Accumulator) -> None:
        self._accumulators.discard(acc)

    def _register_exit_pass(self) -> None:
        atexit.register(self.finish_at_exit)

    def finish_at_exit(self) -> None:
        for acc in list(self._accumulators):
            acc.finish(at_exit=True)


_live = _LiveStreams()
