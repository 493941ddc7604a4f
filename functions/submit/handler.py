"""POST /uploads (and completing or aborting multipart uploads) and POST /jobs: validate, store, queue, answer 202.
No media work happens here."""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import api, job_view, snapstart
from videojobs.aws import client
from videojobs.job_store import JobStore
from videojobs.metric_names import JOBS_SUBMITTED
from videojobs.models import (
    CompletedUpload,
    CompleteUploadRequest,
    CreateJobRequest,
    CreateUploadRequest,
    DryRun,
    ErrorCode,
    JobResource,
    MultipartUploadResponse,
    RefreshPartsRequest,
    UploadResponse,
)
from videojobs.object_store import ObjectStore
from videojobs.observability import logger, metrics, traced
from videojobs.queues import JobQueue
from videojobs.service import jobs
from videojobs.settings import SubmitSettings
from videojobs.tenant_counters import DailyUploadBytes, PendingJobs
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.usage import UsageLedger

app = api.new_resolver()

UploadId = Annotated[str, Path(pattern=r"^upl_[0-9a-f]{32}$")]
# A 2,000-part completion is ~120 KB of JSON: more than the API's usual body limit.
COMPLETE_UPLOAD_MAX_BODY_BYTES = 512 * 1024


@snapstart.before_snapshot  # clients and settings are in the snapshot, not in a cold start
@cache
def get_deps() -> jobs.SubmitDeps:
    settings = SubmitSettings.from_env()
    dynamodb = client("dynamodb")
    return jobs.SubmitDeps(
        settings=settings,
        jobs=JobStore(
            dynamodb,
            settings.jobs_table,
            settings.idempotency_table,
            ledger=UsageLedger(dynamodb, settings.usage_table),
        ),
        objects=ObjectStore(client("s3")),
        queue=JobQueue(client("sqs"), settings.jobs_queue_url),
        ledger=UsageLedger(dynamodb, settings.usage_table),
        limits=TenantLimitStore(dynamodb, settings.tenants_table, TenantLimits.defaults(settings)),
        pending_jobs=PendingJobs(dynamodb, settings.tenants_table, settings.jobs_table),
        upload_bytes=DailyUploadBytes(dynamodb, settings.tenants_table),
    )


CREATE_UPLOAD = api.Operation(
    "Start an upload",
    HTTPStatus.CREATED,
    UploadResponse | MultipartUploadResponse,
    "A presigned POST (`method: POST`), or above the multipart threshold a presigned PUT per part "
    "(`method: MULTIPART`).",
    errors=(ErrorCode.QUOTA_EXCEEDED,),
)


@app.post("/uploads", **CREATE_UPLOAD.route())
def create_upload(body: CreateUploadRequest):
    return CREATE_UPLOAD.answer(jobs.create_upload(body, api.tenant_of(app), get_deps()))


COMPLETE_UPLOAD = api.Operation(
    "Complete a multipart upload",
    HTTPStatus.OK,
    CompletedUpload,
    "The parts are joined into the input file; completing again answers the same.",
    errors=(ErrorCode.INVALID_UPLOAD_PARTS, ErrorCode.UPLOAD_TOO_LARGE),
)


@app.post("/uploads/<upload_id>/complete", **COMPLETE_UPLOAD.route())
def complete_upload(upload_id: UploadId, body: CompleteUploadRequest):
    return COMPLETE_UPLOAD.answer(jobs.complete_upload(upload_id, body, api.tenant_of(app), get_deps()))


REFRESH_PART_URLS = api.Operation(
    "Re-sign parts of a multipart upload",
    HTTPStatus.OK,
    MultipartUploadResponse,
    "Fresh presigned PUTs for the listed parts (those S3 refused with 403, or 400 `ExpiredToken`: a URL dies "
    "with the session that signed it, often before its `expires_at`). Parts already sent stay.",
)


@app.post("/uploads/<upload_id>/parts", **REFRESH_PART_URLS.route())
def refresh_part_urls(upload_id: UploadId, body: RefreshPartsRequest):
    return REFRESH_PART_URLS.answer(jobs.refresh_part_urls(upload_id, body, api.tenant_of(app), get_deps()))


ABORT_UPLOAD = api.Operation(
    "Abort a multipart upload", HTTPStatus.NO_CONTENT, None, "S3 drops the parts received so far."
)


@app.delete("/uploads/<upload_id>", **ABORT_UPLOAD.route())
def abort_upload(upload_id: UploadId):
    jobs.abort_upload(upload_id, api.tenant_of(app), get_deps())
    return ABORT_UPLOAD.answer()


DRY_RUN = api.Operation(
    "Submit a job",
    HTTPStatus.OK,
    DryRun,
    'With `"dry_run": true`: every check of a submission, then an estimate of the job (its worker, time and '
    "compute cost, from the upload's size at a reference bitrate); no job is created, nothing is queued and an "
    "`Idempotency-Key` is not used.",
)
SUBMIT_JOB = api.Operation(
    "Submit a job",
    HTTPStatus.ACCEPTED,
    JobResource,
    "The job, queued (or the first one, for a replayed key).",
    alternatives=(DRY_RUN,),
    errors=(
        ErrorCode.UPLOAD_NOT_FOUND,
        ErrorCode.UPLOAD_TOO_LARGE,
        ErrorCode.UPLOAD_INCOMPLETE,
        ErrorCode.IDEMPOTENCY_CONFLICT,
        ErrorCode.QUOTA_EXCEEDED,
        ErrorCode.SERVICE_UNAVAILABLE,
    ),
    headers={"Location": "the job's URL", "Retry-After": "seconds to wait before the first poll"},
)


@app.post("/jobs", **SUBMIT_JOB.route())
def create_job(
    body: CreateJobRequest,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
):
    if body.dry_run:
        return DRY_RUN.answer(jobs.dry_run(body, api.tenant_of(app), get_deps()))
    job = jobs.submit_job(body, api.tenant_of(app), idempotency_key, get_deps())
    metrics.add_metric(name=JOBS_SUBMITTED, unit=MetricUnit.Count, value=1)
    resource = job_view.to_resource(job)
    return SUBMIT_JOB.answer(
        resource,
        headers={
            "Location": f"{api.base_url(app)}/jobs/{job.id}",
            "Retry-After": str(job_view.retry_after_seconds(job)),
        },
    )


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@traced
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    completing = event.get("resource") == "/uploads/{id}/complete"
    return api.resolve(
        app, event, context, max_body_bytes=COMPLETE_UPLOAD_MAX_BODY_BYTES if completing else api.MAX_BODY_BYTES
    )
