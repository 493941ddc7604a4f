"""DynamoDB adapter of the API keys: a key's digest -> its tenant.

The authorizer's whole data layer: it runs before every uncached request, so this module imports the standard
library and botocore only (no pydantic, no Powertools), and ``tests/unit/test_cold_imports.py`` keeps it so.
Key records hold strings and a boolean, which need none of ``job_store``'s number handling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from videojobs.clock import isoformat, utcnow
from videojobs.ids import check_tenant_name

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(record: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in record.items() if value is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


KEY_USE_RECORDED_EVERY = timedelta(hours=1)
"""``last_used_at`` is written at most this often per key (the authorizer runs only on cache misses anyway)."""


@dataclass(frozen=True)
class ApiKeyRecord:
    """What an operator may see of a key: never the key, nor its hash."""

    id: str
    prefix: str | None
    created_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class ApiKeyStore:
    """API keys by their SHA-256 digest -> tenant. A key's public id is ``key_`` and the first 16 hex digits of
    its digest: derived, so keys made before ids existed have one too."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def tenant_for(self, key_hash: str) -> str | None:
        item = self._client.get_item(TableName=self._table, Key={"key_hash": {"S": key_hash}}).get("Item")
        if item is None:
            return None
        record = _from_item(item)
        if record.get("revoked"):
            return None
        self._record_use(key_hash, record.get("last_used_at"))
        tenant: str = record["tenant_id"]
        return tenant

    def add(self, key_hash: str, tenant_id: str, prefix: str | None = None) -> None:
        check_tenant_name(tenant_id)
        item = {"key_hash": key_hash, "tenant_id": tenant_id, "created_at": isoformat(utcnow()), "prefix": prefix}
        self._client.put_item(
            TableName=self._table, Item=_to_item(item), ConditionExpression="attribute_not_exists(key_hash)"
        )

    def list_for_tenant(self, tenant_id: str) -> list[ApiKeyRecord]:
        """Every key of the tenant, oldest first (a scan: an operator's command, not a request path)."""
        items = self._scan("tenant_id = :tenant", {":tenant": {"S": tenant_id}})
        return sorted((self._view(record) for record in items), key=lambda key: (key.created_at or "", key.id))

    def tenants(self) -> set[str]:
        """Every tenant that has a key, revoked or not (a scan: an operator's command, not a request path)."""
        return {item["tenant_id"] for item in self._scan("attribute_exists(tenant_id)", {})}

    def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Mark the key revoked (the authorizer refuses it from now on); None when no key has this id."""
        digest = key_id.removeprefix("key_")
        if not key_id.startswith("key_") or len(digest) != 16:
            return None
        found = self._scan("begins_with(key_hash, :digest)", {":digest": {"S": digest}})
        if not found:
            return None
        now = isoformat(utcnow())
        self._client.update_item(
            TableName=self._table,
            Key={"key_hash": {"S": found[0]["key_hash"]}},
            UpdateExpression="SET revoked = :yes, revoked_at = if_not_exists(revoked_at, :now)",
            ExpressionAttributeValues={":yes": {"BOOL": True}, ":now": {"S": now}},
        )
        return self._view(found[0] | {"revoked_at": found[0].get("revoked_at") or now})

    def _scan(self, condition: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": condition,
        }
        if values:  # DynamoDB refuses an empty map
            request["ExpressionAttributeValues"] = values
        items: list[dict[str, Any]] = []
        while True:
            page = self._client.scan(**request)
            items += [_from_item(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _record_use(self, key_hash: str, last_used_at: str | None) -> None:
        now = utcnow()
        if last_used_at and datetime.fromisoformat(last_used_at) > now - KEY_USE_RECORDED_EVERY:
            return
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"key_hash": {"S": key_hash}},
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression="attribute_exists(key_hash)",
                ExpressionAttributeValues={":now": {"S": isoformat(now)}},
            )
        except ClientError:  # bookkeeping: it must never refuse a valid key
            from videojobs.observability import logger  # only on this rare path: Powertools costs the import

            logger.warning("could not record a key's use", exc_info=True)

    @staticmethod
    def _view(record: dict[str, Any]) -> ApiKeyRecord:
        return ApiKeyRecord(
            id="key_" + record["key_hash"][:16],
            prefix=record.get("prefix"),
            created_at=record.get("created_at"),
            last_used_at=record.get("last_used_at"),
            revoked_at=record.get("revoked_at"),
        )
