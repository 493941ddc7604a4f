"""Uploads, job submission and job reads: what the submit and status functions do."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from videojobs.dispatch import ActiveJobs
from videojobs.errors import ApiError, LimitReached, not_found
from videojobs.estimate import estimate
from videojobs.ids import new_job_id, new_upload_id
from videojobs.job_store import IdempotencyConflict, IdempotencyKey, InvalidCursor, JobStore, WriteContention
from videojobs.job_view import DownloadLinks, to_resource
from videojobs.models import (
    AccountUsage,
    CompletedUpload,
    CompleteUploadRequest,
    CreateJobRequest,
    CreateUploadRequest,
    CurrentUsage,
    DryRun,
    ErrorCode,
    ErrorDetail,
    Job,
    JobList,
    JobMessage,
    JobResource,
    JobStatus,
    MultipartUploadResponse,
    Priority,
    RefreshPartsRequest,
    StoredOutput,
    UploadPart,
    UploadResponse,
    isoformat,
    utcnow,
)
from videojobs.object_store import ObjectInfo, ObjectStore, PartsRejected, upload_key, upload_plan_key
from videojobs.queues import JobQueue
from videojobs.settings import StatusSettings, SubmitSettings
from videojobs.ssrf import UnsafeUrl, check_url
from videojobs.tenant_counters import DailyUploadBytes, OpenStreams, PendingJobs
from videojobs.tenant_limits import TenantLimitStore
from videojobs.usage import MAX_DAYS, UsageLedger, totals

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

MAX_IDEMPOTENCY_KEY_LENGTH = 255
# Object metadata of multipart uploads: the size declared when the upload began (S3 checks no size on parts).
DECLARED_SIZE = "declared-size"
# One answer lists a presigned URL per part. URLs signed with a Lambda role's session token are ~1.7 KB and a
# Lambda answers at most 6 MB, so parts grow rather than exceed this count (5 TiB / 2,000 = 2.6 GiB per part,
# under S3's 5 GiB part limit; S3's own limit is 10,000 parts).
MAX_PARTS_PER_UPLOAD = 2_000
MIB = 1024**2


@dataclass(frozen=True)
class SubmitDeps:
    settings: SubmitSettings
    jobs: JobStore
    objects: ObjectStore
    queue: JobQueue
    ledger: UsageLedger
    limits: TenantLimitStore
    pending_jobs: PendingJobs
    upload_bytes: DailyUploadBytes


@dataclass(frozen=True)
class TenantCounters:
    """Where a tenant's usage right now is counted, against its limits (``GET /account/usage``'s ``current``)."""

    pending_jobs: PendingJobs
    active_jobs: ActiveJobs
    open_streams: OpenStreams
    upload_bytes: DailyUploadBytes

    def current(self, tenant_id: str) -> CurrentUsage:
        return CurrentUsage(
            pending_jobs=self.pending_jobs.count(tenant_id),
            active_jobs=self.active_jobs.count(tenant_id),
            open_streams=self.open_streams.count(tenant_id),
            upload_bytes_today=self.upload_bytes.used(tenant_id),
        )


def tenant_counters(client: DynamoDBClient, tenants_table: str) -> TenantCounters:
    return TenantCounters(
        PendingJobs(client, tenants_table),
        ActiveJobs(client, tenants_table),
        OpenStreams(client, tenants_table),
        DailyUploadBytes(client, tenants_table),
    )


@dataclass(frozen=True)
class StatusDeps:
    settings: StatusSettings
    jobs: JobStore
    objects: ObjectStore
    ledger: UsageLedger
    limits: TenantLimitStore
    counters: TenantCounters


def create_upload(
    request: CreateUploadRequest, tenant_id: str, deps: SubmitDeps
) -> UploadResponse | MultipartUploadResponse:
    """A presigned POST for one file, bound to the caller's tenant prefix and the declared size; above the
    multipart threshold, a multipart upload with a presigned PUT per part."""
    if request.size_bytes > deps.settings.multipart_threshold_bytes:
        return _create_multipart_upload(request, tenant_id, deps)
    limit = deps.settings.max_upload_bytes
    if request.size_bytes > limit:
        raise ApiError(ErrorCode.VALIDATION_ERROR, f"size_bytes must be at most {limit}")
    _count_upload_bytes(request, tenant_id, deps)
    upload_id = new_upload_id()
    ttl = deps.settings.upload_url_ttl_seconds
    post = deps.objects.presigned_upload(
        deps.settings.uploads_bucket,
        upload_key(tenant_id, upload_id),
        content_type=request.content_type,
        max_bytes=request.size_bytes,
        expires_in=ttl,
    )
    return UploadResponse(
        upload_id=upload_id,
        url=post["url"],
        fields=post["fields"],
        expires_at=isoformat(utcnow() + timedelta(seconds=ttl)),
        max_bytes=request.size_bytes,
    )


def _count_upload_bytes(request: CreateUploadRequest, tenant_id: str, deps: SubmitDeps) -> None:
    """The declared size counts against the tenant's bytes of the UTC day (429 ``quota_exceeded`` over it).
    Declared, not received: S3 holds an upload to its declared size, and re-signing parts adds nothing."""
    maximum = deps.limits.limits_for(tenant_id).max_upload_bytes_per_day
    deps.upload_bytes.reserve(tenant_id, request.size_bytes, maximum)


def part_size_for(size_bytes: int, preferred_bytes: int) -> int:
    """The preferred part size, or a larger one (whole MiB) where that would need too many parts."""
    smallest = -(-size_bytes // MAX_PARTS_PER_UPLOAD)
    return max(preferred_bytes, -(-smallest // MIB) * MIB)


def _create_multipart_upload(request: CreateUploadRequest, tenant_id: str, deps: SubmitDeps) -> MultipartUploadResponse:
    settings = deps.settings
    if request.size_bytes > settings.max_multipart_upload_bytes:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"size_bytes must be at most {settings.max_multipart_upload_bytes}",
        )
    _count_upload_bytes(request, tenant_id, deps)
    upload_id = new_upload_id()
    key = upload_key(tenant_id, upload_id)
    part_size = part_size_for(request.size_bytes, settings.multipart_part_bytes)
    plan = UploadPlan(size_bytes=request.size_bytes, part_size=part_size)
    deps.objects.write(
        settings.uploads_bucket, upload_plan_key(tenant_id, upload_id), plan.to_json(), "application/json"
    )
    multipart_id = deps.objects.start_multipart(
        settings.uploads_bucket,
        key,
        content_type=request.content_type,
        metadata={DECLARED_SIZE: str(request.size_bytes)},
    )
    return _part_urls(upload_id, key, multipart_id, plan, range(1, plan.part_count + 1), deps)


@dataclass(frozen=True)
class UploadPlan:
    """How a multipart upload is cut: every part ``part_size`` bytes but the last."""

    size_bytes: int
    part_size: int

    @property
    def part_count(self) -> int:
        return -(-self.size_bytes // self.part_size)

    def part_bytes(self, number: int) -> int:
        return min(self.part_size, self.size_bytes - (number - 1) * self.part_size)

    def to_json(self) -> bytes:
        return json.dumps({"size_bytes": self.size_bytes, "part_size": self.part_size}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> UploadPlan:
        plan = json.loads(data)
        return cls(size_bytes=int(plan["size_bytes"]), part_size=int(plan["part_size"]))


def _part_urls(
    upload_id: str, key: str, multipart_id: str, plan: UploadPlan, numbers: Iterable[int], deps: SubmitDeps
) -> MultipartUploadResponse:
    ttl = deps.settings.multipart_url_ttl_seconds
    bucket = deps.settings.uploads_bucket
    parts = []
    for number in numbers:
        size = plan.part_bytes(number)
        url = deps.objects.presigned_part(bucket, key, multipart_id, number, ttl, size_bytes=size)
        parts.append(UploadPart(part_number=number, url=url, size_bytes=size))
    return MultipartUploadResponse(
        upload_id=upload_id,
        part_size=plan.part_size,
        parts=parts,
        expires_at=isoformat(utcnow() + timedelta(seconds=ttl)),
        max_bytes=plan.size_bytes,
    )


def refresh_part_urls(
    upload_id: str, request: RefreshPartsRequest, tenant_id: str, deps: SubmitDeps
) -> MultipartUploadResponse:
    """Fresh URLs for parts of an unfinished multipart upload: a presigned URL dies with the session that
    signed it (a Lambda role's, about an hour), long before a slow upload of many parts ends."""
    bucket, key = deps.settings.uploads_bucket, upload_key(tenant_id, upload_id)
    multipart_id = deps.objects.multipart_in_progress(bucket, key)
    saved_plan = deps.objects.read_if_exists(bucket, upload_plan_key(tenant_id, upload_id))
    if multipart_id is None or saved_plan is None:
        raise not_found("multipart upload in progress")
    plan = UploadPlan.from_json(saved_plan)
    if max(request.part_numbers) > plan.part_count:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"part_numbers must be between 1 and {plan.part_count}, the parts of this upload",
        )
    return _part_urls(upload_id, key, multipart_id, plan, request.part_numbers, deps)


