"""POST /jobs/{id}/cancel: stop a job. 202 with the job: ``cancelled`` at once when it was queued; still
``processing`` (with ``cancel_requested_at``) until its worker has stopped ffmpeg and removed the partial outputs.
PATCH /jobs/{id}: change a queued job's priority."""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import api, job_view, snapstart
from videojobs.aws import client
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode, JobResource, UpdateJobRequest
from videojobs.object_store import ObjectStore
from videojobs.observability import logger, traced
from videojobs.service.cancel import CancelDeps, cancel_job, update_job
from videojobs.settings import CancelSettings
from videojobs.usage import UsageLedger

app = api.new_resolver()


@snapstart.before_snapshot  # clients and settings are in the snapshot, not in a cold start
@cache
def get_deps() -> CancelDeps:
    settings = CancelSettings.from_env()
    return CancelDeps(
        settings=settings,
        jobs=JobStore(
            client("dynamodb"), settings.jobs_table, ledger=UsageLedger(client("dynamodb"), settings.usage_table)
        ),
        objects=ObjectStore(client("s3")),
    )


CANCEL_JOB = api.Operation(
    "Cancel a job",
    HTTPStatus.ACCEPTED,
    JobResource,
    "A queued job is `cancelled` at once. A processing job stays `processing` (with `cancel_requested_at`) for "
    "the second or two its worker takes to stop and remove the partial outputs, then is `cancelled`.",
    errors=(ErrorCode.JOB_FINISHED,),
    headers={"Retry-After": "while the job is not finished: seconds to wait before asking again"},
)


@app.post("/jobs/<job_id>/cancel", **CANCEL_JOB.route())
def cancel(job_id: Annotated[str, Path(max_length=64)]):
    job = cancel_job(job_id, api.tenant_of(app), get_deps())
    retry_after = job_view.retry_after_seconds(job)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return CANCEL_JOB.answer(job_view.to_resource(job), headers=headers)


UPDATE_JOB = api.Operation(
    "Change a job's priority",
    HTTPStatus.OK,
    JobResource,
    "Only while the job is `queued`: within the caller's jobs, a queued job starts after the more urgent ones.",
    errors=(ErrorCode.JOB_STARTED,),
)


@app.patch("/jobs/<job_id>", **UPDATE_JOB.route())
def update(job_id: Annotated[str, Path(max_length=64)], body: UpdateJobRequest):
    job = update_job(job_id, body, api.tenant_of(app), get_deps().jobs)
    return UPDATE_JOB.answer(job_view.to_resource(job))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(app, event, context)
