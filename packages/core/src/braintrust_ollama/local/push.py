"""Upload later: send traces from the local store to a Braintrust project once online.

Rows go through the `braintrust` SDK's own HTTP logger (login, project registration, batching,
retries, attachment upload), exactly as a traced program's rows would. Each stored span is sent
as one whole row with its own `id`, span ids and parents; Braintrust keeps one row per `id`, so
pushing a trace twice replaces it instead of duplicating it. Attachments stored with the trace
are uploaded with it under the key, file name and content type they were stored with, so the
rows reference them as the local copy does and a second push writes the same objects again
instead of new ones.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import braintrust
from braintrust.logger import Attachment, _internal_get_global_state
from braintrust.util import LazyValue

from braintrust_ollama.local.store import LocalStore, StoredAttachment

__all__ = ["PushError", "PushReport", "push_traces"]

_ATTACHMENT_TYPE = "braintrust_attachment"


class PushError(Exception):
    """Braintrust refused or did not answer part of a push."""


@dataclass(frozen=True)
class PushReport:
    """What a push sent: to which project, how many traces, spans and attachments."""

    project: str
    project_id: str
    traces: int
    spans: int
    attachments: int


def push_traces(
    store: LocalStore,
    root_span_ids: Sequence[str],
    *,
    project: str,
    api_key: str | None = None,
    app_url: str | None = None,
) -> PushReport:
    """Send the traces `root_span_ids` to `project` (created if new) and wait until Braintrust
    has them. Credentials as for `braintrust.init_logger` (`BRAINTRUST_API_KEY`, ...).

    Raises the SDK's error when login or registration fails, `PushError` when rows are not
    taken (rows sent before the failure stay in Braintrust)."""
    logger = braintrust.init_logger(
        project=project, api_key=api_key, app_url=app_url, set_current=False
    )
    project_id = logger.project.id  # logs in and registers the project, or raises
    background: Any = _internal_get_global_state().global_bg_logger()  # the SDK's HTTP logger
    if hasattr(background, "sync_flush"):
        # The SDK's synchronous mode (BRAINTRUST_SYNC_FLUSH): `flush()` raises when a batch
        # cannot be sent, where the background thread would print and drop it.
        background.sync_flush = True
        background.outfile = io.StringIO()  # retry messages; the last error is raised
    spans = attachments = 0
    for root_span_id in root_span_ids:
        for row in store.rows(root_span_id):
            outgoing, count = _for_braintrust(row, project_id, store)
            background.log(_ready(outgoing))
            spans += 1
            attachments += count
    try:
        background.flush()
    except Exception as error:
        first = next(iter(getattr(error, "exceptions", ())), error)  # an ExceptionGroup's
        raise PushError(
            f"Braintrust did not take every row ({first}); push again: nothing is duplicated"
        ) from error
    return PushReport(project, project_id, len(root_span_ids), spans, attachments)


def _for_braintrust(
    row: dict[str, Any], project_id: str, store: LocalStore
) -> tuple[dict[str, Any], int]:
    """The stored row as Braintrust's logs3 takes it: a whole row (not a merge) in `project_id`,
    with the attachments whose bytes the store holds ready for upload."""
    found = 0

    def visit(value: Any) -> Any:
        nonlocal found
        if isinstance(value, dict):
            if value.get("type") == _ATTACHMENT_TYPE and isinstance(value.get("key"), str):
                stored = store.attachment(value["key"])
                if stored is not None:
                    found += 1
                    return _KeptAttachment(stored, value)
                return value
            return {k: visit(v) for k, v in value.items()}
        if isinstance(value, list):
            return [visit(v) for v in value]
        return value

    outgoing = {k: visit(v) for k, v in row.items() if k not in ("project_id", "org_id")}
    outgoing.update(project_id=project_id, log_id="g")
    return outgoing, found


def _ready(row: dict[str, Any]) -> LazyValue[dict[str, Any]]:
    return LazyValue(lambda: row, use_mutex=False)


class _KeptAttachment(Attachment):
    """A stored attachment, uploaded by the SDK under the reference the stored row holds (its
    key, file name and content type), where a new `Attachment` would get a new random key."""

    def __init__(self, stored: StoredAttachment, reference: dict[str, Any]) -> None:
        super().__init__(
            data=stored.data,
            filename=reference.get("filename") or stored.filename,
            content_type=reference.get("content_type") or stored.content_type,
        )
        # braintrust 0.10 to today: `reference` returns `_reference`, whose key the upload sends.
        reference_to_send: Any = self._reference
        reference_to_send["key"] = stored.key
