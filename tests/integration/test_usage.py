"""Usage on moto with the real ffmpeg: what the worker records on each job, the per-tenant ledger it adds to, the
account's usage report, dry runs, and lists read through the keys-only ``by_tenant`` index."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import pytest

from infra.local.resources import Resources
from tests.integration.workers import LAMBDA_WORKER, attempt, queued_job, worker_deps
from videojobs import pricing
from videojobs.aws import client
from videojobs.errors import ApiError
from videojobs.job_store import JobStore
from videojobs.models import CreateJobRequest, JobStatus, utcnow
from videojobs.object_store import ObjectStore, upload_key
from videojobs.queues import JobQueue
from videojobs.service import jobs
from videojobs.service.processing import Attempt, process_job
from videojobs.settings import StatusSettings, SubmitSettings
from videojobs.tenant_counters import DailyUploadBytes, PendingJobs
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.usage import MAX_DAYS, UsageLedger

FARGATE_TASK = pricing.fargate_compute(2, 8192, ephemeral_gb=200)


def ledger(aws: Resources) -> UsageLedger:
    return UsageLedger(client("dynamodb"), aws.tables["usage"])


def today(aws: Resources):
    [day] = ledger(aws).days("t1", utcnow().date(), utcnow().date())
    return day


def test_a_completed_job_carries_what_it_used_and_the_ledger_counts_it(aws: Resources, tmp_path: Path, clip: Path):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}, {"type": "thumbnails", "count": 2}])
    done = process_job(job.id, deps, attempt()).job

    assert done.status is JobStatus.COMPLETED and done.usage is not None
    usage = done.usage
    assert usage.processing_seconds > 0
    assert usage.gb_seconds == pytest.approx(usage.processing_seconds * 3008 / 1024, abs=0.01)
    assert usage.input_bytes == clip.stat().st_size
    assert usage.output_bytes == sum(output.size_bytes or 0 for output in done.outputs) > 0
    files = 1 + 2  # the MP4 and two thumbnails: one PUT each
    expected = LAMBDA_WORKER.cost(usage.processing_seconds) + pricing.storage_cost(
        usage.output_bytes, files, 30, LAMBDA_WORKER.region
    )
    assert usage.estimated_cost_usd == pytest.approx(expected, abs=2e-6)

    day = today(aws)
    assert (day.jobs_completed, day.jobs_failed) == (1, 0)
    assert (day.processing_seconds, day.gb_seconds, day.bytes_output, day.estimated_cost_usd) == (
        usage.processing_seconds,
        usage.gb_seconds,
        usage.output_bytes,
        usage.estimated_cost_usd,
    )


def test_a_handed_off_job_adds_the_lambda_probe_and_the_fargate_run(aws: Resources, tmp_path: Path, clip: Path):
    lambda_deps = worker_deps(aws, tmp_path, "lambda", LAMBDA_TIME_BUDGET_SECONDS="0.001")
    job = queued_job(lambda_deps, clip, [{"type": "mp4", "height": 144}])
    handed = process_job(job.id, lambda_deps, attempt()).job
    assert handed.long_job and handed.usage is not None and handed.usage.processing_seconds > 0
    assert today(aws).jobs_completed == 0  # not ended: nothing counted yet

    consumer_deps = worker_deps(aws, tmp_path, "consumer", long_jobs=False)
    done = process_job(job.id, consumer_deps, Attempt(deadline=attempt().deadline, compute=FARGATE_TASK)).job
    assert done.status is JobStatus.COMPLETED and done.usage is not None
    fargate_seconds = done.usage.processing_seconds - handed.usage.processing_seconds
    assert fargate_seconds > 0
    assert done.usage.gb_seconds == pytest.approx(handed.usage.gb_seconds + fargate_seconds * 8, abs=0.01)
    assert done.usage.estimated_cost_usd > handed.usage.estimated_cost_usd + FARGATE_TASK.cost(fargate_seconds) * 0.99
    assert today(aws).processing_seconds == done.usage.processing_seconds


def test_a_failed_job_counts_as_failed_with_the_time_it_took(aws: Resources, tmp_path: Path):
    deps = worker_deps(aws, tmp_path)
    garbage = tmp_path / "notes.mp4"
    garbage.write_text("not a video\n" * 100)
    failed = process_job(queued_job(deps, garbage, [{"type": "mp4", "height": 144}]).id, deps, attempt()).job
    assert failed.status is JobStatus.FAILED and failed.usage is not None
    assert failed.usage.output_bytes == 0 and failed.usage.processing_seconds > 0
    day = today(aws)
    assert (day.jobs_failed, day.jobs_completed, day.processing_seconds) == (1, 0, failed.usage.processing_seconds)


def submit_deps(aws: Resources) -> jobs.SubmitDeps:
    settings = SubmitSettings.from_env(aws.environment())
    return jobs.SubmitDeps(
        settings=settings,
        jobs=JobStore(client("dynamodb"), settings.jobs_table, settings.idempotency_table, ledger=ledger(aws)),
        objects=ObjectStore(client("s3")),
        queue=JobQueue(client("sqs"), settings.jobs_queue_url),
        ledger=ledger(aws),
        limits=TenantLimitStore(client("dynamodb"), settings.tenants_table, TenantLimits.defaults(settings)),
        pending_jobs=PendingJobs(client("dynamodb"), settings.tenants_table, settings.jobs_table),
        upload_bytes=DailyUploadBytes(client("dynamodb"), settings.tenants_table),
    )


def request(upload_id: str, **extra: object) -> CreateJobRequest:
    return CreateJobRequest.model_validate(
        {"input": {"upload_id": upload_id}, "outputs": [{"type": "mp4", "height": 360}], **extra}
    )


def test_a_dry_run_estimates_and_creates_nothing(aws: Resources, clip: Path):
    upload_id = "upl_" + "b" * 32
    client("s3").upload_file(str(clip), aws.buckets["uploads"], upload_key("t1", upload_id))
    deps = submit_deps(aws)

    answer = jobs.dry_run(request(upload_id, dry_run=True), "t1", deps)
    assert answer.estimate.route == "lambda" and answer.estimate.processing_seconds > 0
    assert client("dynamodb").scan(TableName=aws.tables["jobs"])["Count"] == 0
    assert client("dynamodb").scan(TableName=aws.tables["idempotency"])["Count"] == 0
    queued = client("sqs").receive_message(QueueUrl=aws.queues["jobs"].url, WaitTimeSeconds=0)
    assert "Messages" not in queued
    assert today(aws).jobs_submitted == 0

    # It checks what a submission checks: a missing upload is refused alike.
    with pytest.raises(ApiError) as refused:
        jobs.dry_run(request("upl_" + "c" * 32, dry_run=True), "t1", deps)
    assert refused.value.code == "upload_not_found"

    # A real submission counts the job and the upload's bytes on the day.
    job = jobs.submit_job(request(upload_id), "t1", None, deps)
    day = today(aws)
    assert (day.jobs_submitted, day.bytes_uploaded) == (
        1,
        clip.stat().st_size,
    ) and job.input_bytes == day.bytes_uploaded


def test_dry_run_is_not_part_of_the_idempotency_hash():
    upload_id = "upl_" + "b" * 32
    assert jobs.request_hash(request(upload_id)) == jobs.request_hash(request(upload_id, dry_run=False))


def status_deps(aws: Resources) -> jobs.StatusDeps:
    settings = StatusSettings.from_env(aws.environment())
    return jobs.StatusDeps(
        settings=settings, jobs=JobStore(client("dynamodb"), settings.jobs_table), objects=ObjectStore(client("s3")),
        ledger=ledger(aws),
        limits=TenantLimitStore(client("dynamodb"), settings.tenants_table, TenantLimits.defaults(settings)),
        counters=jobs.tenant_counters(client("dynamodb"), settings.tenants_table),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("first", "last", "problem"),
    [
        ("2026-01-01", "2026-04-03", f"at most {MAX_DAYS} days"),  # 93 days
        ("2026-02-30", "2026-03-01", "YYYY-MM-DD"),
        ("2026-03-02", "2026-03-01", "must not be before"),
    ],
)
def test_account_usage_refuses_bad_ranges_with_422(aws: Resources, first: str, last: str, problem: str):
    with pytest.raises(ApiError) as refused:
        jobs.account_usage("t1", first, last, status_deps(aws))
    assert (refused.value.status, refused.value.code) == (HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error")
    assert problem in refused.value.message


def test_account_usage_lists_every_day_with_zeros_and_the_totals(aws: Resources):
    end = utcnow().date()
    start = end - timedelta(days=MAX_DAYS - 1)
    ledger(aws)._add("t1", end, {"jobs_submitted": 2, "estimated_cost_usd": 0.25})
    ledger(aws)._add("t1", start, {"jobs_submitted": 1, "estimated_cost_usd": 0.125})
    ledger(aws)._add("t2", end, {"jobs_submitted": 7})  # another tenant's

    report = jobs.account_usage("t1", start.isoformat(), end.isoformat(), status_deps(aws))
    assert len(report.days) == MAX_DAYS and report.days[0].date == start.isoformat()
    assert [day.jobs_submitted for day in report.days if day.jobs_submitted] == [1, 2]
    assert (report.totals.jobs_submitted, report.totals.estimated_cost_usd) == (3, 0.375)
    settings = StatusSettings.from_env(aws.environment())
    assert report.limits == TenantLimits.defaults(settings)


def test_lists_show_whole_jobs_though_the_index_holds_only_keys_and_status(aws: Resources, tmp_path: Path, clip: Path):
    deps = worker_deps(aws, tmp_path)
    done = process_job(queued_job(deps, clip, [{"type": "mp4", "height": 144}]).id, deps, attempt()).job
    entry = client("dynamodb").query(
        TableName=aws.tables["jobs"],
        IndexName="by_tenant",
        KeyConditionExpression="tenant_id = :t",
        ExpressionAttributeValues={":t": {"S": "t1"}},
    )["Items"][0]
    assert set(entry) == {
        "id",
        "tenant_id",
        "created_key",
        "status",
        "priority",
    }  # no progress, no outputs: never rewritten

    [listed] = jobs.list_jobs("t1", 10, None, JobStatus.COMPLETED, status_deps(aws)).jobs
    assert (listed.id, listed.progress, listed.usage) == (done.id, 100, done.usage)
    assert listed.outputs[0].size_bytes == done.outputs[0].size_bytes
