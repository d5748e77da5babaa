"""One traced Ollama SDK call, written to Braintrust as exactly one span when it finishes.

The SDK span is a leaf (nothing runs under it), so it is written once, with everything it holds,
when the call ends: one row, one deep copy, one hand-off to the background logger. Its parent
is the span (or logger, or experiment) that was current when the SDK method was called, held
from then on: this matters for streams, which the SDK only starts on the first `next()`, often
after the caller's span has ended.

Also fixed at call time: `context` (`caller_filename`, `caller_functionname`, `caller_lineno`),
the first frame outside our tracing modules (this one, `patchers`, `_stream`), the SDK and the
frameworks the adapters trace (`NOT_CALLERS`) — the user's line that made the call, even for a
stream written later from inside its iteration or a call a framework makes for the user — and
whether content is recorded (`record_content` on the client or its class, set by
`setup_ollama` / `wrap_ollama`).
Errors are recorded as Braintrust's own spans record them (`stringify_exception`: the traceback,
type and message).

A chat or generate call (an `inspected` endpoint) also looks its model up in the model-info cache
(`_model_info`, never waiting for it) and reads the response's raw JSON as the SDK parses it
(`response_reader`), so its span can say why the answer may be bad (`_insight`).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import braintrust
from braintrust.logger import NOOP_SPAN, get_span_parent_object, stringify_exception
from pydantic import BaseModel

from . import tracing
from ._insight import Answer, inspect_call
from ._model_info import MODEL_INFO, Server
from ._warn import warn_once

_log = logging.getLogger(__name__)

# Set on a Braintrust span once a traced Ollama call has been made under it: the SDK span owns
# that call's tokens, so an adapter's span for the same call must not count them again.
_TOKENS_MARKER = "_braintrust_ollama_counts_tokens"


def tokens_counted_under(span: Any) -> bool:
    """True once a traced Ollama SDK call was made while `span` was the current span.

    The SDK span under it then carries that call's token metrics; a framework span for the same
    model call (LangChain's `ChatOllama` run, say) should carry none, so nothing is counted twice.
    """
    return bool(getattr(span, _TOKENS_MARKER, False))


# Set on that span when the call is written: the output of its SDK span, for an adapter whose
# span stands for the same model call (LlamaIndex's `Ollama.chat`) to show as its own output.
_OUTPUT_MARKER = "_braintrust_ollama_output"


def output_under(span: Any) -> Any:
    """The output of the last traced Ollama SDK call made while `span` was current, once written.

    None before such a call has finished (or when it failed). It is the SDK span's own output
    (for a chat, the reply as choices: the assistant message with its tool calls and thinking,
    streamed or not), so a framework span standing for that one model call can carry it without
    parsing Ollama responses itself.
    """
    return getattr(span, _OUTPUT_MARKER, None)


def has_destination() -> bool:
    """True when a span would be written somewhere: a current span, logger, experiment or parent."""
    try:
        return get_span_parent_object() is not NOOP_SPAN
    except Exception:
        warn_once(_log, "could not look up the current Braintrust span")
        return False


# True while a traced `_request` runs. A `_request` reached from inside it is the same call (a
# `Client` subclass's own `_request` calling `super()._request()`, each wrapped by us): it is
# passed through, so the call is one span with the outermost wrapper's settings.
IN_TRACED_REQUEST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "braintrust_ollama_in_traced_request", default=False
)
# Where a client (instance or class) says whether its spans hold inputs and outputs.
RECORD_CONTENT_ATTR = "_braintrust_ollama_record_content"
# Frames of these packages (and their modules) are never the caller of a traced call: the SDK and
# what wraps it, the frameworks the adapters trace and what they run calls on (tasks, threads).
NOT_CALLERS = (
    "ollama",
    "wrapt",
    "braintrust",
    "braintrust_ollama_langchain",
    "braintrust_ollama_llamaindex",
    "braintrust_ollama_fastapi",
    "langchain",
    "langchain_core",
    "langchain_ollama",
    "langgraph",
    "llama_index",
    "llama_index_instrumentation",
    "workflows",  # llama-index-workflows: LlamaIndex's agents and workflows run on it
    "fastapi",
    "starlette",
    "anyio",
    "asyncio",
    "concurrent.futures",
    "threading",
)
_OUR_FRAMES = frozenset({__name__, f"{__package__}.patchers", f"{__package__}._stream"})
# What runs asyncio tasks and threads: past its frames, the stack is whoever started the event
# loop or the thread, no longer the chain of calls that made this one.
_RUNNERS = ("asyncio.events", "threading")
# The SDK's direct caller is the last resort (see `_caller_location`): past these only.
_SDK_SIDE = ("ollama", "wrapt", "braintrust")
# What a module's frames are to the caller search, by module name (a few hundred names at most).
_USER, _SKIPPED, _RUNNER = 0, 1, 2
_kinds: dict[str, int] = {}
# The user's line where the current framework run began (see `remember_caller`).
_run_caller: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "braintrust_ollama_run_caller", default=None
)


# Makes a call's "written yet?" check and its mark one step.
_writing = threading.Lock()


class OllamaCall:
    """A traced call in flight: which endpoint, what was asked, when, where from, and under
    which parent."""

    __slots__ = (
        "_caller",
        "_content",
        "_host",
        "_kept",
        "_model",
        "_parent",
        "_request",
        "_start",
        "endpoint",
        "finished",
    )

    def __init__(
        self,
        endpoint: tracing.Endpoint,
        request: Any,
        host: str | None,
        parent: Any,
        *,
        content: bool = True,
        caller: dict[str, Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._request = request
        self._host = host
        self._content = content
        self._caller = caller
        # A span, logger or experiment to start the span on; for a parent given as an exported
        # slug (`braintrust.parent_context`), the call's context, where Braintrust resolves it.
        self._parent = parent if hasattr(parent, "start_span") else contextvars.copy_context()
        self._start = time.time()
        self.finished = False
        self._kept: list[Any] | None = None  # the raw JSON the SDK last built from
        self._model: tuple[str, str, Any, Any] | None = None  # host, model, entry, client

    def _inspect(self, client: Any) -> None:
        """For a chat or generate call: look the model up (never waiting for it)."""
        model = self._request.get("model")
        if self._host and isinstance(model, str) and model:
            entry = MODEL_INFO.look_up(self._host, model, client, server_of)
            if entry is not None:
                self._model = (self._host, model, entry, client)

    def sdk_args(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """The SDK `_request` arguments to call with: for an inspected endpoint, the response
        type (`args[0]`) replaced by a `response_reader`, which keeps the raw JSON."""
        if not self.endpoint.inspected or not args or not isinstance(args[0], type):
            return args
        try:
            build, self._kept = response_reader(args[0])
            return (build, *args[1:])
        except Exception:
            warn_once(_log, "could not read a response's raw JSON")
            return args

    @classmethod
    def begin(cls, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> OllamaCall | None:
        """Start tracing an SDK `_request(cls, method, path, ...)`, or None if it is not traced.

        Not traced: endpoints not in `tracing.ENDPOINTS`, and calls with no Braintrust logger,
        experiment or parent span to write to (then the call costs one lookup and nothing else),
        and a `_request` reached from inside a traced one (`IN_TRACED_REQUEST`).
        """
        try:
            if IN_TRACED_REQUEST.get():
                return None
            path = args[2] if len(args) > 2 else kwargs.get("url")
            endpoint = tracing.ENDPOINTS.get(path) if isinstance(path, str) else None
            if endpoint is None:
                return None
            parent = get_span_parent_object()
            if parent is NOOP_SPAN:
                return None
            if isinstance(parent, braintrust.Span):
                setattr(parent, _TOKENS_MARKER, True)
            call = cls(
                endpoint,
                kwargs.get("json") or {},
                _client_host(client),
                parent,
                content=getattr(client, RECORD_CONTENT_ATTR, True),
                caller=_caller_location(),
            )
            if endpoint.inspected:
                call._inspect(client)
            return call
        except Exception:
            warn_once(_log, "could not start a span")
            return None

    def finish_response(self, response: Any) -> None:
        """End with a whole (non-streamed) response."""
        try:
            end = time.time()
            endpoint = self.endpoint
            self.write(
                functools.partial(endpoint.output, response, self._request),
                response,
                end,
                first_token=end,
                more_metadata=functools.partial(endpoint.response_metadata, response),
                answer=functools.partial(endpoint.answer, response),
            )
        except Exception:
            warn_once(_log, "could not record a response")

    def stream(self) -> CallStream:
        """The accumulator a traced stream feeds: see `CallStream`."""
        return CallStream(self)

    def write(
        self,
        output: Callable[[], Any] | None,
        last: Any,
        end: float,
        *,
        first_token: float | None,
        error: BaseException | None = None,
        more_metadata: Callable[[], dict[str, Any]] | None = None,
        unfinished_at_exit: bool = False,
        answer: Callable[[], Answer | None] | None = None,
    ) -> None:
        """Write the span: `output()` builds its output; `last` is the response or final chunk
        holding the counters; `more_metadata()` is what the response said beyond its output
        (log probabilities: content, so asked only when content is recorded); `answer()` what
        the model returned (for an inspected endpoint's checks).

        Each field is built on its own: one that cannot be built is left out (a part of one, as
        `tracing.LeftOut` says), and the span is written with everything else and
        `metadata.not_recorded`, what was left out and why. Written once, even when two threads
        end the call at once (the exit pass and a thread still reading the stream)."""
        with _writing:
            if self.finished:
                return
            self.finished = True
        endpoint = self.endpoint
        left_out: dict[str, str] = {}
        metrics = _built(left_out, "metrics", endpoint.metrics, last)
        metrics = {} if metrics is _LEFT_OUT else metrics
        if first_token is not None and endpoint.has_first_token:
            metrics["time_to_first_token"] = first_token - self._start
        metrics["end"] = end
        metadata = _built(left_out, "metadata", endpoint.metadata, self._request, last, self._host)
        metadata = {"provider": "ollama"} if metadata is _LEFT_OUT else metadata
        if self._content and more_metadata is not None:
            more = _built(left_out, "metadata", more_metadata)
            if more is not _LEFT_OUT:
                metadata.update(more)
        if unfinished_at_exit:  # a stream the interpreter's exit left unfinished
            metadata["unfinished_at_exit"] = True
        if endpoint.inspected:
            self._add_insight(metadata, metrics, last, answer, failed=error is not None)
        event: dict[str, Any] = {"metadata": metadata, "metrics": metrics}
        shown = None
        if self._content:
            for field, build in (("input", functools.partial(endpoint.input, self._request)),
                                 ("output", output)):  # fmt: skip
                value = _built(left_out, field, build) if build is not None else None
                if value is not _LEFT_OUT:
                    event[field] = value
            shown = event.get("output")
        if left_out:
            metadata["not_recorded"] = left_out
        if self._caller is not None:
            event["context"] = self._caller
        if error is not None:
            event["error"] = stringify_exception(type(error), error, error.__traceback__)
            status = getattr(error, "status_code", None)
            if status is not None:
                metadata["status_code"] = status
        if isinstance(self._parent, braintrust.Span):
            setattr(self._parent, _OUTPUT_MARKER, shown)
        fields: dict[str, Any] = {
            "name": endpoint.name,
            "type": endpoint.type,
            "start_time": self._start,
        }
        if isinstance(self._parent, contextvars.Context):
            self._parent.run(braintrust.start_span, **fields, **event)
        else:
            self._parent.start_span(**fields, **event)

    def _add_insight(
        self,
        metadata: dict[str, Any],
        metrics: dict[str, Any],
        last: Any,
        answer: Callable[[], Answer | None] | None,
        *,
        failed: bool,
    ) -> None:
        """What the model is and why its answer may be bad (`_insight`); after a cold start
        (or while `/api/ps` has not listed the model yet), `/api/ps` is asked again, for the
        next span."""
        try:
            entry = self._model[2] if self._model else None
            found, counted = inspect_call(
                self._request,
                last,
                answer() if answer is not None else None,
                entry.facts if entry is not None else None,
                cached_tokens=_cached_tokens(last, self._kept),
                failed=failed,
            )
            metadata.update(found)
            metrics.update(counted)
            if self._model is not None and not failed:  # for the next span
                load = getattr(last, "load_duration", None)
                cold = load is not None and load > tracing.COLD_START_SECONDS * 1e9
                MODEL_INFO.loaded_again(*self._model, server_of, cold=cold)
        except Exception:
            warn_once(_log, "could not inspect a response")

    def fail(self, error: BaseException) -> None:
        """End with the error the SDK call raised."""
        try:
            self.write(None, None, time.time(), first_token=None, error=error)
        except Exception:
            warn_once(_log, "could not record an error")


class CallStream:
    """A streamed call's accumulator: `add(chunk)` per chunk (from the second chunk on, the
    endpoint's `Stream.add` itself, which only appends), then `finish(error)` once, which writes
    the span with the output seen so far. `reader` is the id of the thread reading the stream
    (set by the stream: see `_stream`).
    """

    __slots__ = ("_call", "_stream", "add", "first_token", "reader")

    def __init__(self, call: OllamaCall) -> None:
        self._call = call
        self._stream = call.endpoint.stream()
        self.first_token: float | None = None
        self.add: Any = self._first
        self.reader: int | None = None

    def _first(self, chunk: Any) -> None:
        self.first_token = time.time()
        self.add = self._stream.add
        self.add(chunk)

    def stop_reading(self) -> None:
        """After a failure in our own code: log it once, and keep the output seen so far."""
        warn_once(_log, "could not read a stream chunk")
        self.add = _ignore

    def finish(self, error: BaseException | None = None, *, at_exit: bool = False) -> None:
        call = self._call
        if call.finished:
            return
        try:
            stream = self._stream
            call.write(
                functools.partial(stream.output, call._request),
                stream.last,
                time.time(),
                first_token=self.first_token,
                error=error,
                more_metadata=stream.response_metadata,
                unfinished_at_exit=at_exit,
                answer=stream.answer,
            )
        except Exception:
            warn_once(_log, "could not record a stream")


_LEFT_OUT: Any = object()  # what `_built` gives for a field that could not be built


def _built(left_out: dict[str, str], field: str, build: Callable[..., Any], *args: Any,
           **kwargs: Any) -> Any:  # fmt: skip
    """`build(*args, **kwargs)`: a span field. `_LEFT_OUT` when building it failed (logged
    once), and `left_out[field]` says why; a builder that left out only a part of the field
    (`tracing.LeftOut`) gives the rest, and `left_out` names the part."""
    try:
        return build(*args, **kwargs)
    except tracing.LeftOut as partial:
        left_out[partial.part] = partial.why
        return partial.value
    except Exception as error:
        warn_once(_log, f"could not record a span's {field}")
        left_out[field] = f"{type(error).__name__}: {error}"[:_WHY_CHARS]
        return _LEFT_OUT


_WHY_CHARS = 200


def _ignore(chunk: Any) -> None:
    pass


def response_reader(cls: Any) -> tuple[Callable[..., Any], list[Any]]:
    """What the SDK's `_request(cls, ...)` is given as `cls`, the response type it builds each
    response or stream chunk with (`cls(**json)`), and where it keeps the last raw JSON object:
    it builds the same object the SDK would, and the raw JSON holds the fields the SDK's
    pydantic models drop when they do not declare them (`prompt_eval_cached_count`). For a plain
    pydantic model (no `__init__` of its own, as every ollama response type) it validates the
    JSON as `cls(**json)` does, without unpacking it twice: about 0.1 µs a stream chunk.
    tests/core/test_local_model_problems.py fails if an SDK release stops building responses
    this way."""
    kept: list[Any] = [None]
    if _plain_model(cls):
        validate = cls.model_validate

        def build(**part: Any) -> Any:
            kept[0] = part
            return validate(part)

    else:

        def build(**part: Any) -> Any:
            kept[0] = part
            return cls(**part)

    return build, kept


@functools.lru_cache(maxsize=64)
def _plain_model(cls: type) -> bool:
    """A pydantic model that builds from keywords as `model_validate` does (no `__init__`)."""
    return issubclass(cls, BaseModel) and cls.__init__ is BaseModel.__init__


def _cached_tokens(last: Any, kept: list[Any] | None) -> int | None:
    """`prompt_eval_cached_count` from the raw JSON the SDK last built from (`kept`, see
    `response_reader`), else from the SDK's field, on an SDK that declares one."""
    if last is None:
        return None
    if kept is not None and kept[0] is not None:
        value = kept[0].get("prompt_eval_cached_count")
    else:  # no raw JSON kept: an SDK that declares the field has it
        value = tracing._field(last, "prompt_eval_cached_count")
    return value if type(value) is int and value >= 0 else None


def _caller_location() -> dict[str, Any] | None:
    """The user's line that made the call: the first frame outside our tracing modules, the SDK
    and the frameworks of `NOT_CALLERS`. A few frame hops, each a dict lookup; no
    `inspect.stack()`. A call a framework makes on an asyncio task or a thread of its own (a
    LlamaIndex workflow step, a LangGraph node) has no line of the user's on its stack: it gets
    the line where that framework run began (`remember_caller`), when an adapter remembered one,
    else the line that started the event loop or the thread; failing all, the SDK's direct
    caller."""
    frame, crossed = _user_frame(sys._getframe(1))
    if frame is not None and not crossed:
        return _location(frame)
    remembered = _run_caller.get()
    if remembered is not None:
        return remembered
    if frame is not None:
        return _location(frame)
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if module.partition(".")[0] not in _SDK_SIDE and module not in _OUR_FRAMES:
            return _location(frame)
        frame = frame.f_back
    return None


def _user_frame(frame: Any) -> tuple[Any, bool]:
    """The first frame from `frame` outwards that is the user's (None if none), and whether the
    search went past the code running tasks or threads (`_RUNNERS`) to find it."""
    crossed = False
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        kind = _kinds.get(module)
        if kind is None:
            kind = _kinds[module] = _kind(module)
        if kind == _USER:
            return frame, crossed
        if kind == _RUNNER:
            crossed = True
        frame = frame.f_back
    return None, crossed


def _kind(module: str) -> int:
    def within(names: tuple[str, ...]) -> bool:
        return any(module == name or module.startswith(name + ".") for name in names)

    if within(_RUNNERS):
        return _RUNNER
    return _SKIPPED if module in _OUR_FRAMES or within(NOT_CALLERS) else _USER


def _location(frame: Any) -> dict[str, Any]:
    code = frame.f_code
    return {
        "caller_functionname": code.co_name,
        "caller_filename": code.co_filename,
        "caller_lineno": frame.f_lineno,
    }


def remember_caller() -> None:
    """Remember, in the current context, the user's line that is starting a framework run.

    An adapter calls it where a run begins (LlamaIndex's root span, LangChain's root run): an
    Ollama call the run makes on a task or thread of its own, whose stack does not reach the
    user's code, gets this line as its caller. It stays in this context until the next run.
    """
    try:
        frame, crossed = _user_frame(sys._getframe(1))
        if frame is not None and not crossed:
            _run_caller.set(_location(frame))
    except Exception:
        warn_once(_log, "could not find the caller of a framework run")


def _client_host(client: Any) -> str | None:
    """The client's server as `scheme://host:port`, cached per underlying httpx client."""
    try:
        http = _http_client(client)
        cached = client.__dict__.get("_braintrust_ollama_host")
        if cached is None or cached[0] is not http:
            cached = (http, tracing.host_without_credentials(http.base_url))
            client.__dict__["_braintrust_ollama_host"] = cached
        return cached[1]
    except Exception:
        return None


def server_of(client: Any) -> Server:
    """How to reach an SDK client's server, for the model-info fetch: its base URL and headers
    (credentials included, never logged)."""
    http = _http_client(client)
    return Server(str(http.base_url), tuple(http.headers.items()))


def _http_client(client: Any) -> Any:
    """The SDK client's httpx client: the one private name of the SDK read besides the patch
    point (`client._client`; its base URL is nowhere public)."""
    return client._client
