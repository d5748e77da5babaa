"""Check span input / output against Braintrust's chat schema (`braintrust._generated_types`).

Braintrust's UI thread view and playground read chat messages as `ChatCompletionMessageParam`
(the TypedDicts its SDK ships, generated from its OpenAPI spec). These helpers walk those
TypedDicts directly (their annotations, `Literal`, unions, `NotRequired`), so the check is the
SDK's own definition on every braintrust version the tests run with, with no pydantic
restriction on `typing.TypedDict` before Python 3.12.

Two things are not plain JSON in a logged row and are read as Braintrust reads them:
- an attachment reference (`{"type": "braintrust_attachment", ...}`, what an `Attachment` becomes
  in a row) stands where a URL string is expected, as Braintrust's own integrations log images;
- `EXTRA_KEYS`: keys beyond a message's declared ones that are allowed (the schema's objects are
  open; Braintrust ignores unknown keys). Any other extra key is reported, so Ollama's own shape
  (`thinking`, `images`, dict `arguments`) cannot slip through.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from braintrust import _generated_types as generated
from typing_extensions import NotRequired, Required, is_typeddict

__all__ = ["EXTRA_KEYS", "chat_schema_errors", "choices_errors", "message_errors"]

# Extra keys allowed per message role: Ollama's `tool_name` on a tool result, generate's
# `suffix` on its prompt (where Braintrust's Ollama plugin puts it).
EXTRA_KEYS: Mapping[str, frozenset[str]] = {
    "tool": frozenset({"tool_name"}),
    "user": frozenset({"suffix"}),
}
ATTACHMENT_TYPES = frozenset({"braintrust_attachment", "external_attachment"})
MESSAGE = generated.ChatCompletionMessageParam


def chat_schema_errors(row: Mapping[str, Any]) -> list[str]:
    """What in a chat-shaped span's input (a list of messages) and output (OpenAI-style choices,
    each an assistant message) is not in Braintrust's schema; an absent input or output is not
    checked."""
    errors: list[str] = []
    messages = row.get("input")
    if messages is not None:
        if not isinstance(messages, list):
            errors.append(f"input: expected a list of messages, got {type(messages).__name__}")
        else:
            for i, message in enumerate(messages):
                errors.extend(message_errors(message, f"input[{i}]"))
    output = row.get("output")
    if output is not None:
        errors.extend(choices_errors(output, "output"))
    return errors


# A choice's keys: OpenAI's, and an image model's generated image (an attachment: Braintrust's
# chat schema has no assistant image, so it cannot be in the message; see tracing.py).
CHOICE_KEYS = frozenset({"index", "finish_reason", "message", "image"})


def choices_errors(output: Any, where: str) -> list[str]:
    """Why `output` is not `[{"index", "finish_reason", "message": <assistant message>}]`."""
    if not isinstance(output, list) or not output:
        return [f"{where}: expected a list of choices, got {output!r:.80}"]
    errors: list[str] = []
    for i, choice in enumerate(output):
        at = f"{where}[{i}]"
        if not isinstance(choice, Mapping):
            errors.append(f"{at}: expected a choice object, got {type(choice).__name__}")
            continue
        errors.extend(f"{at}: unexpected key {key!r}" for key in choice if key not in CHOICE_KEYS)
        if choice.get("index") != i:
            errors.append(f"{at}.index: {choice.get('index')!r}, expected {i}")
        if not isinstance(choice.get("finish_reason"), str):
            errors.append(f"{at}.finish_reason: expected a string")
        if "image" in choice and not _is_attachment(choice["image"]):
            errors.append(f"{at}.image: expected an attachment")
        message = choice.get("message")
        errors.extend(message_errors(message, f"{at}.message"))
        if isinstance(message, Mapping) and message.get("role") != "assistant":
            errors.append(f"{at}.message: role {message.get('role')!r}, expected 'assistant'")
    return errors


def message_errors(message: Any, where: str) -> list[str]:
    """Why `message` is not a `ChatCompletionMessageParam`, or [] when it is one."""
    if not isinstance(message, Mapping):
        return [f"{where}: expected a message object, got {type(message).__name__}"]
    allowed = EXTRA_KEYS.get(message.get("role"), frozenset())
    errors = _errors({k: v for k, v in message.items() if k not in allowed}, MESSAGE, where)
    return errors


def _errors(value: Any, annotation: Any, where: str) -> list[str]:
    origin = get_origin(annotation)
    if annotation is Any:
        return []
    if origin in (NotRequired, Required, typing.Annotated):
        return _errors(value, get_args(annotation)[0], where)
    if origin is Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        variants = get_args(annotation)
        options = [_errors(value, option, where) for option in variants]
        if any(not errors for errors in options):
            return []
        # Report the variant of the same kind (same `role` / `type`) when there is one.
        same_kind = [
            e for e, v in zip(options, variants, strict=True) if _same_kind(value, v)
        ] or options
        closest = min(same_kind, key=len)
        return closest if len(same_kind) == 1 else [f"{where}: matches no variant: {closest}"]
    if origin is Literal:
        allowed = get_args(annotation)
        return [] if value in allowed else [f"{where}: {value!r} is not one of {allowed}"]
    if is_typeddict(annotation):
        return _typeddict_errors(value, annotation, where)
    if origin in (Sequence, list, tuple) or annotation in (Sequence, list):
        if not isinstance(value, (list, tuple)):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        (item,) = get_args(annotation) or (Any,)
        return [e for i, v in enumerate(value) for e in _errors(v, item, f"{where}[{i}]")]
    if origin in (Mapping, dict) or annotation in (Mapping, dict):
        ok = isinstance(value, Mapping)
        return [] if ok else [f"{where}: expected an object, got {type(value).__name__}"]
    if annotation is type(None) or annotation is None:
        return [] if value is None else [f"{where}: expected null, got {value!r}"]
    if annotation is str:
        if isinstance(value, str) or _is_attachment(value):
            return []
        return [f"{where}: expected a string, got {type(value).__name__}"]
    if annotation is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected a number, got {value!r}"]
    if annotation in (int, bool):
        ok = isinstance(value, annotation) and (annotation is bool or not isinstance(value, bool))
        return [] if ok else [f"{where}: expected {annotation.__name__}, got {value!r}"]
    raise TypeError(f"{where}: no check for annotation {annotation!r}")


def _typeddict_errors(value: Any, typeddict: Any, where: str) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"{where}: expected an object, got {type(value).__name__}"]
    hints = get_type_hints(typeddict, vars(generated), include_extras=True)
    errors = [f"{where}: unexpected key {key!r}" for key in value if key not in hints]
    for key, annotation in hints.items():
        if key in value:
            errors.extend(_errors(value[key], annotation, f"{where}.{key}"))
        elif get_origin(annotation) is not NotRequired:
            errors.append(f"{where}: missing key {key!r}")
    return errors


def _same_kind(value: Any, variant: Any) -> bool:
    """False when `variant` is null or an object whose `role` / `type` literal rules `value` out."""
    if variant is type(None):
        return value is None
    if not (is_typeddict(variant) and isinstance(value, Mapping)):
        return True
    hints = get_type_hints(variant, vars(generated), include_extras=True)
    for key in ("role", "type"):
        annotation = hints.get(key)
        if get_origin(annotation) is Literal and value.get(key) not in get_args(annotation):
            return False
    return True


def _is_attachment(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") in ATTACHMENT_TYPES
