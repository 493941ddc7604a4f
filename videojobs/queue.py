"""SQS adapters: the jobs queue and the webhook delivery queue."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from videojobs.models import JobMessage


class JobQueue:
    def __init__(self, client: Any, queue_url: str):
        self._client = client
        self._queue_url = queue_url

    def send(self, message: JobMessage) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=message.model_dump_json())


# SQS keeps a message hidden at most 12 h from when it was received; a longer wait is taken in hops of at most
# this (a few minutes short of the limit: the message was received before the function ran).
MAX_VISIBILITY_SECONDS = 12 * 3600 - 300


class DeliveryQueue:
    """SQS adapter for webhook deliveries: retries are scheduled by hiding the message until its next attempt."""

    def __init__(self, client: Any, queue_url: str, dead_letter_url: str | None = None):
        self._client = client
        self._queue_url = queue_url
        self._dead_letter_url = dead_letter_url

    def send(self, message: BaseModel) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=message.model_dump_json())

    def defer(self, receipt_handle: str, seconds: float) -> None:
        """Make a received message visible again in ``seconds`` (at most 12 h: the caller hops beyond)."""
        visibility = max(0, min(math.ceil(seconds), MAX_VISIBILITY_SECONDS))
        self._client.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=visibility
        )

    def dead_letter(self, message: BaseModel) -> None:
        """Park a message whose every attempt failed in the dead-letter queue, for inspection and alarms."""
        if self._dead_letter_url is None:
            raise RuntimeError("this queue has no dead-letter queue configured")
        self._client.send_message(QueueUrl=self._dead_letter_url, MessageBody=message.model_dump_json())
