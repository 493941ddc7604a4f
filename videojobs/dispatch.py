"""Whether a worker may start a queued job now: its tenant's ``max_active_jobs``, and priority within a tenant.

Across tenants, order is the queue's business: each job message carries its tenant as ``MessageGroupId``, so SQS
fair queues deliver a quiet tenant's job before a noisy tenant's backlog (``videojobs.queues.JobQueue``). Within
a tenant, and against the tenant's limit, the worker decides when it receives the message:

- **max_active_jobs.** Each processing job has a marker item in the tenants table (record ``active#<job id>``)
  and the tenant a counter (record ``active``). A claim puts the marker and counts it in the same DynamoDB
  transaction as the claim itself, on the condition that the count is under the limit (or the job holds its
  marker already: a reclaim after a worker died keeps its slot). So the tenant never has more jobs processing
  than its limit, and each write is one small item whatever the tenant's job count. The worker that ends a job
  releases it; a job ended elsewhere (the dead-letter handler, a cancel of an abandoned job) is released by the
  next claim that finds the tenant full, which checks the markers and drops those whose job ended.
- **Priority.** A queued job waits while its tenant has a queued job of a higher priority (the sparse
  ``queued_by_tenant`` index), unless it has itself waited ``priority_aging_seconds``: a low job never waits
  behind its tenant's higher priorities longer than that, and priority never reorders different tenants.

A job that must wait is **deferred**: the worker queues a fresh copy of its message ``DelaySeconds`` later and
ends the received one (``processing.Outcome.requeue_in_seconds``). Making the same message visible later would
count a receive each time, and the redrive policy sends a message to the dead-letter queue (which fails its job)
after ``maxReceiveCount`` receives (5): a tenant at its limit with a backlog would see its jobs fail for waiting.
A fresh message starts at receive count 0, and the job's own ``attempts`` only count claims. Sending before
deleting keeps delivery at least once; a duplicate is harmless (the claim is conditional).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from videojobs.job_store import ActiveSlot, JobStore, TenantAtLimit
from videojobs.models import Job, JobStatus, utcnow
from videojobs.observability import logger
from videojobs.settings import WorkerSettings
from videojobs.tenant_counters import JobSlots
from videojobs.tenant_limits import TenantLimits, TenantLimitStore

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

AT_LIMIT_MAX_RETRY_SECONDS = 120.0
"""The longest wait between two tries of a job deferred at its tenant's limit (times up to 1.5, the jitter)."""
ACTIVE_RECORD = "active"
"""The sort key (``record``) of a tenant's processing job ids in the tenants table."""


class ActiveJobs:
    """Each tenant's processing jobs (at most its ``max_active_jobs``): a marker item per job and a counter in the
    tenants table (``videojobs.tenant_counters.JobSlots``)."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._slots = JobSlots(client, table, ACTIVE_RECORD)

    def slot(self, tenant_id: str, job_id: str, limit: int) -> ActiveSlot:
        """The writes that take a slot for the job, for ``JobStore.claim``."""
        return ActiveSlot(
            key=self._slots.counter_key(tenant_id),
            take=self._slots.take_items(tenant_id, job_id, limit),
            keep=self._slots.keep_items(tenant_id, job_id),
        )

    def job_ids(self, tenant_id: str) -> set[str]:
        return self._slots.job_ids(tenant_id)

    def count(self, tenant_id: str) -> int:
        return self._slots.count(tenant_id)

    def release(self, tenant_id: str, *job_ids: str) -> None:
        """Free the jobs' slots (idempotent: a job without one changes nothing)."""
        self._slots.release(tenant_id, *job_ids)

    def sweep(self, tenant_id: str, jobs: JobStore) -> int:
        """Free the slots of jobs that are no longer processing (ended where no worker released them). Returns
        how many were freed."""
        ended = [
            job_id
            for job_id in self.job_ids(tenant_id)
            if (job := jobs.get(job_id, consistent=True)) is None or job.status is not JobStatus.PROCESSING
        ]
        self.release(tenant_id, *ended)
        if ended:
            logger.info("freed slots of ended jobs", extra={"tenant_id": tenant_id, "job_ids": ended})
        return len(ended)


@dataclass(frozen=True)
class Dispatch:
    """What a worker needs to decide whether a job may start now."""

    jobs: JobStore
    active: ActiveJobs
    max_active_jobs: Callable[[str], int]
    """The tenant's limit in force (read at each claim: a change holds from the next one)."""
    at_limit_retry_seconds: float = 10.0
    """The first wait of a job deferred at its tenant's limit; it doubles with each deferral, up to
    ``AT_LIMIT_MAX_RETRY_SECONDS``, so a long backlog does not keep the workers busy asking."""
    priority_retry_seconds: float = 2.0
    priority_aging_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: WorkerSettings, client: DynamoDBClient, jobs: JobStore) -> Dispatch:
        """As a worker builds it: the tenants table, the limits in force, the retry and aging settings."""
        limits = TenantLimitStore(client, settings.tenants_table, TenantLimits.defaults(settings))
        return cls(
            jobs=jobs,
            active=ActiveJobs(client, settings.tenants_table),
            max_active_jobs=lambda tenant_id: limits.limits_for(tenant_id).max_active_jobs,
            at_limit_retry_seconds=settings.at_limit_retry_seconds,
            priority_aging_seconds=settings.priority_aging_seconds,
        )

    def at_limit_delay(self, deferrals: int) -> float:
        """Doubling with each deferral up to a cap, and spread out (jitter), so that a tenant's deferred backlog
        neither keeps the workers busy nor comes back all at once."""
        wait = min(self.at_limit_retry_seconds * 2.0 ** min(deferrals, 16), AT_LIMIT_MAX_RETRY_SECONDS)
        return wait * random.uniform(0.5, 1.5)


class Deferred(Exception):
    """Not the job's turn: queue it again ``seconds`` later."""

    def __init__(self, job: Job, seconds: float, reason: str, *, at_limit: bool = False):
        super().__init__(reason)
        self.job, self.seconds, self.reason, self.at_limit = job, seconds, reason, at_limit


def claim_in_turn(
    job_id: str, worker_id: str, lease: timedelta, dispatch: Dispatch, *, deferrals: int = 0
) -> Job | None:
    """Claim the job if it is its turn (see the module's docstring); None when it cannot be claimed at all
    (finished, or held by a live worker); ``Deferred`` when it must wait."""
    jobs = dispatch.jobs
    current = jobs.get(job_id, consistent=True)
    if current is None or current.status.terminal:
        return None
    if current.status is JobStatus.QUEUED:
        waited = (utcnow() - current.created_at).total_seconds()
        if waited < dispatch.priority_aging_seconds and jobs.has_more_urgent_queued(
            current.tenant_id, current.priority
        ):
            raise Deferred(current, dispatch.priority_retry_seconds, "a more urgent job of the tenant is queued")
    limit = dispatch.max_active_jobs(current.tenant_id)
    slot = dispatch.active.slot(current.tenant_id, job_id, limit)
    for swept in (False, True):
        try:
            return jobs.claim(job_id, worker_id, lease, slot=slot)
        except TenantAtLimit:
            # Full: unless some of its jobs ended without releasing their slots, wait for one to end.
            if swept or not dispatch.active.sweep(current.tenant_id, jobs):
                delay = dispatch.at_limit_delay(deferrals)
                reason = f"the tenant has {limit} jobs processing"
                raise Deferred(current, delay, reason, at_limit=True) from None
    raise AssertionError("unreachable")
