"""SQS adapters: the jobs queue, the webhook delivery queue, and a received message's visibility.

An unreadable message (a body that is not the contract its queue carries) is handled the same way by every
consumer, through ``read_message``: it is logged with its message id, counted (metric ``UnreadableMessages``,
which has an alarm) and left to its queue's redrive policy, so it ends in the dead-letter queue where an
operator can look at it; it is never deleted unread. A Lambda consumer reports it as a batch item failure; the
long-jobs consumer leaves it undeleted. The jobs' dead-letter consumer, the last stop, logs and counts it too,
then lets it go (there is no job to fail and no further queue).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient

from videojobs.metric_names import UNREADABLE_MESSAGES
from videojobs.models import ChunkMessage, JobMessage
from videojobs.observability import logger, metrics

MAX_VISIBILITY_SECONDS = 12 * 3600
"""SQS keeps a message hidden at most 12 h counted from its receive (not from each ChangeMessageVisibility)."""
LAMBDA_RECEIVE_MARGIN_SECONDS = 300
"""A Lambda handler learns of a message after the event source received it: up to the largest batching window
(300 s) plus the poll. Its visibility is counted from that much before the handler started."""

Model = TypeVar("Model", bound=BaseModel)


class UnreadableMessage(Exception):
    """A queue message whose body is not the model its queue carries (already logged and counted)."""


def read_message(model: type[Model], body: str, message_id: str) -> Model:
    """The message's body as ``model``; an unreadable one is logged with its id, counted, and raised as
    ``UnreadableMessage`` so that the consumer leaves it for the dead-letter queue (see the module's docstring)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        logger.error(
            "unreadable queue message",
            extra={"message_id": message_id, "model": model.__name__, "error": str(error)},
        )
        metrics.add_metric(name=UNREADABLE_MESSAGES, unit=MetricUnit.Count, value=1)
        raise UnreadableMessage(message_id) from error


class ReceivedMessage:
    """A received SQS message: hide it for a while (a heartbeat, or a retry later) or delete it.

    ``received_at`` is when SQS received it, on ``clock`` (``time.monotonic``), or a moment before: SQS refuses a
    visibility that would end more than 12 h after the receive, so longer waits are capped there (the caller
    hops: the message comes back and is hidden again from its new receive).
    """

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        receipt_handle: str,
        received_at: float,
        clock: Callable[[], float] | None = None,
    ):
        self._client = client
        self._queue_url = queue_url
        self._receipt_handle = receipt_handle
        self._received_at = received_at
        self._clock = clock or time.monotonic

    @classmethod
    def from_lambda(cls, client: SQSClient, queue_url: str, receipt_handle: str) -> ReceivedMessage:
        """A message of an SQS event: received at most ``LAMBDA_RECEIVE_MARGIN_SECONDS`` before now."""
        return cls(client, queue_url, receipt_handle, time.monotonic() - LAMBDA_RECEIVE_MARGIN_SECONDS)

    def hide_for(self, seconds: float) -> int:
        """Make the message visible again ``seconds`` from now (0: at once), or 12 h after its receive if that
        is sooner. Returns the visibility set, in seconds from now."""
        left = math.floor(MAX_VISIBILITY_SECONDS - (self._clock() - self._received_at))
        visibility = max(0, min(math.ceil(seconds), left))
        self._client.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=self._receipt_handle, VisibilityTimeout=visibility
        )
        return visibility

    def delete(self) -> None:
        self._client.delete_message(QueueUrl=self._queue_url, ReceiptHandle=self._receipt_handle)


def queue_url_of(client: SQSClient, queue_arn: str) -> str:
    """The URL of a queue known by its ARN (``arn:aws:sqs:<region>:<account>:<name>``), as SQS event records
    name their queue."""
    *_, account, name = queue_arn.split(":")
    return client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]


MAX_DELAY_SECONDS = 900
"""SQS's longest ``DelaySeconds``."""


class JobQueue:
    """A jobs queue (the Lambda workers' or the long-jobs consumer's). Each message carries its tenant as
    ``MessageGroupId``, which makes the standard queue a *fair queue*: when one tenant's backlog takes most of
    the consumers, SQS delivers the other tenants' messages first (``infra/local/fair_sqs.py`` emulates it)."""

    def __init__(self, client: SQSClient, queue_url: str):
        self._client = client
        self._queue_url = queue_url

    def send(self, message: JobMessage, *, tenant_id: str, delay_seconds: float = 0) -> None:
        """Queue the job, visible after ``delay_seconds`` (at most SQS's 900)."""
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=message.model_dump_json(exclude_defaults=True),
            MessageGroupId=tenant_id,
            DelaySeconds=max(0, min(math.ceil(delay_seconds), MAX_DELAY_SECONDS)),
        )


class ChunkQueue:
    """The chunks of chunked encodes, for the chunk workers."""

    def __init__(self, client: SQSClient, queue_url: str):
        self._client = client
        self._queue_url = queue_url

    def send(self, message: ChunkMessage) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=message.model_dump_json())


class DeliveryQueue:
    """SQS adapter for webhook deliveries (retries are scheduled on the received message: ``ReceivedMessage``)."""

    def __init__(self, client: SQSClient, queue_url: str, dead_letter_url: str | None = None):
        self._client = client
        self._queue_url = queue_url
        self._dead_letter_url = dead_letter_url

    def send(self, message: BaseModel) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=message.model_dump_json())

    def dead_letter(self, message: BaseModel) -> None:
        """Park a message whose every attempt failed in the dead-letter queue, for inspection and alarms."""
        if self._dead_letter_url is None:
            raise RuntimeError("this queue has no dead-letter queue configured")
        self._client.send_message(QueueUrl=self._dead_letter_url, MessageBody=message.model_dump_json())
