"""Upload later: send traces from the local store to a Braintrust project once online.

Rows go through the `braintrust` SDK's own background logger (login, project registration,
batching, retries, attachment upload), as a traced program's rows would, in its synchronous mode,
in batches of at most `BATCH_ROWS` rows (well within its queue, which drops the oldest rows past
25,000): each batch is taken whole, or the push stops. Each stored span is sent as one whole
row with its own `id`, span ids and parents; Braintrust keeps one row per `id`, so pushing a
trace twice replaces it instead of duplicating it. Attachments stored with the trace are uploaded
with it under the key, file name and content type they were stored with, so a second push writes
the same objects again instead of new ones.

Every wait on Braintrust (the login, each batch) lasts at most `timeout_s`: when Braintrust
fails, refuses or does not answer, the push stops and says what it sent.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import braintrust
from braintrust.logger import Attachment

from braintrust_ollama._braintrust import background_of, use_daemon_request_pool
from braintrust_ollama._delivery import DEFAULT_TIMEOUT_S, explain, quiet
from braintrust_ollama._rows import map_attachments, resolved
from braintrust_ollama.local.store import LocalStore, StoredAttachment

__all__ = ["BATCH_ROWS", "PushError", "PushReport", "push_traces"]

BATCH_ROWS = 1_000
# Well under Braintrust's request size (6 MB by default): each batch is posted as one request,
# taken or refused whole, so that the report says exactly what Braintrust took.
BATCH_BYTES = 1_000_000
_T = TypeVar("_T")


@dataclass
class PushReport:
    """What Braintrust took: the traces whose every span it took, spans and attachments."""

    project: str
    project_id: str = ""
    traces: list[str] = field(default_factory=list)
    spans: int = 0
    attachments: int = 0


class PushError(Exception):
    """Braintrust refused or did not answer part of a push: `report` is what it took."""

    def __init__(self, reason: str, report: PushReport) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = report


def push_traces(
    store: LocalStore,
    root_span_ids: Sequence[str],
    *,
    project: str,
    api_key: str | None = None,
    app_url: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> PushReport:
    """Send the traces `root_span_ids` to `project` (created if new), batch by batch, each
    waited for at most `timeout_s`. Credentials as for `braintrust.init_logger`
    (`BRAINTRUST_API_KEY`, ...). Raises `PushError` (with what was taken) when Braintrust
    fails, refuses or does not answer."""
    report = PushReport(project)
    use_daemon_request_pool()  # a post that never gets an answer does not hold the exit
    logger = braintrust.init_logger(
        project=project, api_key=api_key, app_url=app_url, set_current=False
    )
    background: Any = background_of(logger)
    log_rows = type(background).log.__get__(background)
    flush_rows = type(background).flush.__get__(background)
    background.sync_flush = True  # a flush raises when a batch is not taken
    quiet(background)
    background.flush = lambda batch_size=None: None  # its exit hook: never waits on a stuck one
    try:
        report.project_id = _within(timeout_s, lambda: logger.project.id)  # login, registration
        for batch, complete, attachments in _batches(store, root_span_ids, report.project_id):
            log_rows(*map(resolved, batch))
            _within(timeout_s, functools.partial(flush_rows, len(batch)))  # one request
            report.spans += len(batch)
            report.attachments += attachments
            report.traces += complete
    except Exception as error:
        raise PushError(explain(error, during="push"), report) from error
    return report


def _batches(
    store: LocalStore, roots: Sequence[str], project_id: str
) -> Iterator[tuple[list[dict[str, Any]], list[str], int]]:
    """Rows ready for Braintrust, at most `BATCH_ROWS` and `BATCH_BYTES` a batch (a trace may
    span batches), with the traces each batch completes and its attachment count."""
    batch: list[dict[str, Any]] = []
    complete: list[str] = []
    attachments = size = 0
    limit = min(BATCH_ROWS, _queue_size())
    for root in roots:
        for row in store.rows(root):
            outgoing, found = _for_braintrust(row, project_id, store)
            row_size = len(json.dumps(row, default=str))
            if batch and (len(batch) >= limit or size + row_size > BATCH_BYTES):
                yield batch, complete, attachments
                batch, complete, attachments, size = [], [], 0, 0
            batch.append(outgoing)
            attachments += found
            size += row_size
        complete.append(root)
    if batch or complete:
        yield batch, complete, attachments


def _queue_size() -> int:
    """Braintrust's queue length (`BRAINTRUST_QUEUE_SIZE`, 25,000 by default): a batch fits."""
    try:
        return max(1, int(os.environ.get("BRAINTRUST_QUEUE_SIZE", BATCH_ROWS)))
    except ValueError:
        return BATCH_ROWS


def _within(timeout_s: float, call: Callable[[], _T]) -> _T:
    """`call()` in a thread of its own, waited for at most `timeout_s`."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, name="braintrust-ollama-push", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer from Braintrust within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _for_braintrust(
    row: dict[str, Any], project_id: str, store: LocalStore
) -> tuple[dict[str, Any], int]:
    """The stored row as Braintrust's logs3 takes it: a whole row (not a merge) in `project_id`,
    with the attachments whose bytes the store holds ready for upload."""
    found = 0

    def restore(reference: Any) -> Any:
        nonlocal found
        stored = store.attachment(reference["key"]) if isinstance(reference, dict) else None
        if stored is None:
            return None  # its bytes are not in the store: the reference goes as it is
        found += 1
        return _kept_attachment(stored, reference)

    outgoing = {
        k: map_attachments(v, restore) for k, v in row.items() if k not in ("project_id", "org_id")
    }
    outgoing.update(project_id=project_id, log_id="g")
    return outgoing, found


def _kept_attachment(stored: StoredAttachment, reference: dict[str, Any]) -> Attachment:
    """A stored attachment, uploaded by the SDK under the reference the stored row holds (its
    key, file name and content type), where a new `Attachment` gets a new random key: its
    `reference` is the very dict the upload sends (braintrust 0.10 to today)."""
    attachment = Attachment(
        data=stored.data,
        filename=reference.get("filename") or stored.filename,
        content_type=reference.get("content_type") or stored.content_type,
    )
    sent: Any = attachment.reference
    sent["key"] = stored.key
    return attachment
