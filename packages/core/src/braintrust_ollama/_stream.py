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
`unfinished_at_exit` in its metadata. A sync one is then closed, unless another thread that is
still alive is reading it (a daemon thread, say): that stream is left to its thread, which reads
on as it would untraced. The accumulator (the endpoint's `Stream`) keeps joined fragments and
the last chunk, never every chunk.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import threading
import types
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from threading import get_ident
from typing import Any

from ._call import CallStream, OllamaCall
from ._warn import warn_once

# multiprocessing runs exit finalizers by decreasing priority; the local store closes at 100.
_BEFORE_STORE_CLOSE = 101

_log = logging.getLogger(__name__)


def traced_stream(chunks: Iterator[Any], call: OllamaCall) -> Generator[Any, Any, None]:
    """The SDK's chunk generator, traced: a generator too (see the module docstring)."""
    acc = call.stream()
    acc.reader = get_ident()  # the thread that will read it, until one does
    stream = _traced(chunks, acc)
    _live.watch(stream, acc)
    return stream


def traced_async_stream(chunks: AsyncIterator[Any], call: OllamaCall) -> AsyncGenerator[Any, Any]:
    """The async twin of `traced_stream`: an async generator, as the SDK returns."""
    acc = call.stream()
    stream = _traced_async(chunks, acc)
    _live.watch(stream, acc)
    return stream


def _traced(chunks: Iterator[Any], acc: CallStream) -> Generator[Any, Any, None]:
    """The SDK's chunks, each added to `acc`; the span ends however this generator ends.

    A value given to `send()` is dropped, as the SDK's generator drops it. `close()`, `throw()`
    and being released unfinished close the SDK's generator too, as `yield from` would, so its
    HTTP response is closed when it would be untraced. Each chunk notes the thread reading it
    (see `_LiveStreams.finish_at_exit`).
    """
    try:
        for chunk in chunks:
            acc.reader = get_ident()
            try:
                acc.add(chunk)
            except Exception:
                acc.stop_reading()
            yield chunk
    except GeneratorExit:
        _end(acc)
        close(chunks)
        raise
    except BaseException as error:
        _end(acc, error)
        close(chunks)  # after an exception given to throw(), the SDK's stream ends with ours
        raise
    _end(acc)


async def _traced_async(chunks: AsyncIterator[Any], acc: CallStream) -> AsyncGenerator[Any, Any]:
    """The async twin of `_traced`. The span is written before the SDK's stream is closed, so
    it is written even where that close cannot complete (an event loop that has gone away)."""
    try:
        async for chunk in chunks:
            try:
                acc.add(chunk)
            except Exception:
                acc.stop_reading()
            yield chunk
    except GeneratorExit:
        _end(acc)
        await aclose(chunks)
        raise
    except BaseException as error:
        _end(acc, error)
        await aclose(chunks)
        raise
    _end(acc)


def _end(acc: CallStream, error: BaseException | None = None) -> None:
    acc.finish(error)
    _live.forget(acc)


def close(stream: Any) -> None:
    """Close `stream` if it can be closed (a generator, an SDK stream): what `yield from` does."""
    close_ = getattr(stream, "close", None)
    if close_ is not None:
        close_()


async def aclose(stream: Any) -> None:
    """The async twin of `close`."""
    aclose_ = getattr(stream, "aclose", None)
    if aclose_ is not None:
        await aclose_()


class _LiveStreams:
    """The accumulators of streams not yet written, each with a weak reference to its stream:
    a stream released unfinished (never iterated, say) is written when it is collected, and
    every one still alive at exit is written before any exit flush.

    At exit: `threading._register_atexit` callbacks run once the main thread is done, before
    non-daemon threads are joined and before any `atexit` callback. From there we register our
    `atexit` pass, which therefore runs after those threads have finished and before every
    `atexit` callback registered earlier (they run last-in, first-out): Braintrust's
    background-logger flush and the local store's, whenever they were set up. A forked child
    starts with none (its parent writes its own streams); a `multiprocessing` child, which skips
    `atexit`, writes its own from multiprocessing's exit finalizers, before the local store's.
    """

    def __init__(self) -> None:
        self._watched: dict[CallStream, weakref.ref[Any]] = {}
        try:
            threading._register_atexit(self._register_exit_pass)  # type: ignore[attr-defined]
        except (AttributeError, RuntimeError):  # not CPython, or already shutting down
            atexit.register(self.finish_at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._watched.clear)
        # A `multiprocessing` child skips `atexit` (it leaves through `os._exit()`): its streams
        # are written by multiprocessing's own exit finalizers, before the local store's flush.
        multiprocessing.util.register_after_fork(self, _LiveStreams._in_multiprocessing_child)

    def _in_multiprocessing_child(self) -> None:
        multiprocessing.util.Finalize(self, self.finish_at_exit, exitpriority=_BEFORE_STORE_CLOSE)

    def watch(self, stream: Any, acc: CallStream) -> None:
        try:
            self._watched[acc] = weakref.ref(stream, lambda _: _end(acc))
        except Exception:
            warn_once(_log, "could not watch a stream")

    def forget(self, acc: CallStream) -> None:
        self._watched.pop(acc, None)

    def _register_exit_pass(self) -> None:
        atexit.register(self.finish_at_exit)

    def finish_at_exit(self) -> None:
        """Write every stream still alive, as it stands, before the exit flushes; then close the
        sync ones (and their HTTP responses), as teardown would, while the interpreter is still
        whole: an httpx stream closed by the garbage collector during teardown can crash
        Python 3.13.0, traced or not.

        Left as they are: a stream that another live thread is reading (or, never read, was
        made in), since closing it under that thread would end its loop as if the answer were
        complete; and async streams, which need their event loop."""
        others = {thread.ident for thread in threading.enumerate()} - {get_ident()}
        for acc, watched in list(self._watched.items()):
            acc.finish(at_exit=True)
            stream = watched()
            if not isinstance(stream, types.GeneratorType) or stream.gi_running:
                continue
            if acc.reader in others:
                continue
            try:
                stream.close()
            except Exception:
                warn_once(_log, "could not close a stream at exit")
        self._watched.clear()


_live = _LiveStreams()
