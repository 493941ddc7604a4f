"""What each tenant holds now, counted against its limits (``videojobs.tenant_limits``), in the tenants table.

Every count is one item per tenant, changed by single conditional writes, so concurrent requests cannot pass a
limit together, and retries cannot count twice:

- ``pending``: the tenant's queued and processing jobs, a string set of ``<job id>@<created epoch>``. Adding and
  removing a member are idempotent; ``size(jobs) < :limit`` is checked in the same write. A job leaves the set
  when its status becomes terminal (the notify function sees every such change on the jobs table's stream).
  Members whose job is finished or was never stored (a submit that died between its reservation and the job)
  are pruned before a tenant is refused, at most once a minute.
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


def _condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _key(tenant_id: str, record: str) -> dict[str, Any]:
    return {"tenant_id": {"S": tenant_id}, "record": {"S": record}}


def pending_member(job_id: str, created_at: datetime) -> str:
    """A job's member of its tenant's pending set: derived from the job, so whoever ends it can remove it."""
    return f"{job_id}@{int(created_at.timestamp())}"


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

    def reserve(self, tenant_id: str, job_id: str, created_at: datetime, maximum: int) -> None:
        """Count the job, or raise ``LimitReached`` when the tenant already has ``maximum`` pending."""
        member = pending_member(job_id, created_at)
        refused = self._add(tenant_id, member, maximum)
        if refused is not None and self._prune(tenant_id, pruned_at=refused[1]):
            refused = self._add(tenant_id, member, maximum)
        if refused is not None:
            raise LimitReached("max_pending_jobs", refused[0], maximum, PENDING_RETRY_AFTER_SECONDS, PENDING_USAGE)

    def release(self, tenant_id: str, job_id: str, created_at: datetime) -> None:
        """Stop counting the job (idempotent: a replayed stream record removes nothing more)."""
        self._client.update_item(
            TableName=self._table,
            Key=_key(tenant_id, PENDING_RECORD),
            UpdateExpression="DELETE jobs :member",
            ExpressionAttributeValues={":member": {"SS": [pending_member(job_id, created_at)]}},
        )

    def count(self, tenant_id: str) -> int:
        return len(self._members(tenant_id)[0])

    def _add(self, tenant_id: str, member: str, maximum: int) -> tuple[int, float] | None:
        """None when counted, else the count that refused it and when the set was last pruned."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(tenant_id, PENDING_RECORD),
                UpdateExpression="ADD jobs :member",
                # contains(): a retried reservation of the same job is not refused for counting itself.
                ConditionExpression="attribute_not_exists(jobs) OR size(jobs) < :max OR contains(jobs, :id)",
                ExpressionAttributeValues={
                    ":member": {"SS": [member]},
                    ":id": {"S": member},
                    ":max": {"N": str(maximum)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except ClientError as error:
            if not _condition_failed(error):
                raise
            old: dict[str, Any] = error.response.get("Item", {})  # type: ignore[assignment]
            return len(old.get("jobs", {}).get("SS", [])), float(old.get("pruned_at", {}).get("N", "0"))

    def _members(self, tenant_id: str) -> tuple[list[str], float]:
        item = self._client.get_item(
            TableName=self._table, Key=_key(tenant_id, PENDING_RECORD), ConsistentRead=True
        ).get("Item", {})
        return list(item.get("jobs", {}).get("SS", [])), float(item.get("pruned_at", {}).get("N", "0"))

    def _prune(self, tenant_id: str, pruned_at: float) -> bool:
        """Drop members whose job ended or never existed; True when some were dropped. At most once per
        ``PRUNE_EVERY`` per tenant (it reads every pending job), claimed with a conditional write."""
        now = self._clock()
        if self._jobs_table is None or now - pruned_at < PRUNE_EVERY.total_seconds():
            return False
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(tenant_id, PENDING_RECORD),
                UpdateExpression="SET pruned_at = :now",
                ConditionExpression="attribute_not_exists(pruned_at) OR pruned_at = :seen",
                ExpressionAttributeValues={":now": {"N": str(now)}, ":seen": {"N": str(pruned_at)}},
            )
        except ClientError as error:
            if _condition_failed(error):
                return False  # another request is pruning
            raise
        members, _ = self._members(tenant_id)
        statuses = self._statuses(self._jobs_table, (member.split("@", 1)[0] for member in members))
        stale = []
        for member in members:
            job_id, _, created = member.partition("@")
            status = statuses.get(job_id)
            orphan = status is None and now - float(created or 0) > ORPHAN_AFTER.total_seconds()
            if orphan or status in TERMINAL_STATUSES:
                stale.append(member)
        if stale:
            self._client.update_item(
                TableName=self._table,
                Key=_key(tenant_id, PENDING_RECORD),
                UpdateExpression="DELETE jobs :stale",
                ExpressionAttributeValues={":stale": {"SS": stale}},
            )
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
