"""The price math: Lambda and Fargate compute, S3 outputs, regions, the per-attempt meter and the dry run's
estimate."""

from __future__ import annotations

import pytest

from videojobs import pricing
from videojobs.estimate import estimate
from videojobs.models import Job, JobStatus, JobUsage, StoredOutput, UsageDay, utcnow
from videojobs.pricing import Compute, storage_cost
from videojobs.settings import SubmitSettings
from videojobs.usage import UsageMeter, _plain_number, totals

SETTINGS = SubmitSettings.from_env(
    {"JOBS_TABLE": "j", "USAGE_TABLE": "u", "TENANTS_TABLE": "t", "IDEMPOTENCY_TABLE": "i", "UPLOADS_BUCKET": "b"}
    | {"JOBS_QUEUE_URL": "q"}
)


def test_a_lambda_attempt_costs_its_gb_seconds_its_tmp_above_512_mb_and_one_request():
    worker = Compute("lambda", memory_mb=3008, ephemeral_gb=10)
    assert worker.gb_seconds(100) == pytest.approx(293.75)
    expected = 293.75 * 0.0000166667 + 9.5 * 100 * 0.0000000309 + 0.20 / 1e6
    assert worker.cost(100) == pytest.approx(expected, rel=1e-12)
    assert worker.cost(100, attempts=3) - worker.cost(100) == pytest.approx(2 * 0.20 / 1e6)


def test_a_fargate_hour_costs_vcpu_hours_gb_hours_and_storage_above_20_gb():
    task = Compute("fargate", memory_mb=8192, vcpu=2, ephemeral_gb=200)
    assert task.cost(3600) == pytest.approx(2 * 0.04048 + 8 * 0.004445 + 180 * 0.000111, rel=1e-12)
    assert task.gb_seconds(3600) == 8 * 3600


def test_regions_price_differently_and_an_unlisted_one_falls_back_to_us_east_1():
    task = {region: Compute("fargate", memory_mb=4096, vcpu=1, ephemeral_gb=20, region=region) for region in (
        "us-east-1", "eu-central-1", "xx-nowhere-9")}  # fmt: skip
    assert task["eu-central-1"].cost(3600) == pytest.approx(0.04656 + 4 * 0.00511)
    assert task["xx-nowhere-9"].cost(3600) == task["us-east-1"].cost(3600) == pytest.approx(0.04048 + 4 * 0.004445)
    assert pricing.PRICES_CHECKED_ON and all(url.startswith("https://aws.amazon.com/") for url in pricing.PRICE_SOURCES)


def test_outputs_cost_a_put_per_file_and_their_storage_until_they_expire():
    assert storage_cost(pricing.GIB, 3, kept_days=30, region="us-east-1") == pytest.approx(0.023 + 3 * 0.005 / 1000)
    assert storage_cost(pricing.GIB, 0, kept_days=15, region="eu-central-1") == pytest.approx(0.0245 / 2)


def _job(usage: JobUsage | None = None) -> Job:
    now = utcnow()
    return Job(
        id="job_1", tenant_id="t1", status=JobStatus.PROCESSING, created_at=now, updated_at=now, upload_id="u",
        input_key="k", input_bytes=5000, outputs=[], usage=usage,
    )  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_meter_adds_an_attempt_to_what_earlier_attempts_used():
    lambda_worker, task = Compute("lambda", memory_mb=2048), Compute("fargate", memory_mb=4096, vcpu=1)
    clock = Clock()
    first = UsageMeter(lambda_worker, _job(), [], outputs_kept_days=30, clock=clock)
    clock.now += 12.5
    handed_off = first.usage()
    assert handed_off == JobUsage(
        processing_seconds=12.5, gb_seconds=25.0, input_bytes=5000, output_bytes=0,
        estimated_cost_usd=pricing.round_cost(lambda_worker.cost(12.5)),
    )  # fmt: skip

    written = ["a", "b"]
    second = UsageMeter(task, _job(handed_off), written, outputs_kept_days=30, clock=clock)
    clock.now += 100
    outputs = [StoredOutput(spec={"type": "mp4"}, size_bytes=300), StoredOutput(spec={"type": "audio"}, size_bytes=50)]
    done = second.usage(outputs)
    assert (done.processing_seconds, done.gb_seconds, done.output_bytes) == (112.5, 25.0 + 400.0, 350)
    expected = lambda_worker.cost(12.5) + task.cost(100) + storage_cost(350, 2, 30, "us-east-1")
    assert done.estimated_cost_usd == pytest.approx(expected, abs=2e-6)


def test_totals_add_up_the_days():
    days = [
        UsageDay(date="2026-11-01", jobs_submitted=2, processing_seconds=1.1, estimated_cost_usd=0.000001),
        UsageDay(date="2026-11-02", jobs_completed=1, processing_seconds=2.2, estimated_cost_usd=0.000002),
    ]
    summed = totals(days)
    assert (summed.jobs_submitted, summed.jobs_completed) == (2, 1)
    assert (summed.processing_seconds, summed.estimated_cost_usd) == (3.3, 0.000003)


def test_a_small_upload_is_estimated_on_lambda_and_a_large_one_on_fargate():
    outputs = [StoredOutput(spec={"type": "mp4", "height": 720}), StoredOutput(spec={"type": "hls", "heights": [360]})]
    small = estimate(outputs, 10_000_000, SETTINGS)  # 10 s at the reference bitrate
    large = estimate(outputs, 4_000_000_000, SETTINGS)  # over an hour
    assert (small.route, large.route) == ("lambda", "fargate")
    assert 0 < small.processing_seconds < SETTINGS.lambda_time_budget_seconds < large.processing_seconds
    assert 0 < small.estimated_cost_usd < large.estimated_cost_usd
    # More output work, more time.
    assert estimate(outputs[:1], 10_000_000, SETTINGS).processing_seconds < small.processing_seconds


def test_ledger_numbers_are_plain_decimals_which_dynamodb_adds():
    assert (_plain_number(4e-06), _plain_number(1), _plain_number(12.5)) == ("0.000004", "1", "12.5")
