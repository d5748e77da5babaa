"""Where the SDK is patched: `Client._request` and `AsyncClient._request` (`PATCHES`).

Every traced SDK call (each endpoint of `tracing.ENDPOINTS`: `chat`, `generate`, `embed`,
`embeddings`, `systemone`, `web_search`, `web_fetch`) goes through `_request`, which each call
looks up on the client. Patching it therefore reaches module functions (`ollama.chat` is a method
bound to a default client at import time), functions imported before setup (`from ollama import
chat`), and every `Client` / `AsyncClient`. Patching `Client.chat` would miss the first two.
Patches go through `_patching`, as every package's do: idempotent (our wrapper is told by its
type), atomic, undone exactly.

Set-ups from many threads at once, and set-ups racing calls, leave exactly one wrapper per class
or instance. A call is one span however many of our wrappers it passes through (a `Client`
subclass whose own `_request` calls `super()._request()`, with `wrap_ollama(client)` and
`setup_ollama()` both): the outermost one traces it, the ones it reaches inside pass it through
(`_call.IN_TRACED_REQUEST`).
"""

from __future__ import annotations

from typing import Any

from . import _patching
from ._call import IN_TRACED_REQUEST, RECORD_CONTENT_ATTR, OllamaCall, has_destination
from ._patching import Patch
from ._stream import traced_async_stream, traced_stream


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


# Where the SDK is patched, for which versions.
REQUIRES = "ollama>=0.4"
PATCHES = (
    Patch("ollama._client:Client._request", _traced_request, REQUIRES, has_destination),
    Patch("ollama._client:AsyncClient._request", _traced_async_request, REQUIRES, has_destination),
)
# wrapt asks `has_destination` before each call: with no Braintrust logger, experiment or span to
# write to, it calls the original `_request` directly from C, so untraced calls pay one lookup.


def patch_clients(*, record_content: bool = True) -> None:
    """Trace every `Client` and `AsyncClient` (idempotent; a second call updates the setting)."""
    with _patching.LOCK:
        for patch in PATCHES:
            setattr(patch.owner(load=True), RECORD_CONTENT_ATTR, record_content)
            patch.apply()


def unpatch_clients() -> None:
    """Put back the `_request` methods `patch_clients` replaced."""
    with _patching.LOCK:
        for patch in PATCHES:
            if patch.remove() and RECORD_CONTENT_ATTR in vars(patch.owner()):
                delattr(patch.owner(), RECORD_CONTENT_ATTR)


def patch_client(client: Any, *, record_content: bool = True) -> None:
    """Trace one client instance (idempotent, and never twice with `patch_clients`).

    The instance gets its own wrapper around the class's *unpatched* `_request`, which shadows
    the class attribute: with both in place a call still yields exactly one span, and the
    instance's `record_content` is the one that holds.
    """
    (patch,) = [p for p in PATCHES if isinstance(client, p.owner(load=True))]
    with _patching.LOCK:
        client.__dict__[RECORD_CONTENT_ATTR] = record_content
        _patching.patch_instance(client, patch.name, patch.wrapper, enabled=patch.enabled)