def complete_upload(
    upload_id: str, request: CompleteUploadRequest, tenant_id: str, deps: SubmitDeps
) -> CompletedUpload:
    """Join the uploaded parts into the input file. Completing again (a retried request) answers the same."""
    bucket, key = deps.settings.uploads_bucket, upload_key(tenant_id, upload_id)
    multipart_id = deps.objects.multipart_in_progress(bucket, key)
    if multipart_id is None:
        done = deps.objects.head(bucket, key)
        if done is not None and DECLARED_SIZE in done.metadata:
            return CompletedUpload(upload_id=upload_id, size_bytes=done.size_bytes)
        raise not_found("multipart upload")
    numbers = [part.part_number for part in request.parts]
    if numbers != sorted(set(numbers)):
        raise ApiError(
            ErrorCode.INVALID_UPLOAD_PARTS,
            "parts must be listed once each, in ascending part_number order",
        )
    try:
        deps.objects.complete_multipart(bucket, key, multipart_id, [(p.part_number, p.etag) for p in request.parts])
    except PartsRejected as error:
        raise ApiError(
            ErrorCode.INVALID_UPLOAD_PARTS,
            f"S3 refused the parts ({error}); upload the missing parts or send their ETags",
        ) from error

    # S3 checks no size against the declaration: check here, and drop a file that is not what was declared.
    joined = deps.objects.head(bucket, key)
    declared = int(joined.metadata.get(DECLARED_SIZE, "0")) if joined else 0
    if joined is None or joined.size_bytes != declared:
        if joined is not None:
            deps.objects.delete(bucket, key)
        size = joined.size_bytes if joined else 0
        code = ErrorCode.UPLOAD_TOO_LARGE if size > declared else ErrorCode.INVALID_UPLOAD_PARTS
        raise ApiError(
            code,
            f"the parts add up to {size} bytes but the upload declared {declared}; start a new upload",
        )
    deps.objects.delete(bucket, upload_plan_key(tenant_id, upload_id))
    return CompletedUpload(upload_id=upload_id, size_bytes=joined.size_bytes)


