"""DynamoDB adapters of the notifications: the event log, WebSocket connections and tickets, webhook secrets
and the webhook delivery ledger. Every key is a string (sort keys of numbers are zero-padded)."""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

from videojobs.job_events import parse_event, to_json
from videojobs.job_store import (
    TRANSACTION_ATTEMPTS,
    TRANSACTION_RETRY_BASE_SECONDS,
    WriteContention,
    from_item,
    to_item,
)
from videojobs.models import JobEvent, isoformat, utcnow
from videojobs.webhooks import (
    MAX_ATTEMPTS_KEPT,
    AttemptSummary,
    DeliveryAttempt,
    DeliveryStatus,
    new_secret,
)

EVENT_RETENTION = timedelta(days=7)
CONNECTION_TTL = timedelta(hours=2)  # API Gateway closes a WebSocket after 2 h anyway
DELIVERY_RETENTION = timedelta(days=30)
SECRET_OVERLAP = timedelta(hours=24)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _version_key(version: int) -> str:
    return f"{version:012d}"


def _at_key(timestamp: str, job_id: str, version: int) -> str:
    """The event log's time order within a tenant: the event's time (normalized to ``isoformat``), then job."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return f"{isoformat(moment)}#{job_id}#{_version_key(version)}"


def _condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _query_all(client: DynamoDBClient, **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.query(**request)
        items += [from_item(item) for item in page.get("Items", [])]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class EventLog:
    """Each job's events by version: what SSE serves and a WebSocket subscriber catches up from, and (by
    tenant and time) what a webhook endpoint's replay resends. Kept ``retention`` long (DynamoDB TTL)."""

    def __init__(self, client: DynamoDBClient, table: str, retention: timedelta = EVENT_RETENTION):
        self._client = client
        self._table = table
        self.retention = retention

    def append(self, job_id: str, event: JobEvent, tenant_id: str | None = None) -> bool:
        """Store the event once: a replayed stream record finds it there (False) and changes nothing."""
        item = to_item(
            {
                "job_id": job_id,
                "seq": _version_key(event.version),
                "type": event.type.value,
                "event": to_json(event),
                "tenant_id": tenant_id,
                "at_key": _at_key(event.timestamp, job_id, event.version) if tenant_id else None,
                "expires_at": _epoch(utcnow() + self.retention),
            }
        )
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(seq)")
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def published(self, job_id: str, version: int) -> bool:
        """Whether the event was put on the event bus already (a replayed stream record need not put it again)."""
        item = self._client.get_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}, "seq": {"S": _version_key(version)}},
            ConsistentRead=True,
            ProjectionExpression="published",
        ).get("Item")
        return bool(item and from_item(item).get("published"))

    def mark_published(self, job_id: str, version: int) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"job_id": {"S": job_id}, "seq": {"S": _version_key(version)}},
            UpdateExpression="SET published = :yes",
            ConditionExpression="attribute_exists(seq)",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    def oldest_available(self, now: datetime) -> datetime:
        """The oldest moment whose events are still kept."""
        return now - self.retention

    def for_tenant(self, tenant_id: str, since: datetime, until: datetime, limit: int) -> list[tuple[str, str]]:
        """(job id, event JSON) of the tenant's events in ``[since, until]``, oldest first, at most ``limit``
        + 1 of them (so a caller can tell that there were more). Events past the retention are left out, even
        before DynamoDB's TTL deletes them."""
        since = max(since, self.oldest_available(utcnow()))
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "by_tenant",
            "KeyConditionExpression": "tenant_id = :tenant AND at_key BETWEEN :since AND :until",
            "ExpressionAttributeValues": {
                ":tenant": {"S": tenant_id},
                ":since": {"S": isoformat(since)},
                # "#" sorts before any key's job part, "~" after: the bound includes every event at ``until``.
                ":until": {"S": isoformat(until) + "~"},
            },
        }
        found: list[tuple[str, str]] = []
        while len(found) <= limit:
            page = self._client.query(**request)
            found += [(item["job_id"], item["event"]) for item in map(from_item, page.get("Items", []))]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[: limit + 1]

    def after(self, job_id: str, version: int, limit: int | None = None) -> list[JobEvent]:
        """The job's events newer than ``version``, oldest first (a strongly consistent read)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "ConsistentRead": True,
            "KeyConditionExpression": "job_id = :job AND seq > :seq",
            "ExpressionAttributeValues": {":job": {"S": job_id}, ":seq": {"S": _version_key(max(version, 0))}},
        }
        if limit is not None:
            request["Limit"] = limit
            items = [from_item(item) for item in self._client.query(**request).get("Items", [])]
        else:
            items = _query_all(self._client, **request)
        return [parse_event(item["event"]) for item in items]


class ConnectionStore:
    """Open WebSocket connections, by job (what notify pushes to) and by connection (for ``$disconnect``)."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def add(self, job_id: str, connection_id: str, tenant_id: str) -> None:
        now = utcnow()
        self._client.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "job_id": job_id,
                    "connection_id": connection_id,
                    "tenant_id": tenant_id,
                    "connected_at": isoformat(now),
                    "expires_at": _epoch(now + CONNECTION_TTL),
                }
            ),
        )

    def for_job(self, job_id: str) -> list[str]:
        """Connection ids subscribed to the job (TTL deletes lazily: expired ones are left out)."""
        items = _query_all(
            self._client,
            TableName=self._table,
            ConsistentRead=True,
            KeyConditionExpression="job_id = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
        )
        now = _epoch(utcnow())
        return [item["connection_id"] for item in items if item.get("expires_at", now + 1) > now]

    def find(self, connection_id: str) -> tuple[str, str] | None:
        """(job id, tenant id) of an open connection."""
        items = self._client.query(
            TableName=self._table,
            IndexName="by_connection",
            KeyConditionExpression="connection_id = :id",
            ExpressionAttributeValues={":id": {"S": connection_id}},
        ).get("Items", [])
        if not items:
            return None
        record = from_item(items[0])
        return record["job_id"], record["tenant_id"]

    def remove(self, job_id: str, connection_id: str) -> None:
        self._client.delete_item(
            TableName=self._table, Key={"job_id": {"S": job_id}, "connection_id": {"S": connection_id}}
        )


