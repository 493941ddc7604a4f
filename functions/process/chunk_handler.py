"""SQS (chunks queue) -> one chunk of a chunked encode per message: claim, encode every video rendition of its
time range, upload the pieces, mark the chunk done (``videojobs.service.chunking``).

The same container image as the job worker (``handler.py``), with its own event source and concurrency.
A chunk held by another live worker, or one to retry, is reported as a batch item failure with the message's
visibility set to when it should come back; after the last delivery the dead-letter handler fails the chunk,
and with it the job.
"""

from __future__ import annotations

import time
import uuid
from functools import cache
from typing import Any

import av  # noqa: F401  (the worker's heavy imports belong in Lambda's init phase, not in the first chunk)
import imageio_ffmpeg  # noqa: F401
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs.aws import client
from videojobs.chunk_store import ChunkStore
from videojobs.job_store import JobStore
from videojobs.models import ChunkMessage
from videojobs.object_store import ObjectStore
from videojobs.observability import logger, metrics
from videojobs.queues import ReceivedMessage, queue_url_of, read_message
from videojobs.service.chunking import ChunkAttempt, ChunkDeps, process_chunk
from videojobs.service.processing import sweep_stale_scratch
from videojobs.settings import ChunkWorkerSettings

# Time to give the chunk back and clean up before Lambda stops the invocation.
SAFETY_MARGIN_SECONDS = 30

# A batch that only failed (a routine retry) is reported, not raised: raising would be a Lambda function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class Redeliver(Exception):
    """Not done with this message: SQS delivers it again once its visibility timeout (set just before) ends."""


@cache
def get_deps() -> ChunkDeps:
    settings = ChunkWorkerSettings.from_env()
    sweep_stale_scratch(settings.scratch_dir)  # what a killed earlier run left behind
    return ChunkDeps(
        settings=settings,
        jobs=JobStore(client("dynamodb"), settings.jobs_table),
        chunks=ChunkStore(client("dynamodb"), settings.chunks_table),
        objects=ObjectStore(client("s3")),
        worker_id=f"lambda-{uuid.uuid4().hex[:12]}",
    )


@cache
def queue_url(queue_arn: str) -> str:
    return queue_url_of(client("sqs"), queue_arn)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS

    def run(record: SQSRecord) -> None:
        message = read_message(ChunkMessage, record.body, record.message_id)  # unreadable: to the DLQ
        inflight = ReceivedMessage.from_lambda(client("sqs"), queue_url(record.event_source_arn), record.receipt_handle)
        outcome = process_chunk(message, get_deps(), ChunkAttempt(deadline=deadline, message=inflight))
        if outcome.retry_in_seconds is not None:
            inflight.hide_for(outcome.retry_in_seconds)
            raise Redeliver(f"chunk {message.index} of job {message.job_id} again in {outcome.retry_in_seconds:.0f} s")

    return process_partial_response(event=event, record_handler=run, processor=processor, context=context)
