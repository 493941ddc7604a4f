"""The chunks queue's dead-letter queue -> the chunk fails (``processing_failed``), and with it the job: its
coordinator sees the failed chunk and ends the job ``failed`` rather than wait for ever.

A message lands here after its last delivery failed, whether the worker raised, timed out or was killed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs.aws import client
from videojobs.chunk_store import ChunkStore
from videojobs.models import ChunkMessage
from videojobs.observability import logger, metrics
from videojobs.queues import UnreadableMessage, read_message
from videojobs.service.chunking import fail_abandoned_chunk
from videojobs.settings import ChunksTableSettings

# A batch whose every record failed (dead letters of chunks a live worker still holds) is a routine retry.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def get_chunks() -> ChunkStore:
    return ChunkStore(client("dynamodb"), ChunksTableSettings.from_env().chunks_table)


def fail_chunk(record: SQSRecord) -> None:
    try:
        message = read_message(ChunkMessage, record.body, record.message_id)
    except UnreadableMessage:
        return  # logged and counted (an alarm): the last stop
    chunk = fail_abandoned_chunk(message, get_chunks())
    logger.info(
        "dead letter", extra={"job_id": message.job_id, "chunk": message.index, "failed_now": chunk is not None}
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=fail_chunk, processor=processor, context=context)
