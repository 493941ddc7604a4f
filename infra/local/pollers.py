"""Lambda's event source mappings, emulated: moto's own need Docker and ignore batch item failures and filters.

Each poller is a thread that turns what it reads into the event Lambda would send, invokes the function in this
process and settles the records the way the CDK stack configures the mapping (``report_batch_item_failures``,
bounded retries, filters). A failing handler is logged and never stops its poller.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from infra.local.functions import Functions, Throttled
from videojobs import wiring

log = logging.getLogger(__name__)

ALL = None
"""``failed_items`` answer meaning the whole batch failed."""
THROTTLE_BACKOFF_SECONDS = 1.0
THROTTLE_BACKOFF_MAX_SECONDS = 8.0
"""How long a poller waits after a throttled invocation before it tries again, doubling up to the maximum
(Lambda's event source mappings back off too, for as long as the batch stays hidden)."""


def failed_items(result: Any, identifiers: list[str]) -> set[str] | None:
    """The identifiers a handler reported in ``batchItemFailures``: an empty set when the batch succeeded,
    ``ALL`` when the response makes Lambda treat the whole batch as failed (a missing or unknown identifier)."""
    if not isinstance(result, dict) or result.get("batchItemFailures") is None:
        return set()
    failures = result["batchItemFailures"]
    if not isinstance(failures, list):
        return ALL
    reported = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in identifiers:
            return ALL
        reported.add(identifier)
    return reported


# --- SQS ---------------------------------------------------------------------------------------------------


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A received SQS message as a record of Lambda's SQS event."""
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": base64.b64encode(value["BinaryValue"]).decode() if "BinaryValue" in value else None,
                "stringListValues": value.get("StringListValues", []),
                "binaryListValues": [base64.b64encode(item).decode() for item in value.get("BinaryListValues", [])],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


class SqsPoller(threading.Thread):
    """Long-polls one queue and feeds batches to one function, deleting only the records that succeeded.

    A failed record stays in the queue: it comes back when its visibility timeout ends, and the queue's redrive
    policy moves it to the dead-letter queue after ``maxReceiveCount`` receives. So does a batch whose
    invocation was throttled: it was received, so its receive count went up although no handler saw it.
    """

    def __init__(
        self,
        *,
        sqs: Any,
        functions: Functions,
        function: str,
        queue_url: str,
        queue_arn: str,
        batch_size: int,
        region: str,
        stop: threading.Event,
        name: str,
    ):
        super().__init__(name=name, daemon=True)
        self._sqs = sqs
        self._functions = functions
        self._function = function
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._batch_size = batch_size
        self._region = region
        self._stopping = stop
        self._visibility_timeout: float | None = None

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # the poller must outlive any error: log it and back off briefly
                log.exception("%s: polling failed", self.name)
                self._stopping.wait(1)

    def poll_once(self) -> None:
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=1,  # short, so that the poller notices a shutdown quickly
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return
        received_at = time.monotonic()
        event = {"Records": [sqs_record(message, self._queue_arn, self._region) for message in messages]}
        try:
            result = self._invoke_through_throttles(event, received_at)
        except Throttled:
            log.warning("%s: %s throttled; the batch comes back when visible again", self.name, self._function)
            return
        except Exception:
            log.exception(
                "%s: %s raised; the batch becomes visible again after the visibility timeout", self.name, self._function
            )
            return
        if result is None:  # stopping
            return
        failed = failed_items(result, [message["MessageId"] for message in messages])
        if failed is ALL:
            log.warning(
                "%s: %s reported an invalid batch item failure; the whole batch is retried", self.name, self._function
            )
            return
        done = [message for message in messages if message["MessageId"] not in failed]
        for start in range(0, len(done), 10):  # DeleteMessageBatch takes at most 10 entries
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done[start : start + 10])
                ],
            )

    def _invoke_through_throttles(self, event: dict[str, Any], received_at: float) -> Any:
        """As Lambda's event source mapping does: a throttled batch is retried with a growing back-off for as long
        as its messages stay hidden, then left to come back to the queue (its receive count went up). None when
        the poller stops meanwhile."""
        backoff = THROTTLE_BACKOFF_SECONDS
        while True:
            try:
                return self._functions.invoke(self._function, event)
            except Throttled:
                if time.monotonic() + backoff >= received_at + self._visibility_timeout_seconds():
                    raise
                log.info("%s: %s throttled; retrying in %.0f s", self.name, self._function, backoff)
                if self._stopping.wait(backoff):
                    return None
                backoff = min(2 * backoff, THROTTLE_BACKOFF_MAX_SECONDS)

    def _visibility_timeout_seconds(self) -> float:
        if self._visibility_timeout is None:
            attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["VisibilityTimeout"])
            self._visibility_timeout = float(attributes["Attributes"]["VisibilityTimeout"])
        return self._visibility_timeout


