"""The capacity model of one big tenant: DynamoDB write units per second on each partition key, from the wiring
(tables, index keys and projections), the worker's write rates and item sizes measured on the items the store
writes for a representative job.

    python -m tools.capacity                      # the README's table (one tenant, 1 to 1,000 running jobs)
    python -m tools.capacity --job-seconds 10     # shorter jobs: more status changes per second

DynamoDB writes an index only when a write changes a key or a projected attribute of it, and bills (and
throttles) each partition key at up to ~1,000 write units per second (one unit per KB of item, rounded up) until
it splits the partition for heat. A transactional write costs twice. Job items are spread over partitions by
their id; every job of a tenant writes to these keys of the tenant:

- the ``by_tenant`` index (status changes; progress only if projected) and the sparse ``queued_by_tenant`` index
  (keys only: an entry at submission, removed at the claim);
- the tenants table: the pending and active counts (``videojobs.tenant_counters.JobSlots``), a marker item and
  a counter each, changed in one transaction at submit, claim, end of processing and terminal status;
- the usage ledger (one item per tenant and UTC day): an ``ADD`` at submission and one at the end.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from videojobs import wiring
from videojobs.job_store import JobStore
from videojobs.models import (
    ErrorDetail,
    Job,
    JobStage,
    JobStatus,
    JobUsage,
    MediaMetadata,
    StoredOutput,
    utcnow,
)
from videojobs.service.processing import PROGRESS_INTERVAL_SECONDS
from videojobs.settings import WorkerSettings
from videojobs.tenant_counters import PENDING_RECORD, JobSlots

PARTITION_WCU_PER_SECOND = 1000
"""DynamoDB's write throughput per partition (and so, at most, per partition key), on demand or provisioned."""
SAFE_FRACTION = 0.5
""""Well under" the limit: at most half of it, so bursts and a second big tenant on the same partition fit."""
STATUS_CHANGES_PER_JOB = 3
"""Writes of a job that change its status: created (queued), claimed (processing), ended."""
USAGE_WRITES_PER_JOB = 2
"""The usage ledger's ``ADD`` at submission and at the end (one item per tenant and UTC day)."""
QUEUED_INDEX_WRITES_PER_JOB = 2
"""The ``queued_by_tenant`` entry: written at submission, removed at the claim."""
SLOT_TRANSACTIONS_PER_JOB = {"pending": 2, "active": 2}
"""Per count of the tenants table: the transaction that takes the job's slot and the one that releases it, each
writing the job's marker and the tenant's counter."""
TRANSACTION_WCU_FACTOR = 2
"""DynamoDB bills each item of a ``TransactWriteItems`` twice (prepare and commit)."""
CONCURRENCY = (1, 10, 100, 300, 1000)


def attribute_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one serialized value (its documented item-size rules)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = inner.lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(element) for element in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + attribute_size(element) for name, element in inner.items())
    if kind in ("SS", "NS"):
        return sum(attribute_size({kind[0]: element}) for element in inner)
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, dict[str, Any]], attributes: set[str] | None = None) -> int:
    """The item's size, or that of its ``attributes`` only (what an index projects)."""
    return sum(
        len(name.encode()) + attribute_size(value)
        for name, value in item.items()
        if attributes is None or name in attributes
    )


def write_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / 1024))


