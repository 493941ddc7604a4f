"""One policy for a queue message that is not its queue's contract, at each of the four consumers: logged with its
message id, counted (``UnreadableMessages``, which has an alarm) and left for the dead-letter queue; the jobs'
dead-letter consumer, the last stop, counts it and lets it go. Never deleted without a trace."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from functions.deliver import handler as deliver_handler
from functions.fail_dead_jobs import handler as dead_letters
from functions.process import consumer
from functions.process import handler as process_handler
from infra.local.pollers import sqs_record
from infra.local.resources import Resources
from tests.integration.conftest import REGION
from tests.integration.workers import context, sqs_event, worker_deps
from videojobs.aws import client
from videojobs.metric_names import UNREADABLE_MESSAGES


def garbage(aws: Resources, queue: str) -> dict[str, Any]:
    """An unreadable message sent to the moto queue and received from it (the raw SQS message)."""
    sqs = client("sqs")
    sqs.send_message(QueueUrl=aws.queues[queue].url, MessageBody="not a message of this queue")
    (message,) = sqs.receive_message(
        QueueUrl=aws.queues[queue].url, MessageSystemAttributeNames=["All"], VisibilityTimeout=30
    )["Messages"]
    return message


def counted(output: str) -> float:
    """How many unreadable messages the printed EMF documents count."""
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]
    return sum(sum(document.get(UNREADABLE_MESSAGES, [])) for document in documents)


def logged(caplog: pytest.LogCaptureFixture, message_id: str) -> bool:
    return any(getattr(record, "message_id", None) == message_id for record in caplog.records)


def in_flight(aws: Resources, queue: str) -> int:
    attributes = client("sqs").get_queue_attributes(QueueUrl=aws.queues[queue].url, AttributeNames=["All"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.parametrize(
    ("queue", "handler", "timeout"), [("jobs", process_handler, 900), ("deliveries", deliver_handler, 20)]
)
def test_a_lambda_consumer_keeps_an_unreadable_message_for_the_dead_letter_queue(
    aws: Resources,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    queue: str,
    handler: Any,
    timeout: int,
) -> None:
    record = sqs_record(garbage(aws, queue), aws.queues[queue].arn, REGION)
    # A batch item failure, not a function error: SQS keeps it, the redrive moves it on.
    answer = handler.lambda_handler(sqs_event(record), context(timeout))
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert in_flight(aws, queue) == 1
    assert counted(capsys.readouterr().out) == 1 and logged(caplog, record["messageId"])


def test_the_long_jobs_consumer_leaves_an_unreadable_message_undeleted(
    aws: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    message = garbage(aws, "long_jobs")
    deps = worker_deps(aws, tmp_path, "consumer", long_jobs=False)
    consumer.handle(message, time.monotonic(), deps, client("sqs"), threading.Event())
    assert in_flight(aws, "long_jobs") == 1  # back when its visibility ends, until the redrive takes it
    assert counted(capsys.readouterr().out) == 1 and logged(caplog, message["MessageId"])


def test_the_dead_letter_consumer_counts_an_unreadable_message_and_lets_it_go(
    aws: Resources, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    record = sqs_record(garbage(aws, "jobs"), aws.queues["jobs"].arn, REGION)
    assert dead_letters.lambda_handler(sqs_event(record), context(30)) == {"batchItemFailures": []}
    assert counted(capsys.readouterr().out) == 1 and logged(caplog, record["messageId"])
