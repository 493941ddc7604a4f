"""The local stack's event source mappings (SQS and DynamoDB Streams), with fake handlers as consumers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel, SqsModel

from infra.local import LocalStack
from infra.local.fair_sqs import configure as configure_fairness
from tests.integration.fake_functions import recorder as fake
from videojobs import wiring

FAKE = "tests.integration.fake_functions.handlers"
T = TypeVar("T")


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    # A 1 s visibility timeout makes a failed message come back (and reach the dead-letter queue) quickly.
    handlers = {
        "process": f"{FAKE}.sqs_consumer",
        "fail_dead_jobs": f"{FAKE}.dlq_consumer",
        "notify": f"{FAKE}.stream_consumer",
    }
    with LocalStack(port=0, visibility_timeout_seconds=1, handlers=handlers) as started:
        yield started


@pytest.fixture(autouse=True)
def _clean() -> None:
    fake.reset()


def eventually(probe: Callable[[], T | None], timeout: float = 20) -> T:
    """Poll ``probe`` until it returns something truthy; the deadline only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"nothing after {timeout} s")


def records(kind: str) -> list[dict[str, Any]]:
    return [record for event in fake.calls(kind) for record in event["Records"]]


def bodies(kind: str) -> list[str]:
    return [record["body"] for record in records(kind)]


def drained(stack: LocalStack, *queue_urls: str) -> bool:
    """No message left, visible or in flight."""
    sqs = stack.client("sqs")
    return all(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][name] == "0"
        for url in queue_urls
        for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    )


# --- SQS ---------------------------------------------------------------------------------------------------


def test_sqs_records_have_the_lambda_shape(stack: LocalStack) -> None:
    queue = stack.resources.queues["jobs"]
    stack.client("sqs").send_message(
        QueueUrl=queue.url,
        MessageBody="ok-shape",
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "test"},
        },
    )

    eventually(lambda: "ok-shape" in bodies("sqs"))
    [event] = fake.calls("sqs")
    SqsModel.model_validate(event)
    [record] = event["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == stack.region
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"]["kind"]["stringValue"] == "test"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert fake.contexts("sqs")[0]["function_name"] == "videojobs-process"


def test_sqs_poller_deletes_successes_and_redelivers_failures_until_the_dead_letter_queue(
    stack: LocalStack,
) -> None:
    sqs, queue = stack.client("sqs"), stack.resources.queues["jobs"]
    for body in ("ok-1", "fail-1", "raise-1"):
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)

    eventually(lambda: {"fail-1", "raise-1"} <= set(bodies("dlq")))

    max_receives = wiring.QUEUES["jobs"].max_receive_count
    received = bodies("sqs")
    assert received.count("ok-1") == 1  # deleted after success, so never seen again
    assert received.count("fail-1") == max_receives
    assert received.count("raise-1") == max_receives
    counts = [r["attributes"]["ApproximateReceiveCount"] for r in records("sqs") if r["body"] == "fail-1"]
    assert counts == [str(n) for n in range(1, max_receives + 1)]
    [dead] = [r for r in records("dlq") if r["body"] == "fail-1"]
    assert dead["eventSourceARN"] == queue.dlq_arn
    # The dead-letter consumer succeeded, so its queue empties too.
    eventually(lambda: drained(stack, queue.url, queue.dlq_url))


def backlog_then_newcomer(stack: LocalStack, backlog: int = 16) -> list[str]:
    """Tenant A queues ``backlog`` messages that keep a consumer busy; once the pollers are on them, tenant B
    queues 2. Returns the bodies in the order the consumer first got them."""
    sqs, queue = stack.client("sqs"), stack.resources.queues["jobs"]
    for index in range(backlog):
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"busy-A-{index}", MessageGroupId="A")
    eventually(lambda: len(bodies("sqs")) >= 2)
    for index in range(2):
        sqs.send_message(QueueUrl=queue.url, MessageBody=f"busy-B-{index}", MessageGroupId="B")
    eventually(lambda: drained(stack, queue.url))
    # First deliveries only: on a busy machine a message can outlive this stack's 1 s visibility and come back.
    return list(dict.fromkeys(bodies("sqs")))


def test_fair_queue_delivers_a_quiet_tenant_before_a_noisy_tenants_backlog(stack: LocalStack) -> None:
    order = backlog_then_newcomer(stack)

    # When B sent, the two pollers were busy with A's first messages (and may have taken the next ones): B's
    # messages come next, ahead of A's backlog of a dozen.
    assert order[:2] == ["busy-A-0", "busy-A-1"]
    assert max(order.index("busy-B-0"), order.index("busy-B-1")) <= 5, order
    assert sorted(order) == sorted([f"busy-A-{i}" for i in range(16)] + ["busy-B-0", "busy-B-1"])