def representative_job(status: JobStatus) -> Job:
    """A job as clients commonly ask for it: an HLS ladder, an MP4 and thumbnails of a 1080p upload, a webhook
    and some metadata; running (progress, stage, lease) or completed (outputs written, usage)."""
    now = utcnow()
    tenant, job_id = "acme-media-production", "job_" + "5f" * 16
    prefix = f"outputs/{tenant}/{job_id}/a1"
    specs = [
        {"type": "hls", "heights": [360, 720, 1080]},
        {"type": "mp4", "height": 720, "quality": "medium"},
        {"type": "thumbnails", "count": 10, "width": 320},
    ]
    outputs = [StoredOutput(spec=spec) for spec in specs]
    job = Job(
        id=job_id,
        tenant_id=tenant,
        status=status,
        created_at=now,
        updated_at=now,
        upload_id="upl_" + "a" * 32,
        input_key=f"uploads/{tenant}/upl_{'a' * 32}",
        input_bytes=600_000_000,
        input_metadata=MediaMetadata(
            format="mov,mp4,m4a,3gp,3g2,mj2",
            duration_seconds=600.0,
            width=1920,
            height=1080,
            fps=29.97,
            video_codec="h264",
            audio_codec="aac",
            bitrate=8_000_000,
            size_bytes=600_000_000,
            rotation=0,
            audio_channels=2,
            audio_sample_rate=48000,
            stream_count=2,
        ),
        outputs=outputs,
        webhook_url="https://hooks.example.com/videojobs/acme/notifications",
        metadata={"customer_id": "c-1234567", "title": "A ten-minute upload", "collection": "spring-2026"},
        request_hash="9" * 64,
        attempts=1,
        version=120,
        started_at=now,
    )
    if status is JobStatus.PROCESSING:
        return job.model_copy(
            update={
                "progress": 42,
                "stage": JobStage.TRANSCODING,
                "eta_seconds": 180,
                "lease_owner": "lambda-0123456789ab",
                "lease_expires_at": now + timedelta(seconds=60),
            }
        )
    written = [
        StoredOutput(
            spec=specs[0],
            key=f"{prefix}/hls/master.m3u8",
            size_bytes=310_000_000,
            content_type="application/vnd.apple.mpegurl",
            details={
                "renditions": [
                    {"height": height, "bandwidth": height * 4000, "playlist": f"{prefix}/hls/{height}p.m3u8"}
                    for height in (360, 720, 1080)
                ]
            },
            secret="s" * 43,
        ),
        StoredOutput(spec=specs[1], key=f"{prefix}/mp4/720.mp4", size_bytes=225_000_000, content_type="video/mp4"),
        StoredOutput(
            spec=specs[2],
            keys=[f"{prefix}/thumbnails/{index:03d}.jpg" for index in range(10)],
            size_bytes=400_000,
            content_type="image/jpeg",
        ),
    ]
    usage = JobUsage(
        processing_seconds=321.456,
        gb_seconds=942.744,
        input_bytes=600_000_000,
        output_bytes=535_400_000,
        estimated_cost_usd=0.015817,
    )
    return job.model_copy(
        update={"progress": 100, "outputs": written, "completed_at": now, "usage": usage, "error": None}
    )


def _failed_job() -> Job:  # the longest error message a job stores is a sentence: completed is the larger item
    return representative_job(JobStatus.COMPLETED).model_copy(
        update={"status": JobStatus.FAILED, "error": ErrorDetail(code="processing_failed", message="x" * 200)}
    )


def by_tenant_index() -> wiring.Index:
    """The index lists read: one partition key per tenant, written by every job of the tenant. (The sparse
    ``queued_by_tenant`` index holds keys only and is written twice per job, at submission and claim.)"""
    return next(index for index in wiring.TABLES["jobs"].indexes if index.name == "by_tenant")


@dataclass(frozen=True)
class Sizes:
    running_item: int
    completed_item: int
    index_entry: int
    """An index entry of a running job, as ``by_tenant`` projects it (keys, the table's key, projected attributes)."""
    index_entry_all: int
    """The same under an ALL projection (what the index held before issue 13)."""
    queued_entry: int
    """A ``queued_by_tenant`` entry (keys only)."""
    slot_marker: int
    """A job's marker in the tenants table (``pending#<job id>`` with its creation epoch; ``active#`` is smaller)."""
    slot_counter: int
    """A tenant's counter item (the count and when it was last pruned)."""
    usage_item: int
    """The tenant's usage ledger item of a day, every counter set."""


