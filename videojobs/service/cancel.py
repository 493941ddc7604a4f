"""Cancelling a job: at once when queued; when processing, by asking its worker, which stops ffmpeg, removes the
partial outputs it wrote and then ends the job ``cancelled`` (within about two seconds). A job no live worker
holds (its worker died, or it waits for the long-jobs consumer) is cleaned up and cancelled here."""

from __future__ import annotations

from dataclasses import dataclass

from videojobs.errors import ApiError, not_found
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode, Job, JobStatus, UpdateJobRequest, utcnow
from videojobs.object_store import ObjectStore, output_key
from videojobs.settings import CancelSettings

# A cancel races the worker's own transitions (claim, completion): look again this many times.
ATTEMPTS = 3


@dataclass(frozen=True)
class CancelDeps:
    settings: CancelSettings
    jobs: JobStore
    objects: ObjectStore


def cancel_job(job_id: str, tenant_id: str, deps: CancelDeps) -> Job:
    """Cancel the tenant's job; returns it as it is now (``cancelled``, or ``processing`` with
    ``cancel_requested_at`` until its worker has stopped). A finished job is 409 ``job_finished``."""
    job = None
    for _ in range(ATTEMPTS):
        job = deps.jobs.get(job_id, consistent=True)
        if job is None or job.tenant_id != tenant_id:
            raise not_found()
        if job.status.terminal:
            raise ApiError(ErrorCode.JOB_FINISHED, f"the job is already {job.status.value}")
        if job.status is JobStatus.QUEUED:
            cancelled = deps.jobs.cancel_queued(job_id)
        else:
            requested = deps.jobs.request_cancel(job_id)
            if requested is None:
                continue  # it finished meanwhile: look again
            # What earlier attempts left behind (a worker that died while uploading); a live worker removes
            # what it writes itself, as it stops.
            deps.objects.delete_prefix(deps.settings.outputs_bucket, output_key(job.tenant_id, job_id, ""))
            if _held_by_live_worker(requested):
                return requested
            cancelled = deps.jobs.cancel(job_id)
        if cancelled is not None:
            return cancelled
    assert job is not None
    return deps.jobs.get(job_id, consistent=True) or job


def _held_by_live_worker(job: Job) -> bool:
    return job.lease_owner is not None and job.lease_expires_at is not None and job.lease_expires_at > utcnow()


def update_job(job_id: str, request: UpdateJobRequest, tenant_id: str, jobs: JobStore) -> Job:
    """Change a queued job's priority (it applies from the next claim of the tenant's jobs); a job that is no
    longer queued is 409 ``job_started``."""
    changed = jobs.set_priority(job_id, tenant_id, request.priority)
    if changed is not None:
        return changed
    current = jobs.get_for_tenant(tenant_id, job_id)
    if current is None:
        raise not_found()
    raise ApiError(
        ErrorCode.JOB_STARTED, f"the job is {current.status.value}: its priority can change only while it is queued"
    )
