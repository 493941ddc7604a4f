"""SQS -> one job per message: claim, probe, encode with ffmpeg, upload outputs, complete.

Runs as a container-image Lambda (``Dockerfile`` beside this file) and in the local stack's poller.
Permanent failures end the job and ack the message; anything else is reported as a batch item failure so
SQS redelivers it, and after the last attempt the dead-letter handler ends the job ``failed``.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs.aws import client
from videojobs.models import JobMessage
from videojobs.observability import logger, metrics
from videojobs.service.processing import WorkerDeps, process_job
from videojobs.settings import WorkerSettings
from videojobs.storage import ObjectStore
from videojobs.store import JobStore

# Leave time to record a failure and to clean up before Lambda stops the invocation.
SAFETY_MARGIN_SECONDS = 30

processor = BatchProcessor(event_type=EventType.SQS)


@cache
def get_deps() -> WorkerDeps:
    settings = WorkerSettings.from_env()
    return WorkerDeps(
        settings=settings,
        jobs=JobStore(client("dynamodb"), settings.jobs_table),
        objects=ObjectStore(client("s3")),
        worker_id=f"worker-{uuid.uuid4().hex[:12]}",
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    time_limit = max(context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS, 1)

    def run(record: SQSRecord) -> None:
        message = JobMessage.model_validate_json(record.body)
        job = process_job(message.job_id, get_deps(), time_limit_seconds=time_limit)
        if job is not None:
            metrics.add_metric(name=f"Jobs{job.status.value.title()}", unit=MetricUnit.Count, value=1)

    return process_partial_response(event=event, record_handler=run, processor=processor, context=context)
