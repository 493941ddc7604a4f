"""The capacity model (``python -m tools.capacity``): one tenant with 1,000 jobs running stays well under
DynamoDB's per-partition write limit on every key but one (10-second jobs, see below), and the model would show
the old ALL projection throttled."""

from __future__ import annotations

import dataclasses

import pytest

from tools import capacity
from videojobs import wiring


def test_dynamodb_item_size_rules():
    assert capacity.item_size({"id": {"S": "abc"}}) == 2 + 3
    assert capacity.item_size({"n": {"N": "12345"}}) == 1 + 4  # 3 bytes of digits + 1
    assert capacity.item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + (1 + 1 + 1)
    assert capacity.write_units(1024) == 1 and capacity.write_units(1025) == 2


@pytest.mark.parametrize("job_seconds", [10, 60, 600])
def test_one_tenant_with_1000_running_jobs_stays_well_under_the_partition_limit(job_seconds: float):
    row = capacity.model(1000, job_seconds)
    half = capacity.SAFE_FRACTION * capacity.PARTITION_WCU_PER_SECOND
    assert max(row.tenant_index_wcu, row.queued_index_wcu, row.tenant_items_wcu, row.hottest_counter_wcu) <= half
    assert row.job_item_wcu < capacity.PARTITION_WCU_PER_SECOND  # each job's own key
    if job_seconds >= 60:
        assert row.tenant_key_wcu <= half


def test_ten_second_jobs_at_1000_running_pass_the_tenants_key_until_dynamodb_splits_it():
    """100 jobs a second start and end: the pending and active transactions write 1,600 WCU/s under the tenant's
    key of the tenants table (README "Capacity"), spread over many marker items that a split for heat can
    separate; no single item (a counter) takes more than half a partition."""
    row = capacity.model(1000, 10)
    assert row.tenant_counts_wcu > capacity.PARTITION_WCU_PER_SECOND
    assert row.hottest_counter_wcu <= capacity.SAFE_FRACTION * capacity.PARTITION_WCU_PER_SECOND


def test_the_tenants_table_items_stay_under_one_write_unit():
    sizes = capacity.measured_sizes()
    assert max(sizes.slot_marker, sizes.slot_counter, sizes.queued_entry, sizes.usage_item) < 1024


def test_with_every_attribute_projected_the_tenant_key_would_be_throttled(monkeypatch: pytest.MonkeyPatch):
    jobs = wiring.TABLES["jobs"]
    projected_all = dataclasses.replace(
        jobs, indexes=tuple(dataclasses.replace(i, projection=None) for i in jobs.indexes)
    )
    monkeypatch.setitem(wiring.TABLES, "jobs", projected_all)
    assert capacity.model(1000, 60).tenant_index_wcu > capacity.PARTITION_WCU_PER_SECOND
    assert capacity.model(300, 60).tenant_index_wcu > 0.5 * capacity.PARTITION_WCU_PER_SECOND


def test_the_table_prints_every_concurrency_level():
    printed = capacity.table(60)
    assert all(f"| {count:,} |" in printed for count in capacity.CONCURRENCY)
    assert "THROTTLED" not in printed
