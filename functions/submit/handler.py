"""POST /uploads and POST /jobs: validate, store, queue, answer 202. No media work happens here."""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import api
from videojobs.aws import client
from videojobs.models import CreateJobRequest, CreateUploadRequest
from videojobs.observability import logger, metrics, tracer
from videojobs.queue import JobQueue
from videojobs.service import jobs
from videojobs.settings import SubmitSettings
from videojobs.storage import ObjectStore
from videojobs.store import JobStore

app = api.new_resolver()


@cache
def get_deps() -> jobs.SubmitDeps:
    settings = SubmitSettings.from_env()
    return jobs.SubmitDeps(
        settings=settings,
        jobs=JobStore(client("dynamodb"), settings.jobs_table, settings.idempotency_table),
        objects=ObjectStore(client("s3")),
        queue=JobQueue(client("sqs"), settings.jobs_queue_url),
    )


@app.post("/uploads")
def create_upload(body: CreateUploadRequest):
    upload = jobs.create_upload(body, api.tenant_of(app), get_deps())
    return api.json_response(HTTPStatus.CREATED, upload)


@app.post("/jobs")
def create_job(
    body: CreateJobRequest,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
):
    job = jobs.submit_job(body, api.tenant_of(app), idempotency_key, get_deps())
    metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
    resource = jobs.to_resource(job)
    return api.json_response(HTTPStatus.ACCEPTED, resource, headers={
        "Location": f"{api.base_url(app)}/jobs/{job.id}",
        "Retry-After": str(jobs.retry_after_seconds(job)),
    })


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(app, event, context)
