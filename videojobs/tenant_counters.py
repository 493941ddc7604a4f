"""What each tenant holds now, counted against its limits (``videojobs.tenant_limits``), in the tenants table.

Every count is changed by conditional writes, so concurrent requests cannot pass a limit together, and retries
cannot count twice:

- ``pending``: the tenant's queued and processing jobs, one marker item per job (``pending#<job id>``, with its
  creation epoch) and a counter (``pending``), written together in one transaction (``JobSlots``): the count
  cannot pass the limit under concurrency, a retried reservation or a replayed release changes nothing, and each
  write stays one small item however many jobs the tenant has. A job is released when its status becomes
  terminal (the notify function sees every such change on the jobs table's stream). Markers whose job is
  finished or was never stored (a submit that died between its reservation and the job) are pruned before a
  tenant is refused, at most once a minute.
- ``uploads#YYYY-MM-DD``: bytes declared by ``POST /uploads`` on that UTC day (an atomic ``ADD``); the item
  expires two days later.
- ``streams``: open SSE long polls and WebSocket connections, a set of ``<expiry epoch>@<lease id>`` under an
  optimistic version. A lease whose holder vanished without releasing it (a killed long poll, a lost
  ``$disconnect``) stops counting at its expiry, so a dropped connection never holds a slot for good.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from videojobs.errors import LimitReached
from videojobs.job_store import TRANSACTION_RETRY_BASE_SECONDS, WriteContention
from videojobs.models import TERMINAL_STATUSES, utcnow

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

PENDING_RECORD = "pending"
STREAMS_RECORD = "streams"
UPLOADS_RECORD_PREFIX = "uploads#"
PRUNE_EVERY = timedelta(minutes=1)
ORPHAN_AFTER = timedelta(minutes=5)
"""A reservation without its job after this long is from a submit that died (a submit lasts 29 s at most)."""
PENDING_RETRY_AFTER_SECONDS = 30
"""When a tenant over ``max_pending_jobs`` may try again: no one knows when its next job will end."""
STREAM_ATTEMPTS = 8
"""Compare-and-set attempts of one stream acquire or release before it gives up (contention only)."""
PENDING_USAGE = "you have {current} jobs queued or processing"
STREAMS_USAGE = "you have {current} event streams open (SSE long polls and WebSocket connections)"


def upload_usage(size_bytes: int) -> str:
    return "{current} bytes declared by uploads today (UTC), and this one declares " + f"{size_bytes}"


BATCH_GET_LIMIT = 100
SLOT_ATTEMPTS = 12
"""Transactions of one take or release before it gives up (only other transactions on the counter cancel it)."""
SLOT_RETRY_CAP_SECONDS = 1.0


def _condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _key(tenant_id: str, record: str) -> dict[str, Any]:
    return {"tenant_id": {"S": tenant_id}, "record": {"S": record}}


class JobSlots:
    """A tenant's jobs of one kind (``kind``: pending, active) as one small marker item per job (record
    ``<kind>#<job id>``) and one small counter item (record ``<kind>``), changed together in one transaction: a
    job is counted when its marker is put (if absent) and the counter is below the limit, and uncounted when its
    marker is deleted (if present). Every write is the size of one marker or one counter whatever the tenant's
    job count (a set in one item cost write units for the whole set on every change: README "Capacity"), and a
    retried take or release changes nothing, since the marker says whether the job is counted."""

    def __init__(self, client: DynamoDBClient, table: str, kind: str):
        self._client = client
        self._table = table
        self._kind = kind

    def counter_key(self, tenant_id: str) -> dict[str, Any]:
        return _key(tenant_id, self._kind)

    def marker_key(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        return _key(tenant_id, f"{self._kind}#{job_id}")

    def take_items(
        self, tenant_id: str, job_id: str, limit: int, attributes: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], ...]:
        """The transaction items that count the job: its marker (refused if present), the counter (refused at
        ``limit``)."""
        return (
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {**self.marker_key(tenant_id, job_id), **(attributes or {})},
                    "ConditionExpression": "attribute_not_exists(#record)",
                    "ExpressionAttributeNames": {"#record": "record"},
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": self.counter_key(tenant_id),
                    "UpdateExpression": "ADD #count :one",
                    "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
                    "ExpressionAttributeNames": {"#count": "count"},
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
                }
            },
        )

    def keep_items(self, tenant_id: str, job_id: str) -> tuple[dict[str, Any], ...]:
        """The transaction item that checks the job is counted already (a reclaim keeps its slot)."""
        return (
            {
                "ConditionCheck": {
                    "TableName": self._table,
                    "Key": self.marker_key(tenant_id, job_id),
                    "ConditionExpression": "attribute_exists(#record)",
                    "ExpressionAttributeNames": {"#record": "record"},
                }
            },
        )

    def take(self, tenant_id: str, job_id: str, limit: int, attributes: dict[str, Any] | None = None) -> int | None:
        """Count the job: None when it is counted (now, or by an earlier try), else the count that refused it."""
        for attempt in range(SLOT_ATTEMPTS):
            reasons = self._transact(self.take_items(tenant_id, job_id, limit, attributes))
            if reasons is None or reasons[0] == "ConditionalCheckFailed":
                return None
            if reasons[1] == "ConditionalCheckFailed":
                return self.count(tenant_id)
            _pause(attempt)  # another take or release of this tenant is in flight
        raise WriteContention(f"the tenant's {self._kind} count kept conflicting")

    def release(self, tenant_id: str, *job_ids: str) -> None:
        """Stop counting the jobs (idempotent: a job without its marker changes nothing)."""
        for job_id in job_ids:
            for attempt in range(SLOT_ATTEMPTS):
                reasons = self._transact(
                    (
                        {
                            "Delete": {
                                "TableName": self._table,
                                "Key": self.marker_key(tenant_id, job_id),
                                "ConditionExpression": "attribute_exists(#record)",
                                "ExpressionAttributeNames": {"#record": "record"},
                            }
                        },
                        {
                            "Update": {
                                "TableName": self._table,
                                "Key": self.counter_key(tenant_id),
                                "UpdateExpression": "ADD #count :minus_one",
                                "ExpressionAttributeNames": {"#count": "count"},
                                "ExpressionAttributeValues": {":minus_one": {"N": "-1"}},
                            }
                        },
                    )
                )
                if reasons is None or reasons[0] == "ConditionalCheckFailed":
                    break
                _pause(attempt)
            else:
                raise WriteContention(f"the tenant's {self._kind} count kept conflicting")

    def counter(self, tenant_id: str) -> dict[str, Any]:
        """The counter item (empty when the tenant never had a job counted)."""
        return self._client.get_item(TableName=self._table, Key=self.counter_key(tenant_id), ConsistentRead=True).get(
            "Item", {}
        )

    def count(self, tenant_id: str) -> int:
        return int(self.counter(tenant_id).get("count", {}).get("N", "0"))

    def markers(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every marker of the tenant (a query of its records by prefix: only to heal a full count, or in tests)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant_id = :tenant AND begins_with(#record, :prefix)",
            "ExpressionAttributeNames": {"#record": "record"},
            "ExpressionAttributeValues": {":tenant": {"S": tenant_id}, ":prefix": {"S": f"{self._kind}#"}},
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            page = self._client.query(**request)
            found.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def job_ids(self, tenant_id: str) -> set[str]:
        return {marker["record"]["S"].partition("#")[2] for marker in self.markers(tenant_id)}

    def _transact(self, items: tuple[dict[str, Any], ...]) -> list[str | None] | None:
        """None when written, else each item's cancellation reason."""
        try:
            self._client.transact_write_items(TransactItems=list(items))  # type: ignore[arg-type]
            return None
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            return [reasons[index].get("Code") if index < len(reasons) else None for index in range(len(items))]


