"""Usage: what one attempt of a worker used (``UsageMeter``) and the per-tenant, per-day ledger (``UsageLedger``).

The ledger is one item per tenant and UTC day in the ``usage`` table, changed only by ``ADD`` (atomic, so any
number of workers and API calls count into it at once). A job counts once when it is submitted and once when it
ends: the write that ends it is conditional and succeeds once, and the ledger is told right after (a process that
dies in between loses that one job's count; it never counts twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from videojobs.models import Job, JobStatus, JobUsage, StoredOutput, UsageDay, UsageTotals
from videojobs.pricing import Compute, round_cost, storage_cost

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

MAX_DAYS = 92
"""The most days one ``GET /account/usage`` covers (a quarter)."""
_COUNTERS = tuple(UsageTotals.model_fields)


@dataclass
class UsageMeter:
    """One attempt, from its claim: what a write that ends it (complete, fail, cancel, give back) adds to the
    job's ``usage``. The job's lease makes that write the only one, so adding to the usage read at the claim is
    safe."""

    compute: Compute
    claimed: Job
    """The job as claimed: its usage so far (earlier attempts) and its input's size."""
    uploaded: list[str]
    """The keys this attempt wrote (one PUT each); the worker empties it when it removes them."""
    outputs_kept_days: float
    """How long outputs stay in S3 (the outputs bucket's lifecycle rule)."""
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.started or self.clock()

    def usage(self, outputs: list[StoredOutput] | None = None) -> JobUsage:
        """The job's usage with this attempt's added; ``outputs`` when it completed (their S3 cost counts)."""
        seconds = max(self.clock() - self.started, 0.0)
        before = self.claimed.usage
        output_bytes = sum(output.size_bytes or 0 for output in outputs or [])
        cost = self.compute.cost(seconds)
        if outputs is not None:
            cost += storage_cost(output_bytes, len(self.uploaded), self.outputs_kept_days, self.compute.region)
        return JobUsage(
            processing_seconds=round((before.processing_seconds if before else 0) + seconds, 3),
            gb_seconds=round((before.gb_seconds if before else 0) + self.compute.gb_seconds(seconds), 3),
            input_bytes=self.claimed.input_bytes or 0,
            output_bytes=(before.output_bytes if before else 0) + output_bytes,
            estimated_cost_usd=round_cost((before.estimated_cost_usd if before else 0) + cost),
        )


class UsageLedger:
    """Per tenant and UTC day: jobs submitted, completed and failed, and what they used."""

    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def job_submitted(self, job: Job) -> None:
        self._add(job.tenant_id, job.created_at.date(), {"jobs_submitted": 1, "bytes_uploaded": job.input_bytes or 0})

    def job_finished(self, job: Job) -> None:
        """Count a job that just ended, on the day it ended: its status and the usage its workers recorded."""
        counts: dict[str, float] = {}
        if job.status is JobStatus.COMPLETED:
            counts["jobs_completed"] = 1
        elif job.status is JobStatus.FAILED:
            counts["jobs_failed"] = 1
        if job.usage is not None:
            counts |= {
                "processing_seconds": job.usage.processing_seconds,
                "gb_seconds": job.usage.gb_seconds,
                "bytes_output": job.usage.output_bytes,
                "estimated_cost_usd": job.usage.estimated_cost_usd,
            }
        if counts:
            self._add(job.tenant_id, (job.completed_at or job.updated_at).date(), counts)

    def _add(self, tenant_id: str, day: date, counts: dict[str, float]) -> None:
        names = {f"#c{index}": name for index, name in enumerate(counts)}
        self._client.update_item(
            TableName=self._table,
            Key={"tenant_id": {"S": tenant_id}, "day": {"S": day.isoformat()}},
            UpdateExpression="ADD " + ", ".join(f"#c{index} :c{index}" for index in range(len(counts))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                f":c{index}": {"N": _plain_number(value)} for index, value in enumerate(counts.values())
            },
        )

    def days(self, tenant_id: str, first: date, last: date) -> list[UsageDay]:
        """Every day from ``first`` to ``last`` (inclusive), zeros where nothing happened."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "tenant_id = :tenant AND #day BETWEEN :first AND :last",
            "ExpressionAttributeNames": {"#day": "day"},
            "ExpressionAttributeValues": {
                ":tenant": {"S": tenant_id},
                ":first": {"S": first.isoformat()},
                ":last": {"S": last.isoformat()},
            },
            "ConsistentRead": True,
        }
        stored: dict[str, dict[str, Any]] = {}
        while True:
            page = self._client.query(**request)
            for item in page.get("Items", []):
                stored[item["day"]["S"]] = {
                    name: _number(item[name]["N"]) for name in _COUNTERS if name in item and "N" in item[name]
                }
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        count = (last - first).days + 1
        return [
            UsageDay(date=day.isoformat(), **stored.get(day.isoformat(), {}))
            for day in (first + timedelta(days=offset) for offset in range(count))
        ]


def totals(days: list[UsageDay]) -> UsageTotals:
    """The days added up (money and seconds rounded as the ledger keeps them)."""
    summed = {name: sum(getattr(day, name) for day in days) for name in _COUNTERS}
    summed["estimated_cost_usd"] = round_cost(summed["estimated_cost_usd"])
    summed["processing_seconds"] = round(summed["processing_seconds"], 3)
    summed["gb_seconds"] = round(summed["gb_seconds"], 3)
    return UsageTotals(**summed)


def _plain_number(value: float) -> str:
    """A float's shortest repr as a plain decimal (``4e-06`` -> ``0.000004``), which DynamoDB adds exactly."""
    return format(Decimal(repr(value)), "f")


def _number(text: str) -> int | float:
    value = Decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)
