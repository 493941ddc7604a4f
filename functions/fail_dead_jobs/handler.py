"""The jobs queue's dead-letter queue -> the job ends ``failed`` (``processing_failed``), never stuck.

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
from videojobs.job_store import JobStore
from videojobs.models import JobMessage
from videojobs.observability import logger, metrics
from videojobs.queues import UnreadableMessage, read_message
from videojobs.service.processing import fail_abandoned
from videojobs.settings import JobsTableSettings
from videojobs.usage import UsageLedger

# A batch whose every record failed (dead letters of jobs a live worker still holds) is a routine retry, not a
# Lambda function error: report it, do not raise.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@cache
def get_jobs() -> JobStore:
    settings = JobsTableSettings.from_env()
    return JobStore(
        client("dynamodb"), settings.jobs_table, ledger=UsageLedger(client("dynamodb"), settings.usage_table)
    )


def fail_job(record: SQSRecord) -> None:
    try:
        message = read_message(JobMessage, record.body, record.message_id)
    except UnreadableMessage:
        return  # logged and counted (an alarm): the last stop, with no job to fail and no further queue
    job = fail_abandoned(message.job_id, get_jobs())
    logger.info("dead letter", extra={"job_id": message.job_id, "failed_now": job is not None})


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=fail_job, processor=processor, context=context)