def _pause(attempt: int) -> None:
    """Full jitter, doubling, capped: DynamoDB cancels a transaction on an item another one is writing."""
    time.sleep(random.uniform(0, min(SLOT_RETRY_CAP_SECONDS, TRANSACTION_RETRY_BASE_SECONDS * 2**attempt)))


class PendingJobs:
    """A tenant's queued and processing jobs, counted at ``POST /jobs`` and released at each terminal status."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        jobs_table: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """``jobs_table``: where ``reserve`` checks the pending jobs before refusing (None: it never prunes)."""
        self._client = client
        self._table = table
        self._jobs_table = jobs_table
        self._clock = clock
        self.slots = JobSlots(client, table, PENDING_RECORD)

    def reserve(self, tenant_id: str, job_id: str, created_at: datetime, maximum: int) -> None:
        """Count the job, or raise ``LimitReached`` when the tenant already has ``maximum`` pending."""
        created = {"created": {"N": str(int(created_at.timestamp()))}}
        refused = self.slots.take(tenant_id, job_id, maximum, created)
        if refused is not None and self._prune(tenant_id):
            refused = self.slots.take(tenant_id, job_id, maximum, created)
        if refused is not None:
            raise LimitReached("max_pending_jobs", refused, maximum, PENDING_RETRY_AFTER_SECONDS, PENDING_USAGE)

    def release(self, tenant_id: str, job_id: str) -> None:
        """Stop counting the job (idempotent: a replayed stream record removes nothing more)."""
        self.slots.release(tenant_id, job_id)

    def count(self, tenant_id: str) -> int:
        return self.slots.count(tenant_id)

    def _prune(self, tenant_id: str) -> bool:
        """Drop the markers of jobs that ended or never existed; True when some were dropped. At most once per
        ``PRUNE_EVERY`` per tenant (it reads every pending job), claimed with a conditional write."""
        now = self._clock()
        pruned_at = float(self.slots.counter(tenant_id).get("pruned_at", {}).get("N", "0"))
        if self._jobs_table is None or now - pruned_at < PRUNE_EVERY.total_seconds():
            return False
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self.slots.counter_key(tenant_id),
                UpdateExpression="SET pruned_at = :now",
                ConditionExpression="attribute_not_exists(pruned_at) OR pruned_at = :seen",
                ExpressionAttributeValues={":now": {"N": str(now)}, ":seen": {"N": str(pruned_at)}},
            )
        except ClientError as error:
            # Another request is pruning (or, for a moment, counting: a transaction holds the counter).
            if error.response["Error"]["Code"] in ("ConditionalCheckFailedException", "TransactionConflictException"):
                return False
            raise
        created = {
            marker["record"]["S"].partition("#")[2]: float(marker.get("created", {}).get("N", "0"))
            for marker in self.slots.markers(tenant_id)
        }
        statuses = self._statuses(self._jobs_table, created)
        stale = [
            job_id
            for job_id, created_at in created.items()
            if statuses.get(job_id) in TERMINAL_STATUSES
            or (job_id not in statuses and now - created_at > ORPHAN_AFTER.total_seconds())
        ]
        self.slots.release(tenant_id, *stale)
        return bool(stale)

    def _statuses(self, jobs_table: str, job_ids: Iterable[str]) -> dict[str, str]:
        ids = list(job_ids)
        found: dict[str, str] = {}
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                jobs_table: {
                    "Keys": [{"id": {"S": job_id}} for job_id in ids[start : start + BATCH_GET_LIMIT]],
                    "ProjectionExpression": "id, #status",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ConsistentRead": True,
                }
            }
            while request:
                page = self._client.batch_get_item(RequestItems=request)
                for item in page["Responses"].get(jobs_table, []):
                    found[item["id"]["S"]] = item["status"]["S"]
                request = dict(page.get("UnprocessedKeys") or {})
        return found


class DailyUploadBytes:
    """Bytes a tenant declared for upload per UTC day."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def reserve(self, tenant_id: str, size_bytes: int, maximum: int, now: datetime | None = None) -> None:
        """Count ``size_bytes`` against today's allowance, or raise ``LimitReached`` (nothing counted)."""
        now = now or utcnow()
        day = now.date()
        tomorrow = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
        retry_after = math.ceil((tomorrow - now).total_seconds())
        if size_bytes > maximum:  # never fits, whatever was uploaded today
            raise LimitReached(
                "max_upload_bytes_per_day", self.used(tenant_id, now), maximum, retry_after, upload_usage(size_bytes)
            )
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(tenant_id, UPLOADS_RECORD_PREFIX + day.isoformat()),
                UpdateExpression="ADD #bytes :size SET expires_at = :expires",
                ConditionExpression="attribute_not_exists(#bytes) OR #bytes <= :room",
                ExpressionAttributeNames={"#bytes": "bytes"},
                ExpressionAttributeValues={
                    ":size": {"N": str(size_bytes)},
                    ":room": {"N": str(maximum - size_bytes)},
                    ":expires": {"N": str(int((tomorrow + timedelta(days=2)).timestamp()))},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            old: dict[str, Any] = error.response.get("Item", {})  # type: ignore[assignment]
            used = int(old.get("bytes", {}).get("N", "0"))
            raise LimitReached(
                "max_upload_bytes_per_day", used, maximum, retry_after, upload_usage(size_bytes)
            ) from error

    def used(self, tenant_id: str, now: datetime | None = None) -> int:
        day = (now or utcnow()).date()
        item = self._client.get_item(
            TableName=self._table, Key=_key(tenant_id, UPLOADS_RECORD_PREFIX + day.isoformat()), ConsistentRead=True
        ).get("Item", {})
        return int(item.get("bytes", {}).get("N", "0"))


@dataclass(frozen=True)
class StreamLease:
    tenant_id: str
    lease_id: str


class OpenStreams:
    """A tenant's open SSE long polls and WebSocket connections: leases that expire on their own."""

    def __init__(self, client: DynamoDBClient, table: str, clock: Callable[[], float] = time.time):
        self._client = client
        self._table = table
        self._clock = clock

    def acquire(self, tenant_id: str, lease_id: str, maximum: int, ttl_seconds: float) -> StreamLease:
        """Hold one of the tenant's ``maximum`` streams for at most ``ttl_seconds``, or raise ``LimitReached``
        (``Retry-After``: until the first lease runs out)."""
        for attempt in range(STREAM_ATTEMPTS):
            now = self._clock()
            leases, version = self._read(tenant_id)
            live = {member for member in leases if _expiry(member) > now and not member.endswith(f"@{lease_id}")}
            if len(live) >= maximum:
                first_end = min(_expiry(member) for member in live) if live else now
                raise LimitReached("max_open_streams", len(live), maximum, math.ceil(first_end - now), STREAMS_USAGE)
            kept = live | {f"{math.ceil(now + ttl_seconds)}@{lease_id}"}
            try:
                self._write(tenant_id, kept, version)
                return StreamLease(tenant_id, lease_id)
            except ClientError as error:
                if not _condition_failed(error):
                    raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))  # another acquire or release went first
        raise LimitReached("max_open_streams", maximum, maximum, 1, STREAMS_USAGE)

    def release(self, lease: StreamLease) -> None:
        """Give the stream back (idempotent)."""
        for attempt in range(STREAM_ATTEMPTS):
            leases, version = self._read(lease.tenant_id)
            mine = {member for member in leases if member.endswith(f"@{lease.lease_id}")}
            if not mine:
                return
            try:
                self._write(lease.tenant_id, leases - mine, version)
                return
            except ClientError as error:
                if not _condition_failed(error):
                    raise
            time.sleep(random.uniform(0, 0.01 * 2**attempt))

    def count(self, tenant_id: str) -> int:
        now = self._clock()
        return sum(1 for member in self._read(tenant_id)[0] if _expiry(member) > now)

    def _read(self, tenant_id: str) -> tuple[set[str], int]:
        item = self._client.get_item(
            TableName=self._table, Key=_key(tenant_id, STREAMS_RECORD), ConsistentRead=True
        ).get("Item", {})
        return set(item.get("leases", {}).get("SS", [])), int(item.get("version", {}).get("N", "0"))

    def _write(self, tenant_id: str, leases: set[str], version: int) -> None:
        # Compare-and-set on the version: the set is replaced whole (expired leases dropped on the way).
        values: dict[str, Any] = {":read": {"N": str(version)}, ":next": {"N": str(version + 1)}}
        if leases:
            update = "SET leases = :leases, version = :next"
            values[":leases"] = {"SS": sorted(leases)}
        else:
            update = "REMOVE leases SET version = :next"
        self._client.update_item(
            TableName=self._table,
            Key=_key(tenant_id, STREAMS_RECORD),
            UpdateExpression=update,
            ConditionExpression="attribute_not_exists(version) OR version = :read",
            ExpressionAttributeValues=values,
        )


def _expiry(member: str) -> float:
    return float(member.split("@", 1)[0])
