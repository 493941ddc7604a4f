"""Per-tenant limits: defaults from settings, overrides stored with the tenant, read back in force."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.local.resources import Resources
from videojobs.aws import client
from videojobs.settings import AdminSettings
from videojobs.tenant_limits import LIMIT_NAMES, TenantLimits, TenantLimitStore


@pytest.fixture
def store(aws: Resources) -> TenantLimitStore:
    return TenantLimitStore(client("dynamodb"), aws.tables["tenants"], TenantLimits.defaults(AdminSettings.from_env()))


def test_a_tenant_without_overrides_has_the_settings_defaults(store: TenantLimitStore) -> None:
    settings = AdminSettings.from_env()
    limits = store.limits_for("fresh")
    assert limits.max_pending_jobs == settings.default_max_pending_jobs
    assert limits == store.defaults
    assert (
        tuple(limits.model_dump())
        == LIMIT_NAMES
        == (
            "max_active_jobs",
            "max_pending_jobs",
            "max_upload_bytes_per_day",
            "requests_per_second",
            "burst",
            "max_open_streams",
        )
    )


def test_defaults_follow_the_environment(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANT_MAX_OPEN_STREAMS", "3")
    monkeypatch.setenv("TENANT_REQUESTS_PER_SECOND", "2.5")
    defaults = TenantLimits.defaults(AdminSettings.from_env())
    assert (defaults.max_open_streams, defaults.requests_per_second) == (3, 2.5)
    assert defaults.as_environment()["TENANT_MAX_OPEN_STREAMS"] == "3"
    assert defaults.as_environment()["TENANT_REQUESTS_PER_SECOND"] == "2.5"


def test_overrides_are_kept_per_tenant_and_merged_over_the_defaults(store: TenantLimitStore) -> None:
    store.set_limits("acme", max_pending_jobs=7)
    after = store.set_limits("acme", burst=3, max_active_jobs=None)
    assert (after.max_pending_jobs, after.burst, after.max_active_jobs) == (7, 3, store.defaults.max_active_jobs)
    assert store.limits_for("acme") == after
    assert store.overrides_for("acme") == {"max_pending_jobs": 7, "burst": 3}
    assert store.limits_for("other") == store.defaults


def test_an_invalid_value_writes_nothing(store: TenantLimitStore) -> None:
    with pytest.raises(ValidationError):
        store.set_limits("acme", max_pending_jobs=0)
    with pytest.raises(ValidationError):
        store.set_limits("acme", max_pending_jobs=5, requests_per_second=-1)
    assert store.overrides_for("acme") == {}
