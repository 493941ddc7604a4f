"""SQS adapter for the jobs queue."""

from __future__ import annotations

from typing import Any

from videojobs.models import JobMessage


class JobQueue:
    def __init__(self, client: Any, queue_url: str):
        self._client = client
        self._queue_url = queue_url

    def send(self, message: JobMessage) -> None:
        self._client.send_message(QueueUrl=self._queue_url, MessageBody=message.model_dump_json())
