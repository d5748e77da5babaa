"""Where the SDK is patched: `Client._request` and `AsyncClient._request`.

Every traced SDK method (`chat`, `generate`, `embed`, `embeddings`) goes through `_request`,
which each call looks up on the client. Patching it therefore reaches module functions
(`ollama.chat` is a method bound to a default client at import time), functions imported before
setup (`from ollama import chat`), and every `Client` / `AsyncClient`. Patching `Client.chat`
would miss the first two. Each patch is idempotent through its marker and undone exactly.

Patching is atomic: set-ups from many threads at once, and set-ups racing calls, leave exactly
one wrapper per class or instance (one lock serialises every patch and unpatch). A call is one
span however many of our wrappers it passes through (a `Client` subclass whose own `_request`
calls `super()._request()`, with `wrap_ollama(client)` and `setup_ollama()` both): the
outermost one traces it, the ones it reaches inside pass it through (`_call.IN_TRACED_REQUEST`).
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import wrapt

from ._call import IN_TRACED_REQUEST, RECORD_CONTENT_ATTR, OllamaCall, has_destination
from ._stream import traced_async_stream, traced_stream

PATCH_MARKER = "__braintrust_ollama_patched__"
# Every patch and unpatch holds it: a check and the patch it decides on are one step.
_patching = threading.RLock()


def _traced_request(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    call = OllamaCall.begin(instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    inside = IN_TRACED_REQUEST.set(True)
    try:
        result = wrapped(*call.sdk_args(args), **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    finally:
        IN_TRACED_REQUEST.reset(inside)
    if kwargs.get("stream"):
        return traced_stream(result, call)
    call.finish_response(result)
    return result


async def _traced_async_request(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    call = OllamaCall.begin(instance, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    inside = IN_TRACED_REQUEST.set(True)
    try:
        result = await wrapped(*call.sdk_args(args), **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    finally:
        IN_TRACED_REQUEST.reset(inside)
    if kwargs.get("stream"):
        return traced_async_stream(result, call)
    call.finish_response(result)
    return result


def _wrapper_for(client_class: type) -> Any:
    import ollama

    return (
        _traced_async_request if issubclass(client_class, ollama.AsyncClient) else _traced_request
    )


class _TracedRequest(wrapt.FunctionWrapper):
    """Our wrapper of `_request`: its type tells it from another library's wrapper."""


def _traced(original: Any, client_class: type) -> wrapt.FunctionWrapper:
    """`original` wrapped with our tracing wrapper. wrapt asks `has_destination` first, and with
    no Braintrust logger, experiment or span to write to it calls `original` directly from C:
    untraced calls pay one lookup."""
    return _TracedRequest(original, _wrapper_for(client_class), enabled=has_destination)


def _is_ours(attribute: Any) -> bool:
    return isinstance(attribute, _TracedRequest)


def is_patched(client_class: type) -> bool:
    return bool(client_class.__dict__.get(PATCH_MARKER, False))


def patch_class(client_class: Any, *, record_content: bool = True) -> None:
    """Trace every instance of `client_class` (idempotent; a second call updates the setting)."""
    with _patching:
        setattr(client_class, RECORD_CONTENT_ATTR, record_content)
        if is_patched(client_class):
            return
        original = client_class.__dict__["_request"]
        client_class._request = _traced(original, client_class)
        setattr(client_class, PATCH_MARKER, True)


def unpatch_class(client_class: Any) -> None:
    """Put back the `_request` that `patch_class` replaced."""
    with _patching:
        if not is_patched(client_class):
            return
        patched = client_class.__dict__["_request"]
        client_class._request = patched.__wrapped__
        delattr(client_class, PATCH_MARKER)
        if RECORD_CONTENT_ATTR in client_class.__dict__:
            delattr(client_class, RECORD_CONTENT_ATTR)


def patch_instance(client: Any, *, record_content: bool = True) -> None:
    """Trace one client instance (idempotent, and never twice with `patch_class`).

    The instance gets its own wrapper around the class's *unpatched* `_request`, which shadows
    the class attribute: with both in place a call still yields exactly one span, and the
    instance's `record_content` is the one that holds.
    """
    with _patching:
        client.__dict__[RECORD_CONTENT_ATTR] = record_content
        if client.__dict__.get(PATCH_MARKER):
            return
        client_class: Any = type(client)
        original = inspect.getattr_static(client_class, "_request")  # the wrapper itself, unbound
        if _is_ours(original):  # never unwrap another library's wrapper
            original = original.__wrapped__
        client.__dict__["_request"] = _traced(original.__get__(client, client_class), client_class)
        client.__dict__[PATCH_MARKER] = True