def slot_items() -> tuple[dict[str, Any], dict[str, Any]]:
    """The marker and the counter as a reservation writes them (the counter at a count of 1,000, pruned)."""
    job = representative_job(JobStatus.QUEUED)
    created = {"created": {"N": str(int(job.created_at.timestamp()))}}
    put, update = JobSlots(None, "tenants", PENDING_RECORD).take_items(job.tenant_id, job.id, 1000, created)  # type: ignore[arg-type]
    counter = {**update["Update"]["Key"], "count": {"N": "1000"}, "pruned_at": {"N": f"{job.created_at.timestamp()}"}}
    return put["Put"]["Item"], counter


def usage_item() -> dict[str, Any]:
    """A day of the ledger (``videojobs.usage.UsageLedger``): every counter it adds, at a busy day's magnitudes."""
    job = representative_job(JobStatus.COMPLETED)
    counts = {
        "jobs_submitted": "86400",
        "jobs_completed": "86000",
        "jobs_failed": "400",
        "bytes_uploaded": "51840000000000",
        "processing_seconds": "27771788.123456",
        "gb_seconds": "81453081.123456",
        "bytes_output": "46258560000000",
        "estimated_cost_usd": "1366.608123",
    }
    return {
        "tenant_id": {"S": job.tenant_id},
        "day": {"S": job.created_at.date().isoformat()},
        **{name: {"N": value} for name, value in counts.items()},
    }


def queued_entry_size() -> int:
    """Keys only: the table's key and the index's keys, as a queued job carries them."""
    item = JobStore._job_item(representative_job(JobStatus.QUEUED))
    index = next(index for index in wiring.TABLES["jobs"].indexes if index.name == "queued_by_tenant")
    return item_size(item, {wiring.TABLES["jobs"].partition_key, index.partition_key, index.sort_key})


def measured_sizes() -> Sizes:
    running = JobStore._job_item(representative_job(JobStatus.PROCESSING))
    completed = JobStore._job_item(representative_job(JobStatus.COMPLETED))
    index = by_tenant_index()
    keys = {wiring.TABLES["jobs"].partition_key, index.partition_key, index.sort_key}
    projected = keys | set(index.projection) if index.projection is not None else None
    return Sizes(
        running_item=item_size(running),
        completed_item=max(item_size(completed), item_size(JobStore._job_item(_failed_job()))),
        index_entry=item_size(running, projected),
        index_entry_all=item_size(running),
        queued_entry=queued_entry_size(),
        slot_marker=item_size(slot_items()[0]),
        slot_counter=item_size(slot_items()[1]),
        usage_item=item_size(usage_item()),
    )


@dataclass(frozen=True)
class Row:
    running_jobs: int
    job_item_wcu: float
    """On one job's own partition key: its progress writes (and heartbeats, which coincide)."""
    tenant_index_wcu: float
    """On the tenant's key of ``by_tenant``, as the wiring projects it."""
    tenant_index_wcu_all: float
    """The same with every attribute projected."""
    tenant_items_wcu: float
    """On the tenant's usage ledger item of the day."""
    queued_index_wcu: float
    """On the tenant's key of ``queued_by_tenant``."""
    tenant_counts_wcu: float
    """On the tenant's key of the tenants table: the pending and active markers and counters, before DynamoDB
    splits the key's items over partitions by sort key."""
    hottest_counter_wcu: float
    """On one counter item (pending or active), which no split can spread."""

    @property
    def tenant_key_wcu(self) -> float:
        """The busiest partition key of the tenant (each key is its own partition, at worst)."""
        return max(self.tenant_index_wcu, self.tenant_items_wcu, self.queued_index_wcu, self.tenant_counts_wcu)


def progress_writes_per_second() -> float:
    """A running job's writes: progress at most every ``PROGRESS_INTERVAL_SECONDS`` (when it moved a percent), and
    a heartbeat every quarter lease when it did not: at most the larger rate."""
    heartbeat = WorkerSettings.model_fields["lease_seconds"].default / 4
    return max(1 / PROGRESS_INTERVAL_SECONDS, 1 / heartbeat)


def index_writes_per_job_write(projection: tuple[str, ...] | None) -> bool:
    """Whether a progress write reaches the index: with ALL it does (every attribute is projected); otherwise only
    when it changes a projected attribute, and progress writes change none of ``status``/``priority``."""
    progress_attributes = {"progress", "stage", "eta_seconds", "lease_expires_at", "updated_at", "version"}
    return projection is None or bool(progress_attributes & set(projection))