def abort_upload(upload_id: str, tenant_id: str, deps: SubmitDeps) -> None:
    """Abort an unfinished multipart upload: S3 drops the parts received so far."""
    bucket, key = deps.settings.uploads_bucket, upload_key(tenant_id, upload_id)
    multipart_id = deps.objects.multipart_in_progress(bucket, key)
    if multipart_id is None:
        raise not_found("multipart upload in progress")
    deps.objects.abort_multipart(bucket, key, multipart_id)
    deps.objects.delete(bucket, upload_plan_key(tenant_id, upload_id))


def request_hash(request: CreateJobRequest) -> str:
    """The same request however its JSON was spelled (key order, spacing) hashes the same. ``dry_run`` is left
    out, and so is the default priority: keys used before these fields existed still match their replays."""
    unsaid = {"dry_run"} | ({"priority"} if request.priority is Priority.NORMAL else set())
    canonical = json.dumps(request.model_dump(mode="json", exclude=unsaid), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_job(request: CreateJobRequest, tenant_id: str, idempotency_key: str | None, deps: SubmitDeps) -> Job:
    """Validate the input, store the job and queue it. No media work happens here."""
    upload = _checked_upload(request, tenant_id, deps)
    key = upload_key(tenant_id, request.input.upload_id)
    now = utcnow()
    digest = request_hash(request)
    job = Job(
        id=new_job_id(),
        tenant_id=tenant_id,
        created_at=now,
        updated_at=now,
        upload_id=request.input.upload_id,
        input_key=key,
        input_bytes=upload.size_bytes,
        outputs=[StoredOutput(spec=output.model_dump(mode="json", exclude_none=True)) for output in request.outputs],
        webhook_url=str(request.webhook_url) if request.webhook_url else None,
        webhook_events=[event.value for event in request.webhook_events] if request.webhook_events else None,
        metadata=request.metadata,
        request_hash=digest,
        priority=request.priority,
        parallel=request.parallel,
    )
    idempotency = None
    if idempotency_key is not None:
        if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ApiError(
                ErrorCode.VALIDATION_ERROR,
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            )
        idempotency = IdempotencyKey(tenant_id, idempotency_key, digest)
    try:
        deps.pending_jobs.reserve(tenant_id, job.id, job.created_at, deps.limits.limits_for(tenant_id).max_pending_jobs)
    except WriteContention as error:
        raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, "too many concurrent submits: retry the request") from error
    except LimitReached:
        # A retry of a request that did create a job gets that job, even at the limit.
        replayed = _replay(idempotency, deps) if idempotency is not None else None
        if replayed is None:
            raise
        return replayed
    try:
        stored = _create(job, idempotency, deps)
    except Exception:
        deps.pending_jobs.release(tenant_id, job.id)
        raise
    if stored.id != job.id:
        deps.pending_jobs.release(tenant_id, job.id)
        return stored  # a replay: the first request queued it
    _queue(job, idempotency, deps)
    return job


