"""The delivery queue -> one signed webhook attempt per message; the next is scheduled on the message itself.

A failed attempt hides the message until its next attempt (``ChangeMessageVisibility``) and reports it as a
batch item failure, so SQS keeps it; a delivered, stopped or spent delivery's message is deleted.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs.aws import client, events_client
from videojobs.event_bus import EventBus
from videojobs.notification_store import DeliveryLedger, EndpointStore, SecretStore
from videojobs.observability import logger, metrics
from videojobs.queues import DeliveryQueue, ReceivedMessage, read_message
from videojobs.service.webhook_delivery import DeliverDeps, deliver
from videojobs.settings import DeliverSettings
from videojobs.webhooks import DeliveryMessage

# A batch that only failed (a routine retry) is reported, not raised: raising would be a Lambda function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class Deferred(Exception):
    """The message waits for its next attempt: not deleted (a batch item failure), already hidden."""


@cache
def get_deps() -> DeliverDeps:
    settings = DeliverSettings.from_env()
    dynamodb = client("dynamodb")
    return DeliverDeps(
        settings=settings,
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        secrets=SecretStore(dynamodb, settings.webhook_secrets_table),
        queue=DeliveryQueue(client("sqs"), settings.deliveries_queue_url, settings.deliveries_dlq_url),
        endpoints=EndpointStore(dynamodb, settings.webhook_endpoints_table),
        endpoint_ledger=DeliveryLedger(dynamodb, settings.endpoint_deliveries_table, by_endpoint=True),
        bus=EventBus(events_client(), settings.event_bus_name),
    )


def attempt(record: SQSRecord) -> None:
    message = read_message(DeliveryMessage, record.body, record.message_id)  # unreadable: to the DLQ
    received = ReceivedMessage.from_lambda(
        client("sqs"), get_deps().settings.deliveries_queue_url, record.receipt_handle
    )
    if not deliver(message, received, get_deps()):
        raise Deferred(message.delivery_id)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=attempt, processor=processor, context=context)