def model(running_jobs: int, job_seconds: float, sizes: Sizes | None = None) -> Row:
    """Write units per second for one tenant with ``running_jobs`` jobs running at once, each ``job_seconds``
    long (so ``running_jobs / job_seconds`` jobs start, and end, each second)."""
    sizes = sizes or measured_sizes()
    index = by_tenant_index()
    per_job = progress_writes_per_second()
    turnover = running_jobs / job_seconds
    status_wcu = turnover * STATUS_CHANGES_PER_JOB * write_units(sizes.index_entry)
    progress_wcu = running_jobs * per_job * write_units(sizes.index_entry)
    tenant_index = status_wcu + (progress_wcu if index_writes_per_job_write(index.projection) else 0)
    all_index = running_jobs * per_job * write_units(sizes.index_entry_all) + turnover * STATUS_CHANGES_PER_JOB * (
        write_units(sizes.completed_item)
    )
    slot_transaction_wcu = TRANSACTION_WCU_FACTOR * (write_units(sizes.slot_marker) + write_units(sizes.slot_counter))
    counter_wcu_per_job = (
        max(SLOT_TRANSACTIONS_PER_JOB.values()) * TRANSACTION_WCU_FACTOR * write_units(sizes.slot_counter)
    )
    return Row(
        running_jobs=running_jobs,
        job_item_wcu=per_job * write_units(sizes.running_item),
        tenant_index_wcu=tenant_index,
        tenant_index_wcu_all=all_index,
        tenant_items_wcu=turnover * USAGE_WRITES_PER_JOB * write_units(sizes.usage_item),
        queued_index_wcu=turnover * QUEUED_INDEX_WRITES_PER_JOB * write_units(sizes.queued_entry),
        tenant_counts_wcu=turnover * sum(SLOT_TRANSACTIONS_PER_JOB.values()) * slot_transaction_wcu,
        hottest_counter_wcu=turnover * counter_wcu_per_job,
    )


def table(job_seconds: float, concurrency: tuple[int, ...] = CONCURRENCY) -> str:
    sizes = measured_sizes()
    index = by_tenant_index()
    projection = "ALL" if index.projection is None else f"INCLUDE {', '.join(index.projection)}"
    lines = [
        f"Item sizes (measured on the store's items): running job {sizes.running_item} B, completed "
        f"{sizes.completed_item} B; by_tenant entry {sizes.index_entry} B ({projection}), "
        f"{sizes.index_entry_all} B with ALL; queued_by_tenant entry {sizes.queued_entry} B; tenants table: "
        f"job marker {sizes.slot_marker} B, counter {sizes.slot_counter} B; usage ledger day {sizes.usage_item} B.",
        f"One tenant, jobs of {job_seconds:g} s, {progress_writes_per_second():g} progress write/s per running job; "
        f"limit {PARTITION_WCU_PER_SECOND} WCU/s per partition key.",
        "",
        "| running jobs | job item WCU/s (each) | by_tenant key | with ALL projection | queued_by_tenant key | "
        "tenants table key (hottest counter) | usage item | busiest tenant key vs limit |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for count in concurrency:
        row = model(count, job_seconds, sizes)
        share = row.tenant_key_wcu / PARTITION_WCU_PER_SECOND
        verdict = "ok" if share <= SAFE_FRACTION else ("near" if share <= 1 else "THROTTLED")
        lines.append(
            f"| {count:,} | {row.job_item_wcu:g} | {row.tenant_index_wcu:,.0f} | {row.tenant_index_wcu_all:,.0f} | "
            f"{row.queued_index_wcu:,.0f} | {row.tenant_counts_wcu:,.0f} ({row.hottest_counter_wcu:,.0f}) | "
            f"{row.tenant_items_wcu:,.0f} | {share:.0%} ({verdict}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job-seconds", type=float, default=60.0, help="how long each job runs (default 60)")
    args = parser.parse_args(argv)
    print(table(args.job_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
