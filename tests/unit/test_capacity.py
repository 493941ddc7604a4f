"""The capacity model (``python -m tools.capacity``): one tenant with 1,000 jobs running stays well under
DynamoDB's per-partition write limit on every key, with jobs of 10 s to 10 min, and the model would show the old
ALL projection and the old unsharded tenants-table key throttled."""

from __future__ import annotations

import dataclasses

import pytest

from tools import capacity
from videojobs import wiring
from videojobs.tenant_counters import MARKER_SHARDS


def test_dynamodb_item_size_rules():
    assert capacity.item_size({"id": {"S": "abc"}}) == 2 + 3
    assert capacity.item_size({"n": {"N": "12345"}}) == 1 + 4  # 3 bytes of digits + 1
    assert capacity.item_size({"m": {"M": {"a": {"BOOL": True}}}}) == 1 + 3 + (1 + 1 + 1)
    assert capacity.write_units(1024) == 1 and capacity.write_units(1025) == 2


@pytest.mark.parametrize("job_seconds", [10, 60, 600])
def test_one_tenant_with_1000_running_jobs_stays_well_under_the_partition_limit(job_seconds: float):
    row = capacity.model(1000, job_seconds)
    half = capacity.SAFE_FRACTION * capacity.PARTITION_WCU_PER_SECOND
    assert row.tenant_key_wcu <= half
    assert row.hottest_counter_wcu <= half
    assert row.job_item_wcu < capacity.PARTITION_WCU_PER_SECOND  # each job's own key


def test_ten_second_jobs_at_1000_running_stay_well_under_the_limit_on_every_tenants_table_key():
    """100 jobs a second start and end: the pending and active transactions and the upload bytes write ~1,700
    WCU/s to the tenants table, over the limit had they one key (as before issue 13's sharding); spread over the
    marker shards and the counters' own keys, the busiest key is one counter's, under half a partition."""
    row = capacity.model(1000, 10)
    assert row.tenants_table_one_key_wcu > capacity.PARTITION_WCU_PER_SECOND
    assert row.tenants_table_key_wcu <= capacity.SAFE_FRACTION * capacity.PARTITION_WCU_PER_SECOND
    assert row.tenants_table_key_wcu == pytest.approx(row.hottest_counter_wcu)  # the marker shards are cooler


def test_the_marker_shards_each_take_a_fraction_of_a_counters_writes():
    load = capacity.tenants_table_load(capacity.measured_sizes())
    counter = max(load.per_item.values())
    shards = [units for key, units in load.per_partition.items() if key.rsplit("#", 1)[-1].isdigit()]
    assert len(shards) == 2 * MARKER_SHARDS  # pending and active markers, each over its own shard keys
    assert max(shards) < counter / 4


def test_the_tenants_table_items_stay_under_one_write_unit():
    sizes = capacity.measured_sizes()
    assert max(sizes.slot_marker, sizes.slot_counter, sizes.upload_item, sizes.queued_entry, sizes.usage_item) < 1024


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
