"""DynamoDB adapters of the notifications: the event log, WebSocket connections and tickets, webhook secrets
and the webhook delivery ledger. Every key is a string (sort keys of numbers are zero-padded)."""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

from videojobs.job_events import parse_event, to_json
from videojobs.job_store import from_item, to_item
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
    """Each job's events by version: what SSE serves and a WebSocket subscriber catches up from."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def append(self, job_id: str, event: JobEvent) -> bool:
        """Store the event once: a replayed stream record finds it there (False) and changes nothing."""
        item = to_item(
            {
                "job_id": job_id,
                "seq": _version_key(event.version),
                "type": event.type.value,
                "event": to_json(event),
                "expires_at": _epoch(utcnow() + EVENT_RETENTION),
            }
        )
        try:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(seq)")
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

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

    @property
    def attempts_total(self) -> int:
        return len(self.attempts) + (self.earlier_attempts.count if self.earlier_attempts else 0)


class RedeliveredTooSoon(Exception):
    """A manual redelivery came before the delivery's interval was over."""

    def __init__(self, retry_after_seconds: int):
        super().__init__(f"retry in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class DeliveryLedger:
    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

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
        }
        try:
            self._client.put_item(
                TableName=self._table, Item=to_item(data), ConditionExpression="attribute_not_exists(delivery_id)"
            )
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise
        return True

    def get(self, job_id: str, delivery_id: str) -> DeliveryRecord | None:
        item = self._client.get_item(
            TableName=self._table, Key=self._key(job_id, delivery_id), ConsistentRead=True
        ).get("Item")
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
            current = self.get(record.job_id, record.delivery_id)
            if current is not None and current.redelivered_at:
                due = datetime.fromisoformat(current.redelivered_at) + min_interval
                raise RedeliveredTooSoon(max(1, math.ceil((due - now).total_seconds())))
        found = self.get(record.job_id, record.delivery_id)
        assert found is not None
        return found

    def _update(self, record: DeliveryRecord, expression: str, values: dict[str, Any], condition: str = "") -> bool:
        serialized = to_item(values)
        names = {"#status": "status", "#sequence": "sequence", "#count": "count"}
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": self._key(record.job_id, record.delivery_id),
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

    @staticmethod
    def _key(job_id: str, delivery_id: str) -> dict[str, Any]:
        return {"job_id": {"S": job_id}, "delivery_id": {"S": delivery_id}}

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
        )
