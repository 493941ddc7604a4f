"""Job events: which change of a job is worth telling, and how it looks on the wire.

The DynamoDB stream of the jobs table is the one source of events. Each record carries the job before and
after a write; ``event_for`` turns a pair into at most one event: ``job.<status>`` when the status changed,
``job.output.ready`` when an output was finished and uploaded before the job completed (one write per output,
so one event each), ``job.playable`` when an HLS output became playable early (split and stitch, one write),
``job.progress`` when only the progress moved. Writes no client can observe (a heartbeat, the probe result, a
reclaim after a lost lease) give none. The event's timestamp is the job's ``updated_at``, so
replaying a record yields the very same event.
"""

from __future__ import annotations

import json
from typing import Any

from videojobs.job_view import to_resource
from videojobs.models import Job, JobEvent, JobEventType, JobStatus, StoredOutput, status_event_type

# Changes a client sees as progress. (``stage`` is named here so that a job gaining one reports it.)
PROGRESS_FIELDS = ("progress", "stage")
SSE_RETRY_MILLISECONDS = 250
"""How soon an EventSource reconnects after a response ends. Short: a reconnect just waits for news."""


def event_for(old_image: dict[str, Any] | None, new_image: dict[str, Any]) -> JobEvent | None:
    """The event of one change (images as plain JSON types, e.g. ``job_store.from_item``), or None when the
    change is not one a client could observe. Raises ``ValueError`` (pydantic's ``ValidationError``) for an
    image that is not a job."""
    job = Job.model_validate(new_image)
    old = old_image or {}
    if old and old.get("version") == new_image.get("version"):
        return None
    if old.get("status") != job.status.value:
        kind = status_event_type(job.status)
    elif job.status is JobStatus.PROCESSING and (index := newly_ready_output(old, job)) is not None:
        return snapshot(job, JobEventType.OUTPUT_READY, output_index=index)
    elif job.status is JobStatus.PROCESSING and (index := newly_playable_output(old, job)) is not None:
        return snapshot(job, JobEventType.PLAYABLE, output_index=index)
    elif job.status is JobStatus.PROCESSING and any(old.get(f) != new_image.get(f) for f in PROGRESS_FIELDS):
        kind = JobEventType.PROGRESS
    else:
        return None
    return snapshot(job, kind)


def newly_ready_output(old_image: dict[str, Any], job: Job) -> int | None:
    """The first output that is ready in ``job`` and was not in ``old_image``."""
    before = [StoredOutput.model_validate(output).ready for output in old_image.get("outputs") or []]
    for index, output in enumerate(job.outputs):
        if output.ready and not (index < len(before) and before[index]):
            return index
    return None


def newly_playable_output(old_image: dict[str, Any], job: Job) -> int | None:
    """The first output that is playable early in ``job`` and was not in ``old_image``."""
    before = [StoredOutput.model_validate(output).playable_key for output in old_image.get("outputs") or []]
    for index, output in enumerate(job.outputs):
        if output.playable_key and not (index < len(before) and before[index]):
            return index
    return None


def snapshot(job: Job, kind: JobEventType | None = None, *, output_index: int | None = None) -> JobEvent:
    """The event for the job as it is now (by default, the event of its status)."""
    resource = to_resource(job)
    return JobEvent(
        type=kind or status_event_type(job.status),
        timestamp=resource.updated_at,
        data=resource,
        output_index=output_index,
    )


def is_terminal(event: JobEvent) -> bool:
    within = (JobEventType.PROGRESS, JobEventType.OUTPUT_READY, JobEventType.PLAYABLE)
    return event.type not in within and event.data.status.terminal


def to_json(event: JobEvent) -> str:
    """The event's JSON, compact: what a webhook signs and sends, a WebSocket frame, an SSE ``data:`` line."""
    return event.model_dump_json()


def sse_frame(event: JobEvent) -> str:
    """One Server-Sent Event: ``id`` is the version, which ``Last-Event-ID`` sends back on reconnect."""
    return f"id: {event.version}\nevent: {event.type.value}\ndata: {to_json(event)}\n\n"


def sse_body(events: list[JobEvent], retry_milliseconds: int = SSE_RETRY_MILLISECONDS) -> str:
    """A response body of events (possibly none: then only a comment keeps the request alive)."""
    frames = [f"retry: {retry_milliseconds}\n\n"]
    frames += [sse_frame(event) for event in events] or [": no news\n\n"]
    return "".join(frames)


def parse_event(text: str) -> JobEvent:
    return JobEvent.model_validate(json.loads(text))
