"""The job state machine as conditional writes, against moto's DynamoDB."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from infra.local.resources import Resources
from videojobs.aws import client
from videojobs.job_store import IdempotencyConflict, IdempotencyKey, JobStore
from videojobs.models import ErrorDetail, Job, JobStatus, StoredOutput, utcnow

LEASE = timedelta(seconds=60)


@pytest.fixture
def store(aws: Resources) -> JobStore:
    return JobStore(client("dynamodb"), aws.tables["jobs"], aws.tables["idempotency"])


def new_job(job_id: str = "job_1", tenant: str = "t1") -> Job:
    now = utcnow()
    return Job(
        id=job_id,
        tenant_id=tenant,
        created_at=now,
        updated_at=now,
        upload_id="upl_x",
        input_key="uploads/t1/upl_x",
        outputs=[StoredOutput(spec={"type": "mp4", "height": 360})],
    )


def test_every_change_bumps_the_version(store: JobStore):
    store.create(new_job())
    claimed = store.claim("job_1", "w1", LEASE)
    assert (claimed.status, claimed.version, claimed.attempts, claimed.lease_owner) == ("processing", 2, 1, "w1")
    assert store.record_progress("job_1", "w1", 40, LEASE).version == 3
    done = store.complete("job_1", "w1", [StoredOutput(spec={"type": "mp4"}, key="k", size_bytes=1)])
    assert (done.status, done.progress, done.version, done.lease_owner) == ("completed", 100, 4, None)


def test_a_held_job_cannot_be_claimed_by_a_second_worker(store: JobStore):
    store.create(new_job())
    assert store.claim("job_1", "w1", LEASE) is not None
    assert store.claim("job_1", "w2", LEASE) is None
    assert store.record_progress("job_1", "w2", 50, LEASE) is None
    assert store.complete("job_1", "w2", []) is None
    assert store.get("job_1").lease_owner == "w1"


def test_an_expired_lease_can_be_reclaimed_and_the_old_worker_loses_it(store: JobStore):
    store.create(new_job())
    store.claim("job_1", "w1", timedelta(seconds=-1))  # already expired: the worker died
    reclaimed = store.claim("job_1", "w2", LEASE)
    assert (reclaimed.lease_owner, reclaimed.attempts) == ("w2", 2)
    assert store.complete("job_1", "w1", []) is None
    assert store.complete("job_1", "w2", []).status == JobStatus.COMPLETED


def test_only_one_of_many_racing_workers_claims_the_job(store: JobStore):
    store.create(new_job())
    winners = []
    barrier = threading.Barrier(8)

    def race(worker: str) -> None:
        barrier.wait()
        if store.claim("job_1", worker, LEASE) is not None:
            winners.append(worker)

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_finished_jobs_never_change_again(store: JobStore):
    store.create(new_job())
    store.claim("job_1", "w1", LEASE)
    store.complete("job_1", "w1", [])
    error = ErrorDetail(code="processing_failed", message="late")
    assert store.fail("job_1", error) is None
    assert store.fail("job_1", error, "w1") is None
    assert store.claim("job_1", "w2", timedelta(seconds=-1)) is None
    assert store.get("job_1").status == JobStatus.COMPLETED


def test_a_queued_job_can_be_failed_without_a_worker(store: JobStore):
    store.create(new_job())
    failed = store.fail("job_1", ErrorDetail(code="processing_failed", message="dead letter"))
    assert (failed.status, failed.error.code, failed.version) == ("failed", "processing_failed", 2)


def test_idempotency_key_returns_the_first_job_and_rejects_another_body(store: JobStore):
    key = IdempotencyKey("t1", "k", "hash-a")
    assert store.create(new_job("job_1"), key).id == "job_1"
    assert store.create(new_job("job_2"), key).id == "job_1"
    assert store.get("job_2") is None
    with pytest.raises(IdempotencyConflict):
        store.create(new_job("job_3"), IdempotencyKey("t1", "k", "hash-b"))
    # Another tenant's identical key is another key.
    assert store.create(new_job("job_4", tenant="t2"), IdempotencyKey("t2", "k", "hash-a")).id == "job_4"


def test_listing_is_per_tenant_newest_first_with_cursors(store: JobStore):
    for index in range(5):
        store.create(new_job(f"job_{index}", tenant="t1"))
    store.create(new_job("job_other", tenant="t2"))
    first, cursor = store.list_for_tenant("t1", limit=3)
    second, end = store.list_for_tenant("t1", limit=3, cursor=cursor)
    assert [job.id for job in first + second] == [f"job_{index}" for index in reversed(range(5))]
    assert end is None
    # A cursor made for one tenant never pages another's jobs.
    assert store.list_for_tenant("t2", limit=10, cursor=cursor)[0] == []


def test_metadata_numbers_come_back_as_numbers(store: JobStore):
    job = new_job().model_copy(update={"metadata": {"ratio": 1.5, "count": 3, "nested": [{"x": 0.25}]}})
    store.create(job)
    assert store.get("job_1").metadata == {"ratio": 1.5, "count": 3, "nested": [{"x": 0.25}]}