def _create(job: Job, idempotency: IdempotencyKey | None, deps: SubmitDeps) -> Job:
    try:
        return deps.jobs.create(job, idempotency)
    except IdempotencyConflict as error:
        raise ApiError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "this Idempotency-Key was already used with a different request",
        ) from error
    except WriteContention as error:
        raise ApiError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "concurrent requests with this Idempotency-Key: retry the request",
        ) from error


def _replay(idempotency: IdempotencyKey, deps: SubmitDeps) -> Job | None:
    try:
        return deps.jobs.replay(idempotency)
    except IdempotencyConflict as error:
        raise ApiError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "this Idempotency-Key was already used with a different request",
        ) from error


def _queue(job: Job, idempotency: IdempotencyKey | None, deps: SubmitDeps) -> None:
    """Send the job's message. A job that cannot be queued fails (its terminal status frees its pending slot)."""
    try:
        deps.queue.send(JobMessage(job_id=job.id), tenant_id=job.tenant_id)
    except Exception as error:
        # Never leave a job queued that no worker will ever see: fail it, and free the key for a retry.
        deps.jobs.fail(job.id, ErrorDetail(code=ErrorCode.SERVICE_UNAVAILABLE, message="the job could not be queued"))
        if idempotency is not None:
            deps.jobs.forget_idempotency(idempotency)
        raise ApiError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "the job could not be queued; retry the request",
        ) from error
    deps.ledger.job_submitted(job)


def dry_run(request: CreateJobRequest, tenant_id: str, deps: SubmitDeps) -> DryRun:
    """Every check a submission makes, then what the job would take; nothing is stored or queued (an
    Idempotency-Key is not used either)."""
    upload = _checked_upload(request, tenant_id, deps)
    outputs = [StoredOutput(spec=output.model_dump(mode="json", exclude_none=True)) for output in request.outputs]
    return DryRun(estimate=estimate(outputs, upload.size_bytes, deps.settings))