def test_without_fairness_a_newcomer_waits_behind_the_whole_backlog(stack: LocalStack) -> None:
    configure_fairness(fair=False)  # as moto alone (and the benchmark's comparison run)
    try:
        order = backlog_then_newcomer(stack)
    finally:
        configure_fairness(fair=True)

    assert order[-2:] == ["busy-B-0", "busy-B-1"], order


# --- DynamoDB Streams --------------------------------------------------------------------------------------


def put_job(stack: LocalStack, job_id: str, **attributes: dict[str, str]) -> None:
    stack.client("dynamodb").put_item(TableName=stack.env["JOBS_TABLE"], Item={"id": {"S": job_id}, **attributes})


def stream_records_for(job_id: str) -> list[dict[str, Any]]:
    return [r for r in records("stream") if r["dynamodb"]["Keys"]["id"]["S"] == job_id]


def test_stream_poller_delivers_insert_and_modify_in_the_lambda_shape_and_skips_remove(stack: LocalStack) -> None:
    dynamodb, table = stack.client("dynamodb"), stack.env["JOBS_TABLE"]
    put_job(stack, "s1", status={"S": "queued"}, data={"B": b"\x00\x01"})
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": "s1"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "done"}},
    )
    dynamodb.delete_item(TableName=table, Key={"id": {"S": "s1"}})
    put_job(stack, "s1-after")  # delivered after the REMOVE would have been

    eventually(lambda: stream_records_for("s1-after"))

    for event in fake.calls("stream"):
        DynamoDBStreamModel.model_validate(event)
    delivered = stream_records_for("s1")
    assert [r["eventName"] for r in delivered] == ["INSERT", "MODIFY"]
    insert, modify = delivered
    assert insert["eventSource"] == "aws:dynamodb"
    assert insert["eventVersion"] == "1.1"
    assert insert["awsRegion"] == stack.region
    assert insert["eventSourceARN"] == stack.resources.stream_arns["jobs"]
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert isinstance(insert["dynamodb"]["ApproximateCreationDateTime"], int | float)
    assert insert["dynamodb"]["NewImage"]["data"] == {"B": "AAE="}  # base64, as in Lambda's JSON event
    assert "OldImage" not in insert["dynamodb"]
    assert modify["dynamodb"]["OldImage"]["status"] == {"S": "queued"}
    assert modify["dynamodb"]["NewImage"]["status"] == {"S": "done"}
    assert int(insert["dynamodb"]["SequenceNumber"]) < int(modify["dynamodb"]["SequenceNumber"])
    assert fake.contexts("stream")[0]["function_name"] == "videojobs-notify"


def test_stream_poller_retries_from_the_first_failed_record(stack: LocalStack) -> None:
    # One request, so that the three records almost surely reach the handler in one batch.
    stack.client("dynamodb").batch_write_item(
        RequestItems={
            stack.env["JOBS_TABLE"]: [
                {"PutRequest": {"Item": item}}
                for item in (
                    {"id": {"S": "r-before"}},
                    {"id": {"S": "r-flaky"}, "fail_times": {"N": "2"}},
                    {"id": {"S": "r-sentinel"}},
                )
            ]
        }
    )

    eventually(lambda: len(stream_records_for("r-flaky")) == 3 and stream_records_for("r-sentinel"))

    assert len(stream_records_for("r-before")) == 1  # before the failure: never delivered again


def test_stream_poller_gives_up_after_retry_attempts_and_moves_on(stack: LocalStack) -> None:
    put_job(stack, "g-poison", fail_times={"N": "99"})
    put_job(stack, "g-next")

    attempts = 1 + wiring.STREAM_TRIGGERS[0].retry_attempts
    eventually(lambda: len(stream_records_for("g-poison")) == attempts and stream_records_for("g-next"))
    put_job(stack, "g-later")  # read after the give-up: the shard has moved past the poison record
    eventually(lambda: stream_records_for("g-later"))

    assert len(stream_records_for("g-poison")) == attempts


# --- execution environments --------------------------------------------------------------------------------


def test_concurrent_invocations_each_get_their_own_environment(stack: LocalStack) -> None:
    sqs, queue = stack.client("sqs"), stack.resources.queues["jobs"]
    for body in ("together-1", "together-2"):
        sqs.send_message(QueueUrl=queue.url, MessageBody=body)

    # The fake consumer waits for a second invocation running at the same time: both finish only if they do.
    eventually(lambda: sorted(bodies("sqs")) == ["together-1", "together-2"] and drained(stack, queue.url))

    assert fake.calls("overlap") == []
    modules = {info["module"] for info in fake.contexts("sqs")}
    assert len(modules) == 2  # the handler module, and a copy of it for the second environment
