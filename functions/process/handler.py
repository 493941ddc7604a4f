"""SQS -> one job per message: claim, probe, route, encode with ffmpeg, upload outputs, complete.

Runs as a container-image Lambda (``Dockerfile`` beside this file) and in the local stack's poller. A job whose
estimated work does not fit this function's time goes to the long-jobs queue (``consumer.py``, same image).
Permanent failures end the job and ack the message; anything else is reported as a batch item failure, with the
message's visibility set to when it should come back; after the last delivery the dead-letter handler ends the
job ``failed``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from functools import cache
from typing import Any

import av  # noqa: F401  (the worker's heavy imports belong in Lambda's init phase, not in the first job)
import imageio_ffmpeg  # noqa: F401
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs.aws import client
from videojobs.chunk_store import ChunkStore
from videojobs.dispatch import Dispatch
from videojobs.job_store import JobStore
from videojobs.models import JobMessage
from videojobs.object_store import ObjectStore
from videojobs.observability import logger, metrics
from videojobs.pricing import Compute, lambda_compute
from videojobs.queues import ChunkQueue, JobQueue, ReceivedMessage, queue_url_of, read_message
from videojobs.service.processing import (
    Attempt,
    WorkerDeps,
    process_job,
    record_job_metrics,
    sweep_stale_scratch,
)
from videojobs.settings import WorkerSettings
from videojobs.usage import UsageLedger

LAMBDA_MAX_EPHEMERAL_BYTES = 10240 * 1024**2
# Leave time to record a failure, hand the job on and clean up before Lambda stops the invocation.
SAFETY_MARGIN_SECONDS = 30

# A batch that only failed (a routine retry) is reported, not raised: raising would be a Lambda function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class Redeliver(Exception):
    """Not done with this message: SQS delivers it again once its visibility timeout (set just before) ends."""


@cache
def get_deps() -> WorkerDeps:
    settings = WorkerSettings.from_env()
    sweep_stale_scratch(settings.scratch_dir)  # what a killed earlier run left behind
    jobs = JobStore(
        client("dynamodb"), settings.jobs_table, ledger=UsageLedger(client("dynamodb"), settings.usage_table)
    )
    return WorkerDeps(
        settings=settings,
        jobs=jobs,
        objects=ObjectStore(client("s3")),
        worker_id=f"lambda-{uuid.uuid4().hex[:12]}",
        long_jobs=JobQueue(client("sqs"), settings.long_jobs_queue_url),
        dispatch=Dispatch.from_settings(settings, client("dynamodb"), jobs),
        chunks=ChunkStore(client("dynamodb"), settings.chunks_table),
        chunk_queue=ChunkQueue(client("sqs"), settings.chunks_queue_url),
    )


def invocation_compute(context: LambdaContext, scratch_dir: str) -> Compute:
    """What Lambda bills this invocation by: the memory its context reports, and the ``/tmp`` it was given (the
    function's ephemeral storage, at most Lambda's 10,240 MB)."""
    scratch_gb = min(shutil.disk_usage(scratch_dir).total, LAMBDA_MAX_EPHEMERAL_BYTES) / 1024**3
    return lambda_compute(int(context.memory_limit_in_mb), ephemeral_gb=scratch_gb)


@cache
def queue_url(queue_arn: str) -> str:
    return queue_url_of(client("sqs"), queue_arn)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS
    compute = invocation_compute(context, get_deps().settings.scratch_dir)

    def run(record: SQSRecord) -> None:
        message = read_message(JobMessage, record.body, record.message_id)  # unreadable: to the DLQ
        inflight = ReceivedMessage.from_lambda(client("sqs"), queue_url(record.event_source_arn), record.receipt_handle)
        attempt = Attempt(deadline=deadline, message=inflight, deferrals=message.deferrals, compute=compute)
        outcome = process_job(message.job_id, get_deps(), attempt)
        record_job_metrics(outcome.job)
        if outcome.requeue_in_seconds is not None and outcome.job is not None:
            # A fresh copy, then this record succeeds (the event source deletes it): see videojobs/dispatch.py.
            queue = JobQueue(client("sqs"), queue_url(record.event_source_arn))
            again = message.model_copy(update={"deferrals": message.deferrals + outcome.at_limit})
            queue.send(again, tenant_id=outcome.job.tenant_id, delay_seconds=outcome.requeue_in_seconds)
            return
        if outcome.retry_in_seconds is not None:
            inflight.hide_for(outcome.retry_in_seconds)
            raise Redeliver(f"job {message.job_id} again in {outcome.retry_in_seconds:.0f} s")

    return process_partial_response(event=event, record_handler=run, processor=processor, context=context)
