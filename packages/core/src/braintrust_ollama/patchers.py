"""Where the SDK is patched: `Client._request` and `AsyncClient._request`.

Every traced SDK method (`chat`, `generate`, `embed`, `embeddings`) goes through `_request`,
which each call looks up on the client. Patching it therefore reaches module functions
(`ollama.chat` is a method bound to a default client at import time), functions imported before
setup (`from ollama import chat`), and every `Client` / `AsyncClient`. Patching `Client.chat`
would miss the first two. Each patch is idempotent through its marker and undone exactly.
"""

from __future__ import annotations

import inspect
from typing import Any

import wrapt

from ._call import RECORD_CONTENT_ATTR, OllamaCall, has_destination
from ._stream import traced_async_stream, traced_stream

PATCH_MARKER = "__braintrust_ollama_patched__"


def _traced_request(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    call = OllamaCall.begin(instance, args, kwargs)
    if call is None:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*call.sdk_args(args), **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    if kwargs.get("stream"):
        return traced_stream(result, call)
    call.finish_response(result)
    return result


async def _traced_async_request(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    call = OllamaCall.begin(instance, args, kwargs)
    if call is None:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*call.sdk_args(args), **kwargs)
    except BaseException as error:
        call.fail(error)
        raise
    if kwargs.get("stream"):
        return traced_async_stream(result, call)
    call.finish_response(result)
    return result


def _wrapper_for(client_class: type) -> Any:
    import ollama

    return (
        _traced_async_request if issubclass(client_class, ollama.AsyncClient) else _traced_request
    )


def _traced(original: Any, client_class: type) -> wrapt.FunctionWrapper:
    """`original` wrapped with our tracing wrapper. wrapt asks `has_destination` first, and with
    no Braintrust logger, experiment or span to write to it calls `original` directly from C:
    untraced calls pay one lookup."""
    return wrapt.FunctionWrapper(original, _wrapper_for(client_class), enabled=has_destination)


def _is_ours(attribute: Any) -> bool:
    return isinstance(attribute, wrapt.FunctionWrapper) and attribute._self_wrapper in (
        _traced_request,
        _traced_async_request,
    )


def is_patched(client_class: type) -> bool:
    return bool(client_class.__dict__.get(PATCH_MARKER, False))


def patch_class(client_class: Any, *, record_content: bool = True) -> None:
    """Trace every instance of `client_class` (idempotent; a second call updates the setting)."""
    setattr(client_class, RECORD_CONTENT_ATTR, record_content)
    if is_patched(client_class):
        return
    original = client_class.__dict__["_request"]
    client_class._request = _traced(original, client_class)
    setattr(client_class, PATCH_MARKER, True)


def unpatch_class(client_class: Any) -> None:
    """Put back the `_request` that `patch_class` replaced."""
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
    client.__dict__[RECORD_CONTENT_ATTR] = record_content
    if client.__dict__.get(PATCH_MARKER):
        return
    client_class: Any = type(client)
    original = inspect.getattr_static(client_class, "_request")  # the wrapper itself, unbound
    if _is_ours(original):  # never unwrap another library's wrapper
        original = original.__wrapped__
    client.__dict__["_request"] = _traced(original.__get__(client, client_class), client_class)
    client.__dict__[PATCH_MARKER] = True
