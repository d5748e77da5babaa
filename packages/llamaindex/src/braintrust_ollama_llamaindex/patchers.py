"""Where the adapter hooks in: the tables `HANDLER`, `CORE` and `OLLAMA_LLM` (one entry per patch
point, with the versions it is for), applied through `braintrust_ollama._patching` as every
package's patches are: idempotent, atomic, undone exactly.

- Streaming methods (`Ollama`'s six, `StructuredLLM.stream_chat` / `astream_chat`, and the base
  `LLM.stream` / `astream` that streaming query engines use) claim the LlamaIndex span their call
  opens, and hand back their stream wrapped in a `StreamSpan`.
- `Workflow.run` (agents are workflows) remembers the user's line calling it: the Ollama calls
  of its steps, which run on tasks of the run's own, name it in their `context`.
- `BraintrustSpanHandler` (patched on the class, so every instance is covered however it was
  registered: ours, Braintrust's `setup_llamaindex()` / `auto_instrument()`, or the user's own):
  - `new_span` leaves out the spans of an LLM's private helpers (`_prepare_chat_with_tools`),
    which LlamaIndex opens only because they are abstract in its base class: they call no model
    and would stand beside the model call as empty duplicates; it gives a workflow run's span
    its question, names a workflow step's span after the step, and has a root span remember the
    user's line that opened it;
  - `prepare_to_exit_span` leaves a claimed span open when LlamaIndex exits it on handing the
    stream back (the `StreamSpan` ends it when the stream does), and likewise a span that
    returns a query's `StreamingResponse` (its text is computed, LLM call included, as the user
    reads it); and it gives a span the output of what ran under it where the handler has none:
    the output of the Ollama SDK call an LLM span made (tool calls included), the object a
    structured prediction returned, a tool's result, a workflow run's answer.

Non-streamed calls (chat, complete, tools, embeddings) already run the Ollama SDK call while
Braintrust's LlamaIndex span is current, so they nest without any patch.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from braintrust_ollama import _patching, output_under, remember_caller
from braintrust_ollama._patching import Patch
from braintrust_ollama._warn import warn_once
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.base.response.schema import (
    AsyncStreamingResponse,
    Response,
    StreamingResponse,
)
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.tools.types import ToolOutput
from llama_index.core.workflow import StopEvent, Workflow
from pydantic import BaseModel

from ._streams import (
    StreamSpan,
    akeep_open,
    collecting_nested,
    keep_open,
    register_nested,
)

_log = logging.getLogger(__name__)

OLLAMA_MODULE = "llama_index.llms.ollama"


class _Claim:
    """A streaming method call in progress, and the LlamaIndex span its stream keeps open."""

    __slots__ = ("instance", "nested", "span", "stream")

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.stream: Any = None
        self.span: StreamSpan | None = None
        self.nested: list[Any] = []  # streams of claimed calls made inside this one


_claim: ContextVar[_Claim | None] = ContextVar("braintrust_ollama_llamaindex_claim", default=None)


# --- the span handler ------------------------------------------------------------------------


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any], *names: str) -> list[Any]:
    """The handler method's arguments `names`, in order of its signature (LlamaIndex passes
    them by keyword; positions are the fallback)."""
    return [
        kwargs[n] if n in kwargs else args[i] if i < len(args) else None
        for i, n in enumerate(names)
    ]


def _is_llm_helper(id_: str, instance: Any) -> bool:
    """A span LlamaIndex opens on an LLM's private method (its id is `Class.method-<uuid>`)."""
    return _method(id_).startswith("_") and isinstance(instance, BaseLLM)


