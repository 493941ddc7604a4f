"""Helpers for the worker's tests on moto: a worker's dependencies, a queued job, real SQS deliveries."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from infra.local.lambda_context import LambdaContext
from infra.local.pollers import sqs_record
from infra.local.resources import Resources
from tests.integration.conftest import REGION
from videojobs.aws import client
from videojobs.dispatch import Dispatch
from videojobs.ids import new_job_id, new_upload_id
from videojobs.job_store import JobStore
from videojobs.models import Job, StoredOutput, utcnow
from videojobs.object_store import ObjectStore, upload_key
from videojobs.pricing import lambda_compute
from videojobs.queues import JobQueue
from videojobs.service.processing import Attempt, WorkerDeps
from videojobs.settings import WorkerSettings
from videojobs.usage import UsageLedger

TENANT = "t1"


def worker_deps(
    aws: Resources, scratch: Path, worker_id: str = "w1", *, long_jobs: bool = True, **settings: str
) -> WorkerDeps:
    """A worker as the Lambda builds it (``long_jobs``: it may hand jobs on) or as the long-jobs consumer does."""
    environment = {**aws.environment(), "SCRATCH_DIR": str(scratch), **settings}
    values = WorkerSettings.from_env(environment)
    jobs = JobStore(client("dynamodb"), aws.tables["jobs"], ledger=UsageLedger(client("dynamodb"), values.usage_table))
    return WorkerDeps(
        values,
        jobs,
        ObjectStore(client("s3")),
        worker_id,
        JobQueue(client("sqs"), values.long_jobs_queue_url) if long_jobs else None,
        Dispatch.from_settings(values, client("dynamodb"), jobs),
    )


def queued_job(deps: WorkerDeps, source: Path, outputs: list[dict[str, Any]]) -> Job:
    upload_id = new_upload_id()
    key = upload_key(TENANT, upload_id)
    client("s3").upload_file(str(source), deps.settings.uploads_bucket, key)
    now = utcnow()
    job = Job(
        id=new_job_id(),
        tenant_id=TENANT,
        created_at=now,
        updated_at=now,
        upload_id=upload_id,
        input_key=key,
        input_bytes=source.stat().st_size,
        outputs=[StoredOutput(spec=spec) for spec in outputs],
    )
    return deps.jobs.create(job)


LAMBDA_WORKER = lambda_compute(3008, ephemeral_gb=10)


def attempt(seconds: float = 300) -> Attempt:
    """An attempt of the Lambda worker (its usage measured as at 3,008 MB)."""
    return Attempt(deadline=time.monotonic() + seconds, compute=LAMBDA_WORKER)


def output_keys(deps: WorkerDeps, job: Job) -> list[str]:
    prefix = f"outputs/{job.tenant_id}/{job.id}/"
    listed = client("s3").list_objects_v2(Bucket=deps.settings.outputs_bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def delivered(aws: Resources, job_id: str, queue: str = "jobs") -> dict[str, Any]:
    """A message sent to the moto queue and received from it, as a record of Lambda's SQS event."""
    sqs = client("sqs")
    ref = aws.queues[queue]
    sqs.send_message(QueueUrl=ref.url, MessageBody=json.dumps({"job_id": job_id}))
    (message,) = sqs.receive_message(
        QueueUrl=ref.url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"], VisibilityTimeout=30
    )["Messages"]
    return sqs_record(message, ref.arn, REGION)


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def context(timeout_seconds: int = 900) -> LambdaContext:
    return LambdaContext(
        function_name="process",
        memory_limit_in_mb=3008,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:process",
        timeout_seconds=timeout_seconds,
    )


def visible_in(aws: Resources, queue: str = "jobs") -> int:
    attributes = client("sqs").get_queue_attributes(QueueUrl=aws.queues[queue].url, AttributeNames=["All"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
