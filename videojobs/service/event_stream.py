"""The ``events`` function's use case: a job's events as Server-Sent Events, by long poll on the event log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from videojobs.errors import ApiError, not_found
from videojobs.job_events import is_terminal, snapshot
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode, JobEvent, utcnow
from videojobs.notification_store import EventLog
from videojobs.tenant_counters import OpenStreams
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


def last_event_id(value: str | None) -> int:
    """``Last-Event-ID`` as a version; anything else counts as "from the start"."""
    try:
        return max(0, int((value or "0").strip()))
    except ValueError:
        return 0


def unauthorized() -> ApiError:
    return ApiError(ErrorCode.UNAUTHORIZED, "missing or unknown API key")
