"""DynamoDB stream -> job events. For now it logs each status/version change; the notifications work
(webhooks, WebSockets, SSE) fans these events out."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs.observability import logger
from videojobs.store import from_item

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def log_change(record: DynamoDBRecord) -> None:
    raw = record.raw_event["dynamodb"]
    new = from_item(raw.get("NewImage") or {})
    old = from_item(raw.get("OldImage") or {})
    if new.get("version") == old.get("version"):
        return  # nothing a client could observe changed
    logger.info("job changed", extra={
        "job_id": new.get("id"), "status": new.get("status"), "version": new.get("version"),
        "previous_status": old.get("status"), "progress": new.get("progress"),
    })


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(event=event, record_handler=log_change, processor=processor, context=context)