def _checked_upload(request: CreateJobRequest, tenant_id: str, deps: SubmitDeps) -> ObjectInfo:
    """The request's upload, once the webhook URL, the upload's presence and its size pass."""
    if request.webhook_url is not None:
        _check_webhook_url(str(request.webhook_url), deps.settings)
    key = upload_key(tenant_id, request.input.upload_id)
    upload = deps.objects.head(deps.settings.uploads_bucket, key)
    if upload is None:
        if deps.objects.multipart_in_progress(deps.settings.uploads_bucket, key):
            raise ApiError(
                ErrorCode.UPLOAD_INCOMPLETE,
                f"upload {request.input.upload_id} is not complete: upload every part, then "
                f"POST /uploads/{request.input.upload_id}/complete",
            )
        raise ApiError(
            ErrorCode.UPLOAD_NOT_FOUND,
            f"upload {request.input.upload_id} was not found; upload the file before submitting",
        )
    # S3 enforces the presigned POST's size range in AWS; moto does not, so the limit is checked here too.
    limit = (
        deps.settings.max_multipart_upload_bytes if DECLARED_SIZE in upload.metadata else deps.settings.max_upload_bytes
    )
    if upload.size_bytes > limit:
        raise ApiError(
            ErrorCode.UPLOAD_TOO_LARGE,
            f"the upload is {upload.size_bytes} bytes; the limit is {limit}",
        )
    return upload


def _check_webhook_url(url: str, settings: SubmitSettings) -> None:
    """The SSRF guard at submission (the deliverer checks again before every attempt)."""
    try:
        check_url(url, allow_loopback_http=settings.webhook_allow_loopback_http)
    except UnsafeUrl as error:
        raise ApiError(ErrorCode.INVALID_WEBHOOK_URL, f"webhook_url is not allowed: {error}") from error


def get_job(job_id: str, tenant_id: str, deps: StatusDeps, base_url: str | None = None) -> JobResource:
    job = deps.jobs.get_for_tenant(tenant_id, job_id)
    if job is None:
        raise not_found()
    return to_resource(job, download_links(deps), base_url)


def list_jobs(
    tenant_id: str,
    limit: int,
    cursor: str | None,
    status: JobStatus | None,
    deps: StatusDeps,
    *,
    priority: Priority | None = None,
) -> JobList:
    """A page of the tenant's jobs, without output URLs. A filtered page may be short, even empty, and still
    have a ``next_cursor``: the filter reads a bounded number of jobs per request."""
    try:
        jobs, next_cursor = deps.jobs.list_for_tenant(
            tenant_id, limit=limit, cursor=cursor, status=status, priority=priority
        )
    except InvalidCursor as error:
        raise ApiError(ErrorCode.VALIDATION_ERROR, str(error)) from error
    except WriteContention as error:
        raise ApiError(ErrorCode.SERVICE_UNAVAILABLE, "the jobs could not be read; retry the request") from error
    # No output URLs in a list: each is a presigned GET carrying the caller's session token (~1.2 KB in AWS), and
    # a page of jobs with many thumbnails would pass Lambda's 6 MB response limit. GET /jobs/{id} has them.
    return JobList(jobs=[to_resource(job) for job in jobs], next_cursor=next_cursor)


def download_links(deps: StatusDeps) -> DownloadLinks:
    """Presigned GETs of the outputs bucket, as the status settings say."""
    return DownloadLinks(deps.objects, deps.settings.outputs_bucket, deps.settings.download_url_ttl_seconds)


def account_usage(tenant_id: str, first: str, last: str, deps: StatusDeps) -> AccountUsage:
    """The tenant's usage ledger from ``first`` to ``last`` (UTC days, both included, at most ``MAX_DAYS``)."""
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError as error:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "from and to must be dates: YYYY-MM-DD") from error
    if end < start:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "to must not be before from")
    if (end - start).days + 1 > MAX_DAYS:
        raise ApiError(ErrorCode.VALIDATION_ERROR, f"at most {MAX_DAYS} days per request")
    days = deps.ledger.days(tenant_id, start, end)
    limits = deps.limits.limits_for(tenant_id)
    return AccountUsage(days=days, totals=totals(days), limits=limits, current=deps.counters.current(tenant_id))
