"""SQS's 12 h visibility cap counts from the receive: the emulation refuses past it, the helper stays within."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError
from moto.sqs.models import sqs_backends

from infra.local.resources import Resources
from tests.integration.conftest import REGION
from videojobs.aws import client
from videojobs.queues import ReceivedMessage
from videojobs.settings import WorkerSettings

HOUR_MS = 3600 * 1000


def _received(aws: Resources) -> tuple[str, dict]:
    sqs, url = client("sqs"), aws.queues["long_jobs"].url
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"job_id": "job_x"}))
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    return url, message


def _backdate(message: dict, *, sent_ms: int = 0, received_ms: int = 0) -> None:
    """Move the moto message's send and receive back in time, as if hours had passed."""
    (queue,) = [q for q in sqs_backends["123456789012"][REGION].queues.values() if q.name.endswith("long_jobs")]
    (stored,) = [m for m in queue._messages if m.had_receipt_handle(message["ReceiptHandle"])]
    stored.sent_timestamp -= sent_ms
    stored.__dict__["_received_at_ms"][message["ReceiptHandle"]] -= received_ms


def test_the_cap_counts_from_the_receive_not_the_send(aws: Resources) -> None:
    url, message = _received(aws)
    _backdate(message, sent_ms=6 * HOUR_MS)  # it waited 6 h in the queue: a fresh receive may still hide 12 h
    client("sqs").change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=11 * 3600
    )
    _backdate(message, received_ms=2 * HOUR_MS)  # 2 h into the job: 11 h more would end 13 h after the receive
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        client("sqs").change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=11 * 3600
        )


def test_the_helper_never_asks_past_twelve_hours_from_the_receive(aws: Resources) -> None:
    asked_at = time.monotonic()  # as the consumer notes it, just before its receive call
    url, message = _received(aws)
    inflight = ReceivedMessage(client("sqs"), url, message["ReceiptHandle"], asked_at)
    inflight.hide_for(12 * 3600)  # SQS's whole cap, asked after the receive: shortened, not refused
    _backdate(message, received_ms=2 * 3600 * 1000)
    from_lambda = ReceivedMessage.from_lambda(client("sqs"), url, message["ReceiptHandle"])
    with pytest.raises(ClientError):  # a helper told the receive was now, though it was 2 h ago
        from_lambda.hide_for(12 * 3600)


def test_the_job_time_limit_fits_in_the_visibility_cap() -> None:
    limit = WorkerSettings.model_fields["job_time_limit_seconds"]
    assert limit.default < 12 * 3600
    with pytest.raises(ValueError):
        WorkerSettings.model_validate({**_worker_env(), "JOB_TIME_LIMIT_SECONDS": str(12 * 3600)})


def _worker_env() -> dict[str, str]:
    names = ("JOBS_TABLE", "USAGE_TABLE", "UPLOADS_BUCKET", "OUTPUTS_BUCKET", "LONG_JOBS_QUEUE_URL", "TENANTS_TABLE")
    return {name: "x" for name in (*names, "CHUNKS_TABLE", "CHUNKS_QUEUE_URL")}