@dataclass(frozen=True)
class Ticket:
    ticket: str
    expires_at: datetime


class TicketStore:
    """Short-lived, single-use tickets that open a WebSocket for one job (browsers cannot send headers on a
    WebSocket handshake, so the API key cannot be used there). Only a digest of each ticket is stored."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def issue(self, job_id: str, tenant_id: str, ttl: timedelta) -> Ticket:
        ticket = "wst_" + secrets.token_urlsafe(32)
        expires_at = utcnow() + ttl
        self._client.put_item(
            TableName=self._table,
            Item=to_item(
                {
                    "ticket_hash": _digest(ticket),
                    "job_id": job_id,
                    "tenant_id": tenant_id,
                    "expires_at": _epoch(expires_at),
                }
            ),
        )
        return Ticket(ticket, expires_at)

    def redeem(self, ticket: str) -> tuple[str, str] | None:
        """(job id, tenant id) of a valid ticket, which is used up by this; None if unknown, used or expired."""
        try:
            old = self._client.delete_item(
                TableName=self._table,
                Key={"ticket_hash": {"S": _digest(ticket)}},
                ConditionExpression="expires_at > :now",
                ExpressionAttributeValues={":now": {"N": str(_epoch(utcnow()))}},
                ReturnValues="ALL_OLD",
            ).get("Attributes")
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise
        if not old:
            return None
        record = from_item(old)
        return record["job_id"], record["tenant_id"]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class SecretRecord:
    secret: str
    previous: str | None = None
    previous_expires_at: datetime | None = None

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one while its overlap lasts."""
        if self.previous and self.previous_expires_at and self.previous_expires_at > now:
            return [self.secret, self.previous]
        return [self.secret]


