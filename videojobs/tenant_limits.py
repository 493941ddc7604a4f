"""Per-tenant limits: the defaults in force (settings, which the CDK prop ``tenant_limits`` sets) and each
tenant's overrides, stored in the tenants table under the record ``limits``.

``limits_for`` reads with ``ConsistentRead``, so an override set by ``videojobs admin set-limits`` holds from the
tenant's next request or claim on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from videojobs.ids import check_tenant_name
from videojobs.settings import MAX_PENDING_JOBS_LIMIT, TenantLimitSettings

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

LIMITS_RECORD = "limits"
"""The sort key of a tenant's overrides in the tenants table (its counters are other records of the tenant)."""


class TenantLimits(BaseModel):
    """The limits in force for one tenant (``show-limits`` prints exactly these keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_active_jobs: Annotated[int, Field(ge=1)]
    """Jobs processing at once (enforced when a worker claims a job)."""
    max_pending_jobs: Annotated[int, Field(ge=1, le=MAX_PENDING_JOBS_LIMIT)]
    """Jobs queued or processing; ``POST /jobs`` over it answers 429 ``quota_exceeded``."""
    max_upload_bytes_per_day: Annotated[int, Field(ge=1)]
    """Bytes declared by ``POST /uploads`` per UTC day; over it, 429 ``quota_exceeded``."""
    requests_per_second: Annotated[float, Field(gt=0)]
    """Steady request rate (API Gateway's usage plan throttle); over it plus ``burst``, 429 ``rate_limited``."""
    burst: Annotated[int, Field(ge=1)]
    max_open_streams: Annotated[int, Field(ge=1)]
    """SSE long polls and WebSocket connections open at once; over it, 429 ``too_many_streams``."""

    @classmethod
    def defaults(cls, settings: TenantLimitSettings) -> TenantLimits:
        """The limits of a tenant without overrides."""
        return cls(
            max_active_jobs=settings.default_max_active_jobs,
            max_pending_jobs=settings.default_max_pending_jobs,
            max_upload_bytes_per_day=settings.default_max_upload_bytes_per_day,
            requests_per_second=settings.default_requests_per_second,
            burst=settings.default_burst,
            max_open_streams=settings.default_max_open_streams,
        )

    @classmethod
    def settings_defaults(cls) -> TenantLimits:
        """The defaults the settings have when the environment sets none (what a stack without the
        ``tenant_limits`` prop deploys)."""
        fields = TenantLimitSettings.model_fields
        return cls.model_validate({name: fields[f"default_{name}"].default for name in cls.model_fields})

    def as_environment(self) -> dict[str, str]:
        """These limits as the default-limit environment variables of ``TenantLimitSettings`` (how the CDK
        prop reaches the functions)."""
        fields = TenantLimitSettings.model_fields
        return {str(fields[f"default_{name}"].alias): _env_value(value) for name, value in self.model_dump().items()}


LIMIT_NAMES: tuple[str, ...] = tuple(TenantLimits.model_fields)


def _env_value(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class TenantLimitStore:
    """Each tenant's overrides of the default limits, in the tenants table."""

    def __init__(self, client: DynamoDBClient, table: str, defaults: TenantLimits):
        self._client = client
        self._table = table
        self._defaults = defaults

    @property
    def defaults(self) -> TenantLimits:
        return self._defaults

    def overrides_for(self, tenant_id: str) -> dict[str, Any]:
        """The limits set for this tenant alone (the others follow the defaults)."""
        item = self._client.get_item(
            TableName=self._table,
            Key={"tenant_id": {"S": tenant_id}, "record": {"S": LIMITS_RECORD}},
            ConsistentRead=True,  # a change holds from the next request on
        ).get("Item", {})
        return {name: _number(item[name]["N"]) for name in LIMIT_NAMES if name in item}

    def limits_for(self, tenant_id: str) -> TenantLimits:
        """The limits in force for the tenant: its overrides over the defaults."""
        return self._defaults.model_copy(update=self.overrides_for(tenant_id))

    def set_limits(self, tenant_id: str, **overrides: int | float | None) -> TenantLimits:
        """Override some limits of the tenant (None leaves one as it is); answers the limits now in force.
        Raises ``pydantic.ValidationError`` for an unknown name or a value out of range, writing nothing."""
        check_tenant_name(tenant_id)
        given = {name: value for name, value in overrides.items() if value is not None}
        current = self.overrides_for(tenant_id)
        merged = TenantLimits.model_validate(self._defaults.model_dump() | current | given)
        if given:
            names = {f"#{name}": name for name in given}
            self._client.update_item(
                TableName=self._table,
                Key={"tenant_id": {"S": tenant_id}, "record": {"S": LIMITS_RECORD}},
                UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in given),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":{name}": {"N": _env_value(getattr(merged, name))} for name in given},
            )
        return merged


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value