# --- DynamoDB Streams --------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Binary attribute values as base64 text, as in the JSON event Lambda sends."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def stream_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A record from ``GetRecords`` as a record of Lambda's DynamoDB stream event.

    moto's records lack ``eventSourceARN``, carry a fixed region and ``eventVersion`` 1.0, and boto3 parses
    ``ApproximateCreationDateTime`` into a datetime where Lambda sends epoch seconds.
    """
    change = _json_safe(dict(record["dynamodb"]))
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }


class StreamPoller(threading.Thread):
    """Reads every shard of one table's stream and feeds filtered batches to one function.

    Records whose ``eventName`` the trigger does not list are dropped, like Lambda's filter criteria. A batch that
    reports failures is retried from its first failed record; one whose handler raises is split in two
    (``bisect_batch_on_error``). After ``retry_attempts`` retries, or past ``max_record_age_seconds``, the records
    are logged and skipped, where AWS would send their metadata to the on-failure destination.
    """

    def __init__(
        self,
        *,
        streams: Any,
        functions: Functions,
        trigger: wiring.StreamTrigger,
        stream_arn: str,
        region: str,
        stop: threading.Event,
        name: str,
        poll_interval_seconds: float = 0.2,
        retry_delay_seconds: float = 0.2,
    ):
        super().__init__(name=name, daemon=True)
        self._streams = streams
        self._functions = functions
        self._trigger = trigger
        self._stream_arn = stream_arn
        self._region = region
        self._stopping = stop
        self._poll_interval = poll_interval_seconds
        self._retry_delay = retry_delay_seconds
        self._iterators: dict[str, str | None] = {}
        """Shard id -> next iterator; None once a closed shard has been read to its end."""
        self._last_sequence: dict[str, str] = {}

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._discover_shards()
                for shard_id, iterator in list(self._iterators.items()):
                    if iterator is not None and not self._stopping.is_set():
                        self._read_shard(shard_id, iterator)
            except Exception:
                log.exception("%s: polling failed", self.name)
            self._stopping.wait(self._poll_interval)

    def _discover_shards(self) -> None:
        shards = self._streams.describe_stream(StreamArn=self._stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            if shard["ShardId"] not in self._iterators:
                # The stack created this table moments ago, so the shard's beginning is where "now" started.
                self._iterators[shard["ShardId"]] = self._new_iterator(shard["ShardId"])

    def _new_iterator(self, shard_id: str) -> str:
        last = self._last_sequence.get(shard_id)
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last}
            if last
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        return self._streams.get_shard_iterator(StreamArn=self._stream_arn, ShardId=shard_id, **position)[
            "ShardIterator"
        ]

    def _read_shard(self, shard_id: str, iterator: str) -> None:
        try:
            response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
        except ClientError as error:  # e.g. an expired iterator: start again after the last record read
            log.info("%s: %s; getting a new shard iterator", self.name, error.response["Error"]["Code"])
            self._iterators[shard_id] = self._new_iterator(shard_id)
            return
        records = response.get("Records", [])
        self._iterators[shard_id] = response.get("NextShardIterator")  # None: the shard is closed and read
        if not records:
            return
        self._last_sequence[shard_id] = records[-1]["dynamodb"]["SequenceNumber"]
        wanted = [
            stream_record(record, self._stream_arn, self._region)
            for record in records
            if record["eventName"] in self._trigger.event_names
        ]
        for start in range(0, len(wanted), self._trigger.batch_size):
            if self._stopping.is_set():
                return
            self._deliver(wanted[start : start + self._trigger.batch_size], self._trigger.retry_attempts)

    def _deliver(self, batch: list[dict[str, Any]], retries_left: int) -> None:
        while batch:
            batch = self._drop_expired(batch)
            if not batch:
                return
            try:
                result = self._functions.invoke(self._trigger.function, {"Records": batch})
            except Throttled:  # retried as it is, without spending a retry attempt or bisecting
                log.warning("%s: %s throttled", self.name, self._trigger.function)
                self._stopping.wait(THROTTLE_BACKOFF_SECONDS)
                continue
            except Exception:
                log.exception("%s: %s raised on %d records", self.name, self._trigger.function, len(batch))
                if len(batch) > 1:  # bisect: find the poison record without failing its neighbours
                    middle = len(batch) // 2
                    self._deliver(batch[:middle], retries_left)
                    self._deliver(batch[middle:], retries_left)
                    return
                first_failed = 0
            else:
                sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
                failed = failed_items(result, sequence_numbers)
                if failed == set():
                    return
                first_failed = 0 if failed is ALL else min(sequence_numbers.index(item) for item in failed)
            if retries_left <= 0 or self._stopping.is_set():
                log.error(
                    "%s: giving up on %d records from sequence number %s (AWS would send their metadata "
                    "to the on-failure destination)",
                    self.name,
                    len(batch) - first_failed,
                    batch[first_failed]["dynamodb"]["SequenceNumber"],
                )
                return
            retries_left -= 1
            batch = batch[first_failed:]
            self._stopping.wait(self._retry_delay)

    def _drop_expired(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        oldest = time.time() - self._trigger.max_record_age_seconds
        fresh = [record for record in batch if record["dynamodb"].get("ApproximateCreationDateTime", oldest) >= oldest]
        if len(fresh) < len(batch):
            log.error(
                "%s: skipping %d records older than %d s",
                self.name,
                len(batch) - len(fresh),
                self._trigger.max_record_age_seconds,
            )
        return fresh
