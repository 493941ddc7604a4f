"""Each tenant's request rate, enforced by API Gateway before any function runs: a usage plan per rate.

The REST API takes its API key from the authorizer (``apiKeySource: AUTHORIZER``), whose answer names the
tenant's key as ``usageIdentifierKey`` (``usage_key``), and every authorized method requires one. API Gateway
then throttles each key with the token bucket of its usage plan (``rateLimit`` per second, ``burstLimit``
deep) and answers ``THROTTLED`` (429, our ``rate_limited`` body, ``wiring.GATEWAY_ERRORS``) past it. A tenant
with the default rate is in the stack's usage plan; ``videojobs admin set-limits --requests-per-second`` or
``--burst`` moves its key to a plan of its own.

The key's value is not a secret a client could use: with ``apiKeySource: AUTHORIZER``, API Gateway ignores the
``x-api-key`` header. It is derived from the API's id and the tenant, so the authorizer needs no lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the authorizer imports usage_key, without pydantic
    from videojobs.tenant_limits import TenantLimits


def usage_key(api_id: str, tenant_id: str) -> str:
    """The tenant's API Gateway API key value (at least 20 characters, as API Gateway requires)."""
    return f"videojobs-{api_id}-{tenant_id}-usage"


def _tenant_plan_name(api_id: str, tenant_id: str) -> str:
    return f"videojobs-{api_id}-{tenant_id}"


class UsagePlans:
    """The tenants' API keys and usage plans of one REST API stage (the operator's CLI changes them)."""

    def __init__(self, client: Any, api_id: str, stage: str, default_plan_id: str, defaults: TenantLimits):
        self._client = client  # an "apigateway" client (the locked type stubs do not cover it)
        self._api_id = api_id
        self._stage = stage
        self._default_plan_id = default_plan_id
        self._defaults = defaults

    def apply(self, tenant_id: str, limits: TenantLimits) -> None:
        """Put the tenant's key in the plan with its rate: the default plan, or a plan of its own. A plan's
        rate is never edited in place; a new plan replaces it (the key is without a plan for a moment: API
        Gateway refuses a key in two plans of one stage)."""
        key_id = self._key_id(tenant_id)
        own = limits.requests_per_second != self._defaults.requests_per_second or limits.burst != self._defaults.burst
        current = self._client.get_usage_plans(keyId=key_id).get("items", [])
        wanted = next((plan for plan in current if self._fits(plan, tenant_id, limits, own)), None)
        for plan in current:
            if plan is wanted:
                continue
            self._client.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key_id)
            if plan.get("name") == _tenant_plan_name(self._api_id, tenant_id):
                self._client.delete_usage_plan(usagePlanId=plan["id"])
        if wanted is not None:
            return
        plan_id = self._default_plan_id
        if own:
            plan_id = self._client.create_usage_plan(
                name=_tenant_plan_name(self._api_id, tenant_id),
                description=f"videojobs tenant {tenant_id}: its own request rate",
                apiStages=[{"apiId": self._api_id, "stage": self._stage}],
                throttle={"rateLimit": limits.requests_per_second, "burstLimit": limits.burst},
            )["id"]
        self._client.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")

    def throttle_for(self, key_value: str) -> tuple[float, int] | None:
        """(rate per second, burst) of the plan holding this key value; None when no plan does (API Gateway then
        refuses the request with 403). The local gateway's view of what API Gateway enforces."""
        keys = self._client.get_api_keys(nameQuery=key_value, includeValues=True).get("items", [])
        key = next((key for key in keys if key.get("value") == key_value and key.get("enabled")), None)
        if key is None:
            return None
        for plan in self._client.get_usage_plans(keyId=key["id"]).get("items", []):
            stages = plan.get("apiStages", [])
            if {"apiId": self._api_id, "stage": self._stage} in [
                {"apiId": stage.get("apiId"), "stage": stage.get("stage")} for stage in stages
            ]:
                throttle = plan.get("throttle", {})
                return float(throttle.get("rateLimit", 0)), int(throttle.get("burstLimit", 0))
        return None

    def _fits(self, plan: dict[str, Any], tenant_id: str, limits: TenantLimits, own: bool) -> bool:
        if not own:
            return bool(plan["id"] == self._default_plan_id)
        throttle = plan.get("throttle", {})
        return bool(
            plan.get("name") == _tenant_plan_name(self._api_id, tenant_id)
            and float(throttle.get("rateLimit", -1)) == limits.requests_per_second
            and int(throttle.get("burstLimit", -1)) == limits.burst
        )

    def _key_id(self, tenant_id: str) -> str:
        """The tenant's API key (created the first time), named as its value."""
        value = usage_key(self._api_id, tenant_id)
        keys = self._client.get_api_keys(nameQuery=value, includeValues=True).get("items", [])
        found = next((key for key in keys if key.get("value") == value), None)
        if found is not None:
            return str(found["id"])
        created = self._client.create_api_key(
            name=value, value=value, enabled=True, description=f"videojobs tenant {tenant_id} (usage plans only)"
        )
        return str(created["id"])