class SecretStore:
    """One webhook signing secret per tenant (``whsec_…``). Stored as is: HMAC needs the secret itself; the
    table is encrypted at rest and only the notifications API and the deliverer may read it."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def get_or_create(self, tenant_id: str) -> SecretRecord:
        found = self._get(tenant_id)
        if found is not None:
            return found
        record = SecretRecord(new_secret())
        try:
            self._client.put_item(
                TableName=self._table,
                ConditionExpression="attribute_not_exists(tenant_id)",
                Item=to_item({"tenant_id": tenant_id, "secret": record.secret, "updated_at": isoformat(utcnow())}),
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            return self._get(tenant_id) or record  # another request created it first: use that one
        return record

    def rotate(self, tenant_id: str) -> SecretRecord:
        """A new secret; the old one keeps signing (as a second signature) for 24 hours."""
        while True:
            current = self.get_or_create(tenant_id)
            now = utcnow()
            record = SecretRecord(new_secret(), current.secret, now + SECRET_OVERLAP)
            try:
                self._client.put_item(
                    TableName=self._table,
                    ConditionExpression="secret = :seen",
                    ExpressionAttributeValues={":seen": {"S": current.secret}},
                    Item=to_item(
                        {
                            "tenant_id": tenant_id,
                            "secret": record.secret,
                            "previous": record.previous,
                            "previous_expires_at": isoformat(now + SECRET_OVERLAP),
                            "updated_at": isoformat(now),
                        }
                    ),
                )
                return record
            except ClientError as error:
                if not _condition_failed(error):
                    raise  # a concurrent rotation won: rotate from its secret

    def _get(self, tenant_id: str) -> SecretRecord | None:
        item = self._client.get_item(
            TableName=self._table, Key={"tenant_id": {"S": tenant_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        data = from_item(item)
        expires = data.get("previous_expires_at")
        return SecretRecord(data["secret"], data.get("previous"), datetime.fromisoformat(expires) if expires else None)


@dataclass(frozen=True)
class DeliveryRecord:
    """A ledger entry: one event for one webhook URL, with its signed body and every attempt so far."""

    job_id: str
    delivery_id: str
    tenant_id: str
    event_type: str
    version: int
    url: str
    body: str
    status: DeliveryStatus
    created_at: str
    attempts: list[DeliveryAttempt]
    sequence: int = 0
    """Bumped by a manual redelivery; the retry schedule restarts with each sequence."""
    sequence_attempts: int = 0
    next_attempt_at: str | None = None
    queued: bool = False
    """Its first message is on the delivery queue (a replayed fan-out need not send another)."""
    earlier_attempts: AttemptSummary | None = None
    """Attempts no longer listed in ``attempts``."""
    redelivered_at: str | None = None
    endpoint_id: str | None = None
    """Set in an endpoint's ledger (which is keyed by it); ``job_id`` is then "" for an event of no job."""

    @property
    def attempts_total(self) -> int:
        return len(self.attempts) + (self.earlier_attempts.count if self.earlier_attempts else 0)


