"""Uploads, job submission and job reads: what the submit and status functions do."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus

from videojobs.errors import ApiError, not_found
from videojobs.ids import new_job_id, new_upload_id
from videojobs.models import (
    CreateJobRequest,
    CreateUploadRequest,
    ErrorCode,
    ErrorDetail,
    Job,
    JobInput,
    JobList,
    JobMessage,
    JobResource,
    JobStatus,
    OutputResult,
    StoredOutput,
    UploadResponse,
    isoformat,
    utcnow,
)
from videojobs.queue import JobQueue
from videojobs.settings import StatusSettings, SubmitSettings
from videojobs.storage import ObjectStore, upload_key
from videojobs.store import IdempotencyConflict, IdempotencyKey, InvalidCursor, JobStore

MAX_IDEMPOTENCY_KEY_LENGTH = 255


@dataclass(frozen=True)
class SubmitDeps:
    settings: SubmitSettings
    jobs: JobStore
    objects: ObjectStore
    queue: JobQueue


@dataclass(frozen=True)
class StatusDeps:
    settings: StatusSettings
    jobs: JobStore
    objects: ObjectStore


def create_upload(request: CreateUploadRequest, tenant_id: str, deps: SubmitDeps) -> UploadResponse:
    """A presigned POST for one file, bound to the caller's tenant prefix and the declared size."""
    limit = deps.settings.max_upload_bytes
    if request.size_bytes > limit:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.VALIDATION_ERROR,
                       f"size_bytes must be at most {limit}")
    upload_id = new_upload_id()
    ttl = deps.settings.upload_url_ttl_seconds
    post = deps.objects.presigned_upload(
        deps.settings.uploads_bucket, upload_key(tenant_id, upload_id),
        content_type=request.content_type, max_bytes=request.size_bytes, expires_in=ttl,
    )
    return UploadResponse(
        upload_id=upload_id, url=post["url"], fields=post["fields"],
        expires_at=isoformat(utcnow() + timedelta(seconds=ttl)), max_bytes=request.size_bytes,
    )


def request_hash(request: CreateJobRequest) -> str:
    """The same request however its JSON was spelled (key order, spacing) hashes the same."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_job(
    request: CreateJobRequest, tenant_id: str, idempotency_key: str | None, deps: SubmitDeps
) -> Job:
    """Validate the input, store the job and queue it. No media work happens here."""
    key = upload_key(tenant_id, request.input.upload_id)
    upload = deps.objects.head(deps.settings.uploads_bucket, key)
    if upload is None:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.UPLOAD_NOT_FOUND,
                       f"upload {request.input.upload_id} was not found; upload the file before submitting")
    # S3 enforces the presigned POST's size range in AWS; moto does not, so the limit is checked here too.
    if upload.size_bytes > deps.settings.max_upload_bytes:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.UPLOAD_TOO_LARGE,
                       f"the upload is {upload.size_bytes} bytes; the limit is {deps.settings.max_upload_bytes}")

    now = utcnow()
    digest = request_hash(request)
    job = Job(
        id=new_job_id(), tenant_id=tenant_id, created_at=now, updated_at=now,
        upload_id=request.input.upload_id, input_key=key,
        outputs=[StoredOutput(spec=output.model_dump(mode="json")) for output in request.outputs],
        webhook_url=str(request.webhook_url) if request.webhook_url else None,
        metadata=request.metadata, request_hash=digest,
    )
    idempotency = None
    if idempotency_key is not None:
        if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.VALIDATION_ERROR,
                           f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
        idempotency = IdempotencyKey(tenant_id, idempotency_key, digest)
    try:
        stored = deps.jobs.create(job, idempotency)
    except IdempotencyConflict as error:
        raise ApiError(HTTPStatus.CONFLICT, ErrorCode.IDEMPOTENCY_CONFLICT,
                       "this Idempotency-Key was already used with a different request") from error
    if stored.id != job.id:
        return stored  # a replay: the first request queued it

    try:
        deps.queue.send(JobMessage(job_id=job.id))
    except Exception as error:
        # Never leave a job queued that no worker will ever see: fail it, and free the key for a retry.
        deps.jobs.fail(job.id, ErrorDetail(code=ErrorCode.SERVICE_UNAVAILABLE, message="the job could not be queued"))
        if idempotency is not None:
            deps.jobs.forget_idempotency(idempotency)
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, ErrorCode.SERVICE_UNAVAILABLE,
                       "the job could not be queued; retry the request") from error
    return job


def get_job(job_id: str, tenant_id: str, deps: StatusDeps) -> JobResource:
    job = deps.jobs.get_for_tenant(tenant_id, job_id)
    if job is None:
        raise not_found()
    return to_resource(job, deps)


def list_jobs(
    tenant_id: str, limit: int, cursor: str | None, status: JobStatus | None, deps: StatusDeps
) -> JobList:
    try:
        jobs, next_cursor = deps.jobs.list_for_tenant(tenant_id, limit=limit, cursor=cursor, status=status)
    except InvalidCursor as error:
        raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.VALIDATION_ERROR, str(error)) from error
    return JobList(jobs=[to_resource(job, deps) for job in jobs], next_cursor=next_cursor)


def to_resource(job: Job, deps: StatusDeps | None = None) -> JobResource:
    """The public view of a job. With ``deps``, completed outputs get presigned download URLs."""
    outputs = []
    for output in job.outputs:
        url = None
        if deps is not None and output.key and job.status is JobStatus.COMPLETED:
            url = deps.objects.presigned_download(
                deps.settings.outputs_bucket, output.key, deps.settings.download_url_ttl_seconds
            )
        outputs.append(OutputResult(**output.spec, url=url, size_bytes=output.size_bytes,
                                    content_type=output.content_type))
    return JobResource(
        id=job.id, status=job.status, progress=job.progress,
        created_at=isoformat(job.created_at), updated_at=isoformat(job.updated_at),
        started_at=isoformat(job.started_at) if job.started_at else None,
        completed_at=isoformat(job.completed_at) if job.completed_at else None,
        input=JobInput(upload_id=job.upload_id, metadata=job.input_metadata),
        outputs=outputs, error=job.error, webhook_url=job.webhook_url, metadata=job.metadata,
        version=job.version,
    )


def retry_after_seconds(job: Job | JobResource) -> int | None:
    """How long a poller should wait before asking again; None once the job is finished."""
    if job.status.terminal:
        return None
    return 5 if job.status is JobStatus.QUEUED else 2
