"""GET /jobs as DynamoDB and Lambda bound it: filtered pages read a bounded number of jobs, and a page of jobs
with many outputs stays under Lambda's 6 MB response limit whatever the credentials' session token."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from infra.local.resources import Resources
from videojobs.aws import client, reset_clients
from videojobs.job_store import MAX_FILTERED_READS, MAX_PAGE_SIZE, JobStore
from videojobs.models import Job, JobStatus, StoredOutput, utcnow
from videojobs.object_store import ObjectStore
from videojobs.service import jobs
from videojobs.settings import StatusSettings
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.usage import UsageLedger

LAMBDA_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024
AWS_SESSION_TOKEN_LENGTH = 1_200  # what a Lambda role's session token is in AWS (moto's is 7 characters)


class CountingClient:
    """A DynamoDB client that counts the queries made and the items they read."""

    def __init__(self, inner: Any):
        self._inner = inner
        self.queries = 0
        self.scanned = 0

    def query(self, **request: Any) -> dict[str, Any]:
        page = self._inner.query(**request)
        self.queries += 1
        self.scanned += page.get("ScannedCount", 0)
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def store_jobs(aws: Resources, statuses: list[JobStatus], outputs: list[StoredOutput] | None = None) -> list[str]:
    """Jobs of tenant t1, oldest first, written 25 at a time; returns their ids."""
    start = utcnow() - timedelta(days=1)
    items = []
    for index, status in enumerate(statuses):
        created = start + timedelta(seconds=index)
        job = Job(
            id=f"job_{index:04d}",
            tenant_id="t1",
            status=status,
            created_at=created,
            updated_at=created,
            upload_id="upl_x",
            input_key="uploads/t1/upl_x",
            outputs=outputs or [StoredOutput(spec={"type": "mp4", "height": 360})],
        )
        items.append(JobStore._job_item(job))
    dynamodb = client("dynamodb")
    for offset in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[offset : offset + 25]]
        dynamodb.batch_write_item(RequestItems={aws.tables["jobs"]: batch})
    return [f"job_{index:04d}" for index in range(len(statuses))]


def deps(aws: Resources, dynamodb: Any = None) -> jobs.StatusDeps:
    settings = StatusSettings.from_env(aws.environment())
    return jobs.StatusDeps(
        settings=settings,
        jobs=JobStore(dynamodb or client("dynamodb"), settings.jobs_table),
        objects=ObjectStore(client("s3")),
        ledger=UsageLedger(client("dynamodb"), settings.usage_table),
        limits=TenantLimitStore(client("dynamodb"), settings.tenants_table, TenantLimits.defaults(settings)),
        counters=jobs.tenant_counters(client("dynamodb"), settings.tenants_table),
    )


def test_a_filtered_page_reads_a_bounded_number_of_jobs_and_paging_still_finds_every_match(aws: Resources):
    # Two failed jobs, the oldest, under more completed ones than one request may read.
    ids = store_jobs(aws, [JobStatus.FAILED] * 2 + [JobStatus.COMPLETED] * (MAX_FILTERED_READS + 20))
    counting = CountingClient(client("dynamodb"))
    found: list[str] = []
    cursor = None
    pages = 0
    while True:
        counting.queries = counting.scanned = 0
        page = jobs.list_jobs("t1", 20, cursor, JobStatus.FAILED, deps(aws, counting))
        pages += 1
        assert counting.scanned <= MAX_FILTERED_READS and counting.queries <= 10
        found += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
        assert pages < 10
    assert pages > 1  # the first page came back short, with a cursor
    assert found == [ids[1], ids[0]]


def test_a_filtered_page_cut_mid_read_resumes_where_it_stopped(aws: Resources):
    statuses = [JobStatus.COMPLETED if index % 2 else JobStatus.FAILED for index in range(40)]
    ids = store_jobs(aws, statuses)
    expected = [job_id for job_id, status in zip(ids, statuses, strict=True) if status is JobStatus.COMPLETED][::-1]
    found: list[str] = []
    cursor = None
    while True:
        page = jobs.list_jobs("t1", 7, cursor, JobStatus.COMPLETED, deps(aws))
        assert len(page.jobs) <= 7
        found += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert found == expected


def test_a_page_of_jobs_with_many_outputs_fits_in_a_lambda_response(aws: Resources, monkeypatch: pytest.MonkeyPatch):
    """Every output URL is a presigned GET carrying the session token (~1,200 characters in AWS): listed,
    a few jobs with a thousand thumbnails each are over 6 MB, a full page of them ~170 MB. List items have
    no URLs."""
    monkeypatch.setenv("AWS_SESSION_TOKEN", "T" * AWS_SESSION_TOKEN_LENGTH)
    reset_clients()
    thumbnails = StoredOutput(
        spec={"type": "thumbnails", "count": 100},
        keys=[f"outputs/t1/job/thumb-{index:03d}.jpg" for index in range(100)],
        size_bytes=100 * 5000,
        content_type="image/jpeg",
    )
    ids = store_jobs(aws, [JobStatus.COMPLETED] * 5, outputs=[thumbnails] * 10)
    page = jobs.list_jobs("t1", MAX_PAGE_SIZE, None, None, deps(aws))
    assert len(page.jobs) == 5
    assert len(page.model_dump_json()) < LAMBDA_RESPONSE_LIMIT_BYTES
    assert all(output.url is None and "urls" not in (output.model_extra or {}) for output in page.jobs[0].outputs)
    # One job read on its own has its URLs, and fits too.
    single = jobs.get_job(ids[0], "t1", deps(aws))
    urls = [url for output in single.outputs for url in (output.model_extra or {})["urls"]]
    assert len(urls) == 1000 and "T" * AWS_SESSION_TOKEN_LENGTH in urls[0]
    assert len(json.dumps(single.model_dump(mode="json"))) < LAMBDA_RESPONSE_LIMIT_BYTES
