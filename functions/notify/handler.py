"""DynamoDB stream of the jobs table -> job events, fanned out to the event log, the webhook delivery queue
and the job's WebSockets. It never calls a customer's endpoint (the deliver function does).

A record that cannot be read as a job is logged and skipped: retrying cannot fix it, and failing it would
hold up every record behind it on the shard. Anything else that fails (a throttled write, say) is reported as a
batch item failure, so Lambda retries from that record (bounded, then the on-failure destination).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from videojobs.aws import client, events_client, websocket_management_client
from videojobs.event_bus import EventBus
from videojobs.job_store import from_item
from videojobs.models import Job
from videojobs.notification_store import ConnectionStore, DeliveryLedger, EndpointStore, EventLog
from videojobs.observability import logger
from videojobs.queues import DeliveryQueue
from videojobs.service.fanout import NotifyDeps, handle_change
from videojobs.settings import NotifySettings
from videojobs.tenant_counters import OpenStreams, PendingJobs

# A batch that only failed (a routine retry) is reported, not raised: raising would be a Lambda function error.
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


@cache
def get_deps() -> NotifyDeps:
    settings = NotifySettings.from_env()
    dynamodb = client("dynamodb")
    return NotifyDeps(
        events=EventLog(dynamodb, settings.job_events_table, timedelta(days=settings.event_retention_days)),
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        deliveries=DeliveryQueue(client("sqs"), settings.deliveries_queue_url),
        connections=ConnectionStore(dynamodb, settings.ws_connections_table),
        sockets=websocket_management_client(settings.websocket_url),
        endpoints=EndpointStore(dynamodb, settings.webhook_endpoints_table),
        endpoint_ledger=DeliveryLedger(dynamodb, settings.endpoint_deliveries_table, by_endpoint=True),
        bus=EventBus(events_client(), settings.event_bus_name),
        pending_jobs=PendingJobs(dynamodb, settings.tenants_table),
        open_streams=OpenStreams(dynamodb, settings.tenants_table),
    )


def fan_out(record: DynamoDBRecord) -> None:
    try:
        change = record.raw_event["dynamodb"]
        old, new = from_item(change.get("OldImage") or {}), from_item(change["NewImage"])
        Job.model_validate(new)
    except (KeyError, TypeError, ValueError, ValidationError):
        logger.exception("unreadable stream record skipped", extra={"event_id": record.event_id})
        return
    event = handle_change(old, new, get_deps())
    if event is not None:
        logger.info("job event", extra={"job_id": event.data.id, "type": event.type.value, "version": event.version})


FAN_OUT_RESERVE_MILLISECONDS = 5_000
"""Time kept back from the function's timeout: a record is not started with less left (one fan-out, its
WebSocket pushes included, fits in it), so the invocation ends before Lambda's timeout would fail it all."""


class EarlierRecordFailed(Exception):
    """Lambda retries a shard from its first failed record: later ones wait for it, so events keep their order."""


class OutOfTime(Exception):
    """Too little time left for another record: it and the ones after it are retried by the next invocation."""


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    failed = False
    started = False

    def in_order(record: DynamoDBRecord) -> None:
        nonlocal failed, started
        if failed:
            raise EarlierRecordFailed(record.event_id)
        try:
            # The first record always runs, so that every invocation makes progress.
            if started and context.get_remaining_time_in_millis() < FAN_OUT_RESERVE_MILLISECONDS:
                raise OutOfTime(record.event_id)
            started = True
            fan_out(record)
        except Exception:
            failed = True
            raise

    return process_partial_response(event=event, record_handler=in_order, processor=processor, context=context)
