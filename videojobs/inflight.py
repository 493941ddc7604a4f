"""A received SQS message a worker is busy with.

Its visibility is the worker's second heartbeat: kept short and extended while the job runs, so that the message
of a worker that died comes back within minutes rather than after the queue's full visibility timeout. The same
call puts a message back for a later try.
"""

from __future__ import annotations

import math
from typing import Any

# SQS refuses a longer visibility timeout.
MAX_VISIBILITY_SECONDS = 12 * 3600


class InFlightMessage:
    def __init__(self, client: Any, queue_url: str, receipt_handle: str):
        self._client = client
        self._queue_url = queue_url
        self._receipt_handle = receipt_handle

    def hide_for(self, seconds: float) -> None:
        """Make the message visible again ``seconds`` from now (0: at once), counted from this call."""
        self._client.change_message_visibility(
            QueueUrl=self._queue_url,
            ReceiptHandle=self._receipt_handle,
            VisibilityTimeout=max(0, min(math.ceil(seconds), MAX_VISIBILITY_SECONDS)),
        )

    def delete(self) -> None:
        self._client.delete_message(QueueUrl=self._queue_url, ReceiptHandle=self._receipt_handle)


def queue_url_of(client: Any, queue_arn: str) -> str:
    """The URL of a queue known by its ARN (``arn:aws:sqs:<region>:<account>:<name>``), as SQS event records
    name their queue."""
    *_, account, name = queue_arn.split(":")
    return client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