def _new_span(
    wrapped: Callable[..., Any], handler: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`new_span`: an LLM helper's span is tracked by LlamaIndex but gets no Braintrust span. A
    root span remembers the user's line that started the run, for the Ollama calls its workflow
    steps make on tasks of their own."""
    try:
        id_, _, instance, parent_id = _arguments(
            args, kwargs, "id_", "bound_args", "instance", "parent_span_id"
        )
        if _is_llm_helper(id_, instance):
            return BaseSpan(id_=id_, parent_id=parent_id)
        if parent_id is None:
            remember_caller()
    except Exception:
        warn_once(_log, "could not open a LlamaIndex span", unaffected="the LlamaIndex call")
    span = wrapped(*args, **kwargs)
    try:
        _describe(handler, *_arguments(args, kwargs, "id_", "bound_args", "instance"))
    except Exception:
        warn_once(_log, "could not describe a LlamaIndex span", unaffected="the LlamaIndex call")
    return span


def _describe(handler: Any, id_: str, bound_args: Any, instance: Any) -> None:
    """What Braintrust's handler leaves out of a new span: a workflow run's question (its start
    event, or the keyword arguments `run()` makes it from) and a workflow step's name (the
    handler names every step `llamaindex`, or after its workflow)."""
    record = handler._bt_spans.get(id_)
    if record is None:
        return
    method = _method(id_)
    if isinstance(instance, Workflow) and method == "run":
        arguments = bound_args.arguments
        event = arguments.get("start_event")
        fields = _event_fields(event) if event is not None else arguments.get("kwargs") or {}
        question = {k: _plain(v) for k, v in fields.items() if _is_plain(v)}
        if question:
            record.bt_span.log(input=question)
    elif instance is None or (isinstance(instance, Workflow) and method != "run_from"):
        record.bt_span.set_attributes(name=method)


def _method(id_: str) -> str:
    """The method or function a LlamaIndex span id names: `Class.method-<uuid4>` -> `method`."""
    return id_.split("-", 1)[0].rsplit(".", 1)[-1]


def _event_fields(event: Any) -> dict[str, Any]:
    """A workflow event's declared fields and the ones it was given beyond them."""
    fields = {name: getattr(event, name, None) for name in type(event).model_fields}
    fields.update(event.items())
    return fields


def _is_plain(value: Any) -> bool:
    """Text, numbers, messages and lists of them: what a question or an answer is made of (not
    the memory or context objects a run is also handed)."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(_is_plain(v) for v in value)
    return isinstance(value, (str, int, float, ChatMessage)) and value != ""


def _plain(value: Any) -> Any:
    if isinstance(value, ChatMessage):
        return {"role": str(value.role.value), "content": value.content}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _answer(result: Any) -> Any:
    """A workflow run's answer: its `StopEvent`'s result; an agent's reply as `{"response"}`."""
    if isinstance(result, StopEvent):
        result = result.result
    response = getattr(result, "response", None)
    if isinstance(response, ChatMessage):  # an agent's AgentOutput
        answer: dict[str, Any] = {"response": response.content}
        structured = getattr(result, "structured_response", None)
        if structured is not None:
            answer["structured_response"] = structured
        return answer
    if isinstance(result, ChatMessage):
        return _plain(result)
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result


