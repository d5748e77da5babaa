"""The LlamaIndex span of a streamed call, kept open for as long as its stream runs.

Contract: a `StreamSpan` finishes its LlamaIndex span exactly once — when the stream is
exhausted (output: the last item, which LlamaIndex makes cumulative, or the joined text of a
stream of text pieces such as `LLM.stream()`'s), when it fails (the error), when the consumer
breaks it off or drops it (the output streamed so far). While the stream
computes each item, the span is both Braintrust's current span and LlamaIndex's active span, so
the Ollama SDK call that LlamaIndex makes lazily on the first item lands under it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from braintrust_ollama._stream import aclose, close
from braintrust_ollama._warn import warn_once
from llama_index.core.instrumentation.span import active_span_id

_log = logging.getLogger(__name__)

T = TypeVar("T")

# Streams handed back while a streamed call is made or computes an item: nested in it, so they
# are closed with it (an async generator dropped unclosed is only closed later, by the loop).
_nested_streams: ContextVar[list[Any] | None] = ContextVar(
    "braintrust_ollama_llamaindex_nested", default=None
)


@contextmanager
def collecting_nested(nested: list[Any]) -> Iterator[None]:
    """Collect into `nested` the streams handed back while the body runs."""
    token = _nested_streams.set(nested)
    try:
        yield
    finally:
        _nested_streams.reset(token)


def register_nested(stream: Any) -> None:
    """Record `stream` as nested in the streamed call being made or consumed, if any."""
    nested = _nested_streams.get()
    if nested is not None:
        nested.append(stream)


class StreamSpan:
    """A LlamaIndex span (and its Braintrust span) whose call returned a stream."""

    def __init__(
        self,
        handler: Any,
        span_id: str,
        bound_args: Any,
        instance: Any,
        braintrust_span: Any,
        nested: list[Any],
        as_result: Callable[[Any], Any] | None = None,
    ) -> None:
        self._handler = handler
        self._span_id = span_id
        self._bound_args = bound_args
        self._instance = instance
        self._braintrust_span = braintrust_span
        self._lock = threading.Lock()
        self._finished = False
        self.nested = nested
        self._as_result = as_result  # what LlamaIndex returns whole, given what was streamed
        self._last: Any = None
        self._text: list[str] = []  # the pieces of a stream of text, joined at the end

    def add(self, item: Any) -> None:
        """Record an item the stream yielded."""
        if isinstance(item, str):
            self._text.append(item)
        self._last = item

    @property
    def result(self) -> Any:
        """What the call streamed so far, as LlamaIndex would have returned it whole."""
        streamed = "".join(self._text) if self._text else self._last
        return streamed if self._as_result is None else self._as_result(streamed)

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make this span current (for Braintrust and for LlamaIndex) while the body runs."""
        self._braintrust_span.set_current()
        token = active_span_id.set(self._span_id)
        try:
            with collecting_nested(self.nested):
                yield
        finally:
            active_span_id.reset(token)
            self._braintrust_span.unset_current()

    def finish(self, error: BaseException | None = None) -> None:
        """End the span: with the last item as its output, or with `error`. Only once."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        try:
            # Braintrust's handler unsets the span as current when it ends it: make it current
            # first, so that restores this context rather than clearing it.
            self._braintrust_span.set_current()
            if error is None:
                self._handler.span_exit(
                    id_=self._span_id,
                    bound_args=self._bound_args,
                    instance=self._instance,
                    result=self.result,
                )
            else:
                self._handler.span_drop(
                    id_=self._span_id,
                    bound_args=self._bound_args,
                    instance=self._instance,
                    err=error,
                )
        except Exception:
            warn_once(
                _log, "could not end a streamed LlamaIndex span", unaffected="the LlamaIndex call"
            )


def keep_open(stream: Iterator[T], span: StreamSpan) -> Iterator[T]:
    """Yield `stream`'s items, computing each with `span` current; finish `span` with it."""

    def consume() -> Iterator[T]:
        try:
            while True:
                with span.current():
                    try:
                        item = next(stream)
                    except StopIteration:
                        break
                span.add(item)
                yield item
        except GeneratorExit:
            try:
                for inner in (stream, *span.nested):
                    close(inner)
            finally:
                span.finish()
            raise
        except BaseException as error:
            span.finish(error)
            raise
        span.finish()

    wrapped = consume()
    weakref.finalize(wrapped, span.finish)  # dropped before its first item
    return wrapped


def akeep_open(stream: AsyncIterator[T], span: StreamSpan) -> AsyncIterator[T]:
    """The async twin of `keep_open`."""

    async def consume() -> AsyncIterator[T]:
        try:
            while True:
                with span.current():
                    try:
                        item = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                span.add(item)
                yield item
        except GeneratorExit:
            try:
                for inner in (stream, *span.nested):
                    await aclose(inner)
            finally:
                span.finish()
            raise
        except BaseException as error:
            span.finish(error)
            raise
        span.finish()

    wrapped = consume()
    weakref.finalize(wrapped, span.finish)
    return wrapped
