"""Span rows as Braintrust's loggers handle them: handed over resolved, copied, and with their
attachments found, replaced or restored, by one walk over a row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from braintrust.logger import BaseAttachment
from braintrust.util import LazyValue

__all__ = ["ATTACHMENT_TYPE", "copy_containers", "map_attachments", "resolved"]

Row = dict[str, Any]
ATTACHMENT_TYPE = "braintrust_attachment"  # Braintrust's AttachmentReference["type"]


def resolved(row: Row) -> LazyValue[Row]:
    """A row already resolved, as a background logger takes it (a lazy value)."""
    return LazyValue(lambda: row, use_mutex=False)


def map_attachments(value: Any, replace: Callable[[Any], Any]) -> Any:
    """A copy of the dicts and lists in `value` (their other leaves shared), each attachment in
    it (a Braintrust `BaseAttachment`, or the reference dict a stored row holds in its place)
    given to `replace`, and replaced by what it returns unless that is None."""
    if isinstance(value, BaseAttachment) or (
        isinstance(value, dict)
        and value.get("type") == ATTACHMENT_TYPE
        and isinstance(value.get("key"), str)
    ):
        replacement = replace(value)
        if replacement is not None:
            return replacement
    if isinstance(value, dict):
        return {key: map_attachments(item, replace) for key, item in value.items()}
    if isinstance(value, list):
        return [map_attachments(item, replace) for item in value]
    return value


def copy_containers(value: Any) -> Any:
    """A copy of the dicts and lists in `value`; their leaves (attachments too) are shared:
    Braintrust's logger merges and rewrites rows in place (an attachment becomes its
    reference), and the local copy reads the same row."""
    return map_attachments(value, _keep)


def _keep(attachment: Any) -> None:
    return None