def _drop_span(
    wrapped: Callable[..., Any], handler: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`prepare_to_drop_span`: an LLM helper's span has no Braintrust span to end."""
    try:
        id_, _, instance = _arguments(args, kwargs, "id_", "bound_args", "instance")
        if _is_llm_helper(id_, instance):
            return handler.open_spans.get(id_)
    except Exception:
        warn_once(_log, "could not drop a LlamaIndex span", unaffected="the LlamaIndex call")
    return wrapped(*args, **kwargs)


def _exit_span(
    wrapped: Callable[..., Any], handler: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`prepare_to_exit_span`: a claimed call's stream, or a query's streaming response, keeps
    its span open (returns None); a span gets the output of what ran under it; an LLM helper's
    span has nothing to end."""
    try:
        id_, bound_args, instance, result = _arguments(
            args, kwargs, "id_", "bound_args", "instance", "result"
        )
        if _is_llm_helper(id_, instance):
            return handler.open_spans.get(id_)
        claim = _claim.get()
        if (
            claim is not None
            and claim.span is None
            and _claim_span(handler, claim, id_, bound_args, instance, result)
        ):
            return None
        if _keep_open_while_streaming(handler, id_, bound_args, instance, result):
            return None
        output = _output(handler, id_, instance, result)
        if output is not None:
            handler._bt_spans[id_].bt_span.log(output=output)
            # The handler ends the span with no output of its own to log over this one.
            if "result" in kwargs or len(args) < 4:
                return wrapped(*args, **{**kwargs, "result": None})
            return wrapped(*args[:3], None, *args[4:], **kwargs)
    except Exception:
        warn_once(_log, "could not end a LlamaIndex span", unaffected="the LlamaIndex call")
    return wrapped(*args, **kwargs)


def _output(handler: Any, id_: str, instance: Any, result: Any) -> Any:
    """A span's output where Braintrust's handler has none or less (None: the handler's stands).

    An LLM's chat response: the output of the Ollama SDK call made under the span (the reply as
    choices, with its tool calls and thinking, which the handler leaves out), or, while that
    call is not written yet (an async stream broken off), the text LlamaIndex saw in the same
    shape. A structured prediction: the object. A tool call: its result as the model reads it.
    """
    record = handler._bt_spans.get(id_)  # Braintrust's span for this LlamaIndex span
    if record is None:
        return None
    if isinstance(result, ToolOutput):
        return result.content
    if isinstance(instance, Workflow) and _method(id_) == "run":
        return _answer(result)
    if not isinstance(instance, BaseLLM):
        return None
    if isinstance(result, ChatResponse):
        under = output_under(record.bt_span)
        if under is not None or not _is_ollama_llm(instance):
            return under
        message = {"role": "assistant", "content": result.message.content or ""}
        return [{"index": 0, "finish_reason": "stop", "message": message}]
    if isinstance(result, BaseModel) and not hasattr(result, "raw"):
        return result.model_dump()
    return None


def _is_ollama_llm(instance: Any) -> bool:
    """LlamaIndex's `Ollama` LLM (or a subclass): its chat spans stand for one model call."""
    return any(cls.__module__.startswith(OLLAMA_MODULE) for cls in type(instance).__mro__)


def _claim_span(
    handler: Any, claim: _Claim, id_: str, bound_args: Any, instance: Any, result: Any
) -> bool:
    if instance is not claim.instance:
        return False
    if not (inspect.isgenerator(result) or inspect.isasyncgen(result)):
        return False
    record = handler._bt_spans.get(id_)
    if record is None:
        return False
    braintrust_span = record.bt_span
    braintrust_span.unset_current()  # as Braintrust's handler would on exit: the caller goes on
    claim.stream = result
    claim.span = StreamSpan(handler, id_, bound_args, instance, braintrust_span, claim.nested)
    return True


def _keep_open_while_streaming(
    handler: Any, id_: str, bound_args: Any, instance: Any, result: Any
) -> bool:
    """A query engine's or synthesizer's streaming response: its span stays open, and current
    while each piece of text is computed (LlamaIndex may call the LLM only then), until the text
    is streamed; its output is then the answer and its sources, as for a whole response."""
    if not isinstance(result, (StreamingResponse, AsyncStreamingResponse)):
        return False
    text: Any = result.response_gen
    keep: Callable[[Any, StreamSpan], Any] | None = (
        keep_open if inspect.isgenerator(text) else akeep_open if inspect.isasyncgen(text) else None
    )
    record = handler._bt_spans.get(id_)
    if keep is None or record is None:
        return False

    def answer(streamed: Any) -> Response:
        return Response(streamed, result.source_nodes, result.metadata)

    span = StreamSpan(handler, id_, bound_args, instance, record.bt_span, [], answer)
    result.response_gen = keep(text, span)
    record.bt_span.unset_current()  # as Braintrust's handler would on exit: the caller goes on
    return True


# --- workflow runs ---------------------------------------------------------------------------


def _workflow_run(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`Workflow.run`: the user's line calling it is the caller of the Ollama calls its steps
    make, on asyncio tasks of the run's own."""
    remember_caller()
    return wrapped(*args, **kwargs)


# --- streaming methods -----------------------------------------------------------------------


def _stream_method(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    claim = _Claim(instance)
    token = _claim.set(claim)
    try:
        with collecting_nested(claim.nested):
            stream = wrapped(*args, **kwargs)
    finally:
        _claim.reset(token)
    return _hand_over(claim, stream, keep_open)


async def _astream_method(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    claim = _Claim(instance)
    token = _claim.set(claim)
    try:
        with collecting_nested(claim.nested):
            stream = await wrapped(*args, **kwargs)
    finally:
        _claim.reset(token)
    return _hand_over(claim, stream, akeep_open)


def _hand_over(claim: _Claim, stream: Any, keep: Callable[[Any, StreamSpan], Any]) -> Any:
    """The stream to give the caller: `stream` itself, or wrapped to keep its span open."""
    span = claim.span
    if span is None:
        return stream
    if claim.stream is not stream:  # the claimed span was not this call's: end it as usual
        span.finish()
        return stream
    try:
        kept = keep(stream, span)
        register_nested(kept)
        return kept
    except Exception:
        warn_once(_log, "could not wrap a LlamaIndex stream", unaffected="the LlamaIndex call")
        span.finish()
        return stream


# --- what is patched, for which versions ------------------------------------------------------


def _streaming(
    owner: str, requires: str, sync: tuple[str, ...], async_: tuple[str, ...]
) -> tuple[Patch, ...]:
    """The patches of `owner`'s streaming methods (a method a version lacks is left out)."""
    return (
        *(Patch(f"{owner}.{name}", _stream_method, requires) for name in sync),
        *(Patch(f"{owner}.{name}", _astream_method, requires) for name in async_),
    )


# Each group is installed as its module is imported (integration.py): Braintrust's handler class,
# on the class so every instance is covered however it was registered; core's LLM classes and
# `Workflow.run`; LlamaIndex's `Ollama` LLM.
_HANDLER = "braintrust.integrations.llamaindex.tracing:BraintrustSpanHandler"
HANDLER = (
    Patch(f"{_HANDLER}.new_span", _new_span, "braintrust>=0.48"),
    Patch(f"{_HANDLER}.prepare_to_exit_span", _exit_span, "braintrust>=0.48"),
    Patch(f"{_HANDLER}.prepare_to_drop_span", _drop_span, "braintrust>=0.48"),
)
CORE = (
    *_streaming(
        "llama_index.core.llms.llm:LLM", "llama-index-core>=0.13", ("stream",), ("astream",)
    ),
    *_streaming(
        "llama_index.core.llms.structured_llm:StructuredLLM",
        "llama-index-core>=0.13",
        ("stream_chat",),
        ("astream_chat",),
    ),
    Patch("llama_index.core.workflow:Workflow.run", _workflow_run, "llama-index-core>=0.13"),
)
OLLAMA_LLM = _streaming(
    f"{OLLAMA_MODULE}:Ollama",
    "llama-index-llms-ollama>=0.7",
    ("stream_chat", "stream_complete", "stream_structured_predict"),
    ("astream_chat", "astream_complete", "astream_structured_predict"),
)


def patch() -> bool:
    """Install every patch (idempotent). False if LlamaIndex or its Ollama LLM is missing."""
    return all([_patching.apply(group, load=True) for group in (HANDLER, CORE, OLLAMA_LLM)])


def unpatch() -> None:
    """Remove every patch this adapter installed: each method is the original object again."""
    _patching.remove((*HANDLER, *CORE, *OLLAMA_LLM))