class RedeliveredTooSoon(Exception):
    """A manual redelivery came before the delivery's interval was over."""

    def __init__(self, retry_after_seconds: int):
        super().__init__(f"retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class DeliveryLedger:
    """Deliveries by job (a job's ``webhook_url``) or, with ``by_endpoint``, by webhook endpoint: the same
    records and attempts, in a table keyed by the endpoint (with a time index, for its paged listing)."""

    def __init__(self, client: DynamoDBClient, table: str, *, by_endpoint: bool = False):
        self._client = client
        self._table = table
        self._by_endpoint = by_endpoint
        self._partition = "endpoint_id" if by_endpoint else "job_id"

    def _owner(self, record: DeliveryRecord) -> str:
        owner = record.endpoint_id if self._by_endpoint else record.job_id
        assert owner is not None, "an endpoint ledger's records name their endpoint"
        return owner

    def create(self, record: DeliveryRecord) -> bool:
        """Store a new delivery; False when it exists already (the same event fanned out again)."""
        data = {
            "job_id": record.job_id,
            "delivery_id": record.delivery_id,
            "tenant_id": record.tenant_id,
            "event_type": record.event_type,
            "version": record.version,
            "url": record.url,
            "body": record.body,
            "status": record.status.value,
            "created_at": record.created_at,
            "attempts": [],
            "sequence": record.sequence,
            "sequence_attempts": 0,
            "expires_at": _epoch(utcnow() + DELIVERY_RETENTION),
            "endpoint_id": record.endpoint_id,
        }
        if self._by_endpoint:
            data["created_key"] = f"{record.created_at}#{record.delivery_id}"
        try:
            self._client.put_item(
                TableName=self._table, Item=to_item(data), ConditionExpression="attribute_not_exists(delivery_id)"
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def get(self, owner: str, delivery_id: str) -> DeliveryRecord | None:
        """A delivery of a job, or of an endpoint in an endpoint ledger."""
        item = self._client.get_item(TableName=self._table, Key=self._key(owner, delivery_id), ConsistentRead=True).get(
            "Item"
        )
        return self._record(from_item(item)) if item else None

    def for_job(self, job_id: str) -> list[DeliveryRecord]:
        items = _query_all(
            self._client,
            TableName=self._table,
            ConsistentRead=True,
            KeyConditionExpression="job_id = :job",
            ExpressionAttributeValues={":job": {"S": job_id}},
        )
        return sorted((self._record(item) for item in items), key=lambda record: record.version)

    def page(
        self, endpoint_id: str, *, status: DeliveryStatus | None, limit: int, after: dict[str, str] | None
    ) -> tuple[list[DeliveryRecord], dict[str, str] | None]:
        """An endpoint's deliveries, newest first, optionally of one status: at most ``limit``, from after the
        key ``after``; also the key to continue from (None at the end)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "by_time",
            "KeyConditionExpression": "endpoint_id = :endpoint",
            "ExpressionAttributeValues": {":endpoint": {"S": endpoint_id}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if status is not None:
            request["FilterExpression"] = "#status = :status"
            request["ExpressionAttributeNames"] = {"#status": "status"}
            request["ExpressionAttributeValues"][":status"] = {"S": status.value}
        if after is not None:
            request["ExclusiveStartKey"] = {name: {"S": value} for name, value in after.items()}
        found: list[dict[str, Any]] = []
        while True:
            response = self._client.query(**request)
            found += [from_item(item) for item in response.get("Items", [])]
            if len(found) >= limit or "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        more = len(found) > limit or (len(found) == limit and "LastEvaluatedKey" in response)
        found = found[:limit]
        last = found[-1] if found and more else None
        cursor = {key: last[key] for key in ("endpoint_id", "delivery_id", "created_key")} if last else None
        return [self._record(item) for item in found], cursor

    def record_attempt(
        self, record: DeliveryRecord, attempt: DeliveryAttempt, status: DeliveryStatus, next_attempt_at: str | None
    ) -> bool:
        """Add an attempt and set the outcome, if no redelivery started a new sequence (and no other attempt
        was recorded) since ``record`` was read. Only the latest ``MAX_ATTEMPTS_KEPT`` attempts stay listed;
        older ones are counted in ``earlier_attempts``."""
        attempts = [*record.attempts, attempt]
        dropped, kept = attempts[:-MAX_ATTEMPTS_KEPT], attempts[-MAX_ATTEMPTS_KEPT:]
        earlier = record.earlier_attempts
        if dropped:
            earlier = AttemptSummary(
                count=(earlier.count if earlier else 0) + len(dropped),
                first_at=earlier.first_at if earlier else dropped[0].at,
                last_at=dropped[-1].at,
            )
        values: dict[str, Any] = {
            ":attempts": [item.model_dump(mode="json") for item in kept],
            ":status": status.value,
            ":sequence": record.sequence,
            ":one": 1,
            ":seen": len(record.attempts),
        }
        expression = "SET attempts = :attempts, #status = :status, sequence_attempts = sequence_attempts + :one"
        if earlier is not None:
            expression += ", earlier_attempts = :earlier"
            values[":earlier"] = earlier.model_dump(mode="json")
        if next_attempt_at is None:
            expression += " REMOVE next_attempt_at"
        else:
            expression += ", next_attempt_at = :next"
            values[":next"] = next_attempt_at
        # The list is rewritten whole: it must be the one read, or a concurrent attempt's entry would be lost.
        condition = "#sequence = :sequence AND size(attempts) = :seen"
        if earlier is not None or record.earlier_attempts is not None:
            values[":earlier_seen"] = record.earlier_attempts.count if record.earlier_attempts else 0
            condition += (
                " AND (earlier_attempts.#count = :earlier_seen"
                " OR (attribute_not_exists(earlier_attempts) AND :earlier_seen = :zero))"
            )
            values[":zero"] = 0
        return self._update(record, expression, values, condition=condition)

    def mark_queued(self, record: DeliveryRecord) -> None:
        self._update(record, "SET queued = :yes", {":yes": True})

    def restart(self, record: DeliveryRecord, min_interval: timedelta = timedelta(0)) -> DeliveryRecord:
        """A manual redelivery: a new sequence of attempts with the same ``webhook-id`` and body. Raises
        ``RedeliveredTooSoon`` within ``min_interval`` of the previous one."""
        now = utcnow()
        restarted = self._update(
            record,
            "SET #sequence = #sequence + :one, sequence_attempts = :zero, #status = :pending, "
            "redelivered_at = :now REMOVE next_attempt_at",
            {
                ":one": 1,
                ":zero": 0,
                ":pending": DeliveryStatus.PENDING.value,
                ":now": isoformat(now),
                ":allowed": isoformat(now - min_interval),
            },
            condition="(attribute_not_exists(redelivered_at) OR redelivered_at <= :allowed)",
        )
        if not restarted:
            current = self.get(self._owner(record), record.delivery_id)
            if current is not None and current.redelivered_at:
                due = datetime.fromisoformat(current.redelivered_at) + min_interval
                raise RedeliveredTooSoon(max(1, math.ceil((due - now).total_seconds())))
        found = self.get(self._owner(record), record.delivery_id)
        assert found is not None
        return found

    def _update(self, record: DeliveryRecord, expression: str, values: dict[str, Any], condition: str = "") -> bool:
        serialized = to_item(values)
        names = {"#status": "status", "#sequence": "sequence", "#count": "count"}
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(self._owner(record), record.delivery_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(delivery_id)" + (f" AND {condition}" if condition else ""),
            "ExpressionAttributeNames": {k: v for k, v in names.items() if k in expression or k in condition},
            "ExpressionAttributeValues": serialized,
        }
        try:
            self._client.update_item(**request)
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def _key(self, owner: str, delivery_id: str) -> dict[str, Any]:
        return {self._partition: {"S": owner}, "delivery_id": {"S": delivery_id}}

    @staticmethod
    def _record(data: dict[str, Any]) -> DeliveryRecord:
        return DeliveryRecord(
            job_id=data["job_id"],
            delivery_id=data["delivery_id"],
            tenant_id=data["tenant_id"],
            event_type=data["event_type"],
            version=data["version"],
            url=data["url"],
            body=data["body"],
            status=DeliveryStatus(data["status"]),
            created_at=data["created_at"],
            attempts=[DeliveryAttempt.model_validate(item) for item in data.get("attempts", [])],
            sequence=data.get("sequence", 0),
            sequence_attempts=data.get("sequence_attempts", 0),
            next_attempt_at=data.get("next_attempt_at"),
            queued=data.get("queued", False),
            earlier_attempts=AttemptSummary.model_validate(data["earlier_attempts"])
            if data.get("earlier_attempts")
            else None,
            redelivered_at=data.get("redelivered_at"),
            endpoint_id=data.get("endpoint_id"),
        )


@dataclass(frozen=True)
class EndpointRecord:
    """A webhook endpoint as stored: its settings, its secret(s) and whether it is failing."""

    tenant_id: str
    endpoint_id: str
    url: str
    events: list[str]
    description: str | None
    secret: SecretRecord
    created_at: str
    disabled: bool = False
    disabled_reason: str | None = None
    failing_since: str | None = None
    """When the first of the failed attempts since its last success was made; None while it is healthy."""
    disabled_at: str | None = None
    announced: bool = False
    """Its ``endpoint.disabled`` event was sent (to the other endpoints and the bus)."""


class TooManyEndpoints(Exception):
    pass


def _transact_with_retries(client: DynamoDBClient, items: list[dict[str, Any]]) -> list[str | None]:
    """Run the transaction; when DynamoDB cancels it because another transaction holds one of its items
    (``TransactionConflict``: concurrent requests of one tenant all touch its counter item), wait (jittered,
    doubling) and run it again. Returns each item's cancellation reason when a condition failed, an empty
    list on success; ``WriteContention`` when the conflicts go on."""
    for attempt in range(TRANSACTION_ATTEMPTS):
        try:
            client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
            return []
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
            if "TransactionConflict" not in reasons:
                return reasons
        time.sleep(random.uniform(0, TRANSACTION_RETRY_BASE_SECONDS * 2**attempt))
    raise WriteContention("the request kept conflicting with concurrent ones")


class EndpointStore:
    """A tenant's webhook endpoints, keyed (tenant, endpoint): another tenant's id is simply not found. A
    counter item per tenant bounds how many it has: a transaction adds an endpoint and counts it, another
    removes and uncounts it, so the count is always exact (concurrent ones that conflict on the counter are
    retried, then answered 503)."""

    COUNTER = "#count"  # sorts before every "ep_…" id, which a listing asks for by prefix

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def create(
        self, tenant_id: str, endpoint_id: str, url: str, events: list[str], description: str | None, limit: int
    ) -> EndpointRecord:
        """Store a new endpoint with a fresh secret; ``TooManyEndpoints`` when the tenant has ``limit``."""
        record = EndpointRecord(
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            url=url,
            events=events,
            description=description,
            secret=SecretRecord(new_secret()),
            created_at=isoformat(utcnow()),
        )
        item = {
            "tenant_id": tenant_id,
            "endpoint_id": endpoint_id,
            "url": url,
            "events": events,
            "description": description,
            "secret": record.secret.secret,
            "created_at": record.created_at,
            "disabled": False,
        }
        refused = _transact_with_retries(
            self._client,
            [
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": self._key(tenant_id, self.COUNTER),
                        "UpdateExpression": "ADD #count :one",
                        "ConditionExpression": "attribute_not_exists(#count) OR #count < :limit",
                        "ExpressionAttributeNames": {"#count": "count"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":limit": {"N": str(limit)}},
                    }
                },
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": to_item(item),
                        "ConditionExpression": "attribute_not_exists(endpoint_id)",
                    }
                },
            ],
        )
        if refused:
            # The count is at the limit (an id of 128 random bits is never taken).
            raise TooManyEndpoints
        return record

    def get(self, tenant_id: str, endpoint_id: str) -> EndpointRecord | None:
        if not endpoint_id.startswith("ep_"):
            return None
        item = self._client.get_item(
            TableName=self._table, Key=self._key(tenant_id, endpoint_id), ConsistentRead=True
        ).get("Item")
        return self._record(from_item(item)) if item else None

    def for_tenant(self, tenant_id: str) -> list[EndpointRecord]:
        """Every endpoint of the tenant, oldest first."""
        items = _query_all(
            self._client,
            TableName=self._table,
            ConsistentRead=True,
            KeyConditionExpression="tenant_id = :tenant AND begins_with(endpoint_id, :prefix)",
            ExpressionAttributeValues={":tenant": {"S": tenant_id}, ":prefix": {"S": "ep_"}},
        )
        return sorted((self._record(item) for item in items), key=lambda record: record.created_at)

    def update(self, tenant_id: str, endpoint_id: str, changes: dict[str, Any]) -> EndpointRecord | None:
        """Set the given fields (url, events, description, disabled); re-enabling forgets the failures.
        None if there is no such endpoint."""
        values: dict[str, Any] = {}
        sets, removes = [], []
        for name, value in changes.items():
            if value is None:
                removes.append(name)
            else:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        if changes.get("disabled") is False:
            removes += ["disabled_reason", "disabled_at", "failing_since", "announced"]
        elif changes.get("disabled") is True:
            sets.append("disabled_reason = :manual")
            values[":manual"] = "manual"
        expression = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        if not expression.strip():
            return self.get(tenant_id, endpoint_id)
        return self._update(tenant_id, endpoint_id, expression.strip(), values)

    def delete(self, tenant_id: str, endpoint_id: str) -> bool:
        """Remove the endpoint and uncount it; False if there was none."""
        if not endpoint_id.startswith("ep_"):
            return False
        refused = _transact_with_retries(
            self._client,
            [
                {
                    "Delete": {
                        "TableName": self._table,
                        "Key": self._key(tenant_id, endpoint_id),
                        "ConditionExpression": "attribute_exists(endpoint_id)",
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": self._key(tenant_id, self.COUNTER),
                        "UpdateExpression": "ADD #count :minus_one",
                        "ExpressionAttributeNames": {"#count": "count"},
                        "ExpressionAttributeValues": {":minus_one": {"N": "-1"}},
                    }
                },
            ],
        )
        return not refused

    def rotate(self, tenant_id: str, endpoint_id: str) -> EndpointRecord | None:
        """A new secret; the old one keeps signing (as a second signature) for 24 hours."""
        while True:
            current = self.get(tenant_id, endpoint_id)
            if current is None:
                return None
            now = utcnow()
            values = {
                ":secret": new_secret(),
                ":previous": current.secret.secret,
                ":expires": isoformat(now + SECRET_OVERLAP),
                ":seen": current.secret.secret,
            }
            rotated = self._update(
                tenant_id,
                endpoint_id,
                "SET secret = :secret, previous = :previous, previous_expires_at = :expires",
                values,
                condition="secret = :seen",
            )
            if rotated is not None:
                return rotated  # else a concurrent rotation won: rotate from its secret

    def record_success(self, record: EndpointRecord) -> None:
        if record.failing_since is not None:
            self._update(record.tenant_id, record.endpoint_id, "REMOVE failing_since", {})

    def record_failure(self, record: EndpointRecord, now: datetime, window: timedelta) -> EndpointRecord | None:
        """Count a failed attempt. Returns the endpoint if this failure disabled it (only one caller does, so
        one ``endpoint.disabled`` event is sent), else None."""
        updated = self._update(
            record.tenant_id,
            record.endpoint_id,
            "SET failing_since = if_not_exists(failing_since, :now)",
            {":now": isoformat(now)},
        )
        if updated is None or updated.disabled or updated.failing_since is None:
            return None
        if now - datetime.fromisoformat(updated.failing_since) < window:
            return None
        return self._update(
            record.tenant_id,
            record.endpoint_id,
            "SET disabled = :yes, disabled_reason = :failing, disabled_at = :now",
            {
                ":yes": True,
                ":no": False,
                ":failing": "failing",
                ":now": isoformat(now),
                ":since": updated.failing_since,
            },
            condition="disabled = :no AND failing_since = :since",
        )

    def mark_announced(self, record: EndpointRecord) -> None:
        self._update(record.tenant_id, record.endpoint_id, "SET announced = :yes", {":yes": True})

    def _update(
        self, tenant_id: str, endpoint_id: str, expression: str, values: dict[str, Any], condition: str = ""
    ) -> EndpointRecord | None:
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(tenant_id, endpoint_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(endpoint_id)" + (f" AND {condition}" if condition else ""),
            "ReturnValues": "ALL_NEW",
        }
        if values:
            request["ExpressionAttributeValues"] = to_item(values)
        try:
            attributes = self._client.update_item(**request)["Attributes"]
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise
        return self._record(from_item(attributes))

    @staticmethod
    def _key(tenant_id: str, endpoint_id: str) -> dict[str, Any]:
        return {"tenant_id": {"S": tenant_id}, "endpoint_id": {"S": endpoint_id}}

    @staticmethod
    def _record(data: dict[str, Any]) -> EndpointRecord:
        expires = data.get("previous_expires_at")
        return EndpointRecord(
            tenant_id=data["tenant_id"],
            endpoint_id=data["endpoint_id"],
            url=data["url"],
            events=list(data.get("events") or []),
            description=data.get("description"),
            secret=SecretRecord(
                data["secret"], data.get("previous"), datetime.fromisoformat(expires) if expires else None
            ),
            created_at=data["created_at"],
            disabled=bool(data.get("disabled")),
            disabled_reason=data.get("disabled_reason"),
            failing_since=data.get("failing_since"),
            disabled_at=data.get("disabled_at"),
            announced=bool(data.get("announced")),
        )
