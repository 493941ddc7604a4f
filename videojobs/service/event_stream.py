"""The ``events`` function's use case: a job's events as Server-Sent Events, read from the event log.

Streamed (``stream_events``): one response carries every event as it happens until the terminal one, with a
keep-alive comment whenever nothing else was sent for a while, and ends cleanly before API Gateway's cap on a
streamed response so that the client resumes with ``Last-Event-ID``. As a long poll (``wait_for_events``, the
fallback where responses are buffered): each response answers what is new, waiting for it up to a limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from videojobs.errors import ApiError, not_found
from videojobs.job_events import SSE_RETRY_MILLISECONDS, is_terminal, snapshot, sse_frame
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode, Job, JobEvent, utcnow
from videojobs.notification_store import EventLog
from videojobs.tenant_counters import OpenStreams, StreamLease
from videojobs.tenant_limits import TenantLimitStore

EVENT_LOG_GRACE = timedelta(seconds=60)
"""Past this, a finished job's missing events are taken as expired from the log rather than still on their way."""


SSE_LEASE_SECONDS = 30
"""A long poll's hold on one of its tenant's open streams: past API Gateway's 29 s and the function's timeout,
so the slot of a poll that was killed or cut off comes back by itself."""


@dataclass(frozen=True)
class EventsDeps:
    jobs: JobStore
    events: EventLog
    limits: TenantLimitStore
    open_streams: OpenStreams
    poll_interval_seconds: float = 0.2
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def follow(
    job_id: str, tenant_id: str, last_version: int, wait_seconds: float, request_id: str, deps: EventsDeps
) -> list[JobEvent] | None:
    """``wait_for_events`` while holding one of the tenant's open streams (``LimitReached``: 429
    ``too_many_streams`` when they are all taken)."""
    maximum = deps.limits.limits_for(tenant_id).max_open_streams
    lease = deps.open_streams.acquire(tenant_id, f"sse-{request_id}", maximum, SSE_LEASE_SECONDS)
    try:
        return wait_for_events(job_id, tenant_id, last_version, wait_seconds, deps)
    finally:
        deps.open_streams.release(lease)


def wait_for_events(
    job_id: str, tenant_id: str, last_version: int, wait_seconds: float, deps: EventsDeps
) -> list[JobEvent] | None:
    """The job's events after ``last_version``, waiting up to ``wait_seconds`` for the first (a long poll).
    An empty list: nothing happened meanwhile (ask again). None: the client has seen the terminal event,
    there will be no more. Raises 404 for another tenant's job."""
    job = deps.jobs.get_for_tenant(tenant_id, job_id)
    if job is None:
        raise not_found()
    deadline = deps.clock() + wait_seconds
    while True:
        events = deps.events.after(job_id, last_version)
        if events:
            end = next((index for index, event in enumerate(events) if is_terminal(event)), len(events) - 1)
            return events[: end + 1]
        if job.status.terminal and job.version <= last_version:
            return None  # the client has seen the end
        if job.status.terminal and utcnow() - job.updated_at > EVENT_LOG_GRACE:
            # Finished long ago and its events are not in the log (past their retention): the job itself
            # makes the terminal event. (Sooner, notify may just not have logged them yet: wait for it.)
            return [snapshot(job)]
        if deps.clock() >= deadline:
            return []
        deps.sleep(deps.poll_interval_seconds)


def open_stream(job_id: str, tenant_id: str, last_version: int, deps: EventsDeps) -> Job | None:
    """The job whose events are to be streamed; None when the client has seen its terminal event already (a
    204). Raises 404 for another tenant's job. Called before the response starts, which fixes its status."""
    job = deps.jobs.get_for_tenant(tenant_id, job_id)
    if job is None:
        raise not_found()
    if job.status.terminal and job.version <= last_version:
        return None
    return job


def held_stream(
    job: Job, last_version: int, request_id: str, deps: EventsDeps, *, keepalive_seconds: float, end_at: float
) -> Iterator[str]:
    """``stream_events`` holding one of the tenant's open streams until the body ends (``LimitReached``: 429
    ``too_many_streams``, raised here, before the response starts). The lease outlives the response by
    ``SSE_LEASE_SECONDS`` at most, should the function die mid-stream."""
    maximum = deps.limits.limits_for(job.tenant_id).max_open_streams
    lifetime = max(0.0, end_at - deps.clock()) + SSE_LEASE_SECONDS
    lease = deps.open_streams.acquire(job.tenant_id, f"sse-{request_id}", maximum, lifetime)
    return _released_at_end(
        stream_events(job, last_version, deps, keepalive_seconds=keepalive_seconds, end_at=end_at), lease, deps
    )


def _released_at_end(body: Iterator[str], lease: StreamLease, deps: EventsDeps) -> Iterator[str]:
    try:
        yield from body
    finally:
        deps.open_streams.release(lease)


def stream_events(
    job: Job, last_version: int, deps: EventsDeps, *, keepalive_seconds: float, end_at: float
) -> Iterator[str]:
    """The response body: the job's events after ``last_version`` as they happen, up to and including the
    terminal one. A comment keeps the connection alive after ``keepalive_seconds`` of silence (an idle stream
    is closed by API Gateway); at ``end_at`` (``deps.clock`` time) the body ends cleanly, the client resumes."""
    yield f"retry: {SSE_RETRY_MILLISECONDS}\n\n"
    last_sent = deps.clock()
    expired = job.status.terminal and utcnow() - job.updated_at > EVENT_LOG_GRACE
    while True:
        events = deps.events.after(job.id, last_version)
        if not events and expired:
            yield sse_frame(snapshot(job))  # its events are past their retention: the job makes the terminal one
            return
        for event in events:
            yield sse_frame(event)
            last_version, last_sent = event.version, deps.clock()
            if is_terminal(event):
                return
        now = deps.clock()
        if now >= end_at:
            yield ": the response ends here: reconnect with Last-Event-ID\n\n"
            return
        if now - last_sent >= keepalive_seconds:
            yield ": keep-alive\n\n"
            last_sent = now
        deps.sleep(min(deps.poll_interval_seconds, max(0.0, end_at - now)))


def last_event_id(value: str | None) -> int:
    """``Last-Event-ID`` as a version; anything else counts as "from the start"."""
    try:
        return max(0, int((value or "0").strip()))
    except ValueError:
        return 0


def unauthorized() -> ApiError:
    return ApiError(ErrorCode.UNAUTHORIZED, "missing or unknown API key")
