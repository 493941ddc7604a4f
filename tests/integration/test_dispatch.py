"""Claiming in turn (videojobs/dispatch.py): a tenant's max_active_jobs, and priority within a tenant, on moto."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from functions.process import handler as process_handler
from infra.local.resources import Resources
from tests.integration.workers import TENANT, context, delivered, sqs_event, worker_deps
from videojobs.aws import client
from videojobs.dispatch import ActiveJobs, Deferred, Dispatch, claim_in_turn
from videojobs.ids import new_job_id, new_upload_id
from videojobs.job_store import JobStore
from videojobs.models import ErrorDetail, Job, JobStatus, Priority, StoredOutput, utcnow
from videojobs.settings import WorkerSettings
from videojobs.tenant_limits import TenantLimits, TenantLimitStore

LEASE = timedelta(seconds=60)


@pytest.fixture
def jobs(aws: Resources) -> JobStore:
    return JobStore(client("dynamodb"), aws.tables["jobs"])


def dispatch(aws: Resources, jobs: JobStore, **settings: str) -> Dispatch:
    return Dispatch.from_settings(WorkerSettings.from_env({**aws.environment(), **settings}), client("dynamodb"), jobs)


def set_max_active(aws: Resources, tenant: str, limit: int) -> None:
    defaults = TenantLimits.defaults(WorkerSettings.from_env(aws.environment()))
    TenantLimitStore(client("dynamodb"), aws.tables["tenants"], defaults).set_limits(tenant, max_active_jobs=limit)


def queued(jobs: JobStore, tenant: str = "acme", priority: Priority = Priority.NORMAL) -> Job:
    now = utcnow()
    return jobs.create(
        Job(
            id=new_job_id(),
            tenant_id=tenant,
            created_at=now,
            updated_at=now,
            upload_id=new_upload_id(),
            input_key="in",
            outputs=[StoredOutput(spec={"type": "mp4", "height": 360})],
            priority=priority,
        )
    )


def test_a_tenant_at_max_active_jobs_is_deferred_until_a_job_ends(aws: Resources, jobs: JobStore) -> None:
    set_max_active(aws, "acme", 2)
    turn = dispatch(aws, jobs)
    first, second, third = queued(jobs), queued(jobs), queued(jobs)
    other_tenant = queued(jobs, tenant="other")

    assert claim_in_turn(first.id, "w1", LEASE, turn) is not None
    assert claim_in_turn(second.id, "w2", LEASE, turn) is not None
    with pytest.raises(Deferred) as deferred:
        claim_in_turn(third.id, "w3", LEASE, turn)
    assert deferred.value.job.status is JobStatus.QUEUED and deferred.value.seconds > 0
    current = jobs.get(third.id, consistent=True)
    assert current is not None and current.status is JobStatus.QUEUED and current.attempts == 0  # nothing spent
    assert claim_in_turn(other_tenant.id, "w4", LEASE, turn) is not None  # the limit is per tenant

    jobs.complete(first.id, "w1", [])
    turn.active.release("acme", first.id)
    assert claim_in_turn(third.id, "w3", LEASE, turn) is not None
    assert turn.active.job_ids("acme") == {second.id, third.id}


def test_a_reclaim_after_a_worker_died_keeps_the_jobs_slot(aws: Resources, jobs: JobStore) -> None:
    set_max_active(aws, "acme", 1)
    turn = dispatch(aws, jobs)
    job = queued(jobs)
    assert claim_in_turn(job.id, "dead", timedelta(seconds=-1), turn) is not None  # its lease ran out at once

    reclaimed = claim_in_turn(job.id, "w2", LEASE, turn)

    assert reclaimed is not None and reclaimed.lease_owner == "w2"
    assert turn.active.job_ids("acme") == {job.id}


def test_a_full_tenant_frees_the_slots_of_jobs_that_ended_elsewhere(aws: Resources, jobs: JobStore) -> None:
    set_max_active(aws, "acme", 1)
    turn = dispatch(aws, jobs)
    abandoned, waiting = queued(jobs), queued(jobs)
    assert claim_in_turn(abandoned.id, "dead", timedelta(seconds=-1), turn) is not None
    # The dead-letter handler fails it; it holds no worker to release its slot.
    assert jobs.fail_abandoned(abandoned.id, ErrorDetail(code="processing_failed", message="x")) is not None

    assert claim_in_turn(waiting.id, "w2", LEASE, turn) is not None
    assert turn.active.job_ids("acme") == {waiting.id}


def test_the_slot_and_the_claim_are_one_write(aws: Resources, jobs: JobStore) -> None:
    set_max_active(aws, "acme", 1)
    turn = dispatch(aws, jobs)
    finished = queued(jobs)
    jobs.cancel_queued(finished.id)

    assert claim_in_turn(finished.id, "w1", LEASE, turn) is None
    assert turn.active.job_ids("acme") == set()  # a claim that failed took no slot


def test_a_queued_job_waits_for_its_tenants_more_urgent_jobs(aws: Resources, jobs: JobStore) -> None:
    turn = dispatch(aws, jobs)
    low, normal, high = queued(jobs, priority=Priority.LOW), queued(jobs), queued(jobs, priority=Priority.HIGH)
    other_low = queued(jobs, tenant="other", priority=Priority.LOW)

    for waiting in (low, normal):
        with pytest.raises(Deferred):
            claim_in_turn(waiting.id, "w", LEASE, turn)
    assert claim_in_turn(other_low.id, "w", LEASE, turn) is not None  # priority never reorders tenants
    assert claim_in_turn(high.id, "w", LEASE, turn) is not None
    with pytest.raises(Deferred):
        claim_in_turn(low.id, "w", LEASE, turn)
    assert claim_in_turn(normal.id, "w", LEASE, turn) is not None
    assert claim_in_turn(low.id, "w", LEASE, turn) is not None


def test_a_job_that_waited_past_the_aging_limit_goes_in_arrival_order(aws: Resources, jobs: JobStore) -> None:
    turn = dispatch(aws, jobs, PRIORITY_AGING_SECONDS="0")
    low = queued(jobs, priority=Priority.LOW)
    queued(jobs, priority=Priority.HIGH)

    assert claim_in_turn(low.id, "w", LEASE, turn) is not None


def test_priority_changes_only_while_queued(aws: Resources, jobs: JobStore) -> None:
    turn = dispatch(aws, jobs)
    job, high = queued(jobs), queued(jobs, priority=Priority.HIGH)

    changed = jobs.set_priority(job.id, "acme", Priority.HIGH)

    assert changed is not None and changed.priority is Priority.HIGH and changed.version == job.version + 1
    assert jobs.set_priority(job.id, "other", Priority.LOW) is None  # another tenant's job
    assert claim_in_turn(job.id, "w", LEASE, turn) is not None  # no longer behind a more urgent job
    assert jobs.set_priority(job.id, "acme", Priority.LOW) is None
    assert jobs.has_more_urgent_queued("acme", Priority.LOW) is True  # `high` is still queued
    assert claim_in_turn(high.id, "w", LEASE, turn) is not None
    assert jobs.has_more_urgent_queued("acme", Priority.LOW) is False


def test_the_active_set_is_per_tenant_and_release_is_idempotent(aws: Resources) -> None:
    active = ActiveJobs(client("dynamodb"), aws.tables["tenants"])
    active.release("acme", "job_never_held")
    assert active.job_ids("acme") == set()


def test_a_deferred_delivery_is_a_fresh_message_so_waiting_never_nears_the_dead_letter_queue(
    aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = worker_deps(aws, tmp_path, AT_LIMIT_RETRY_SECONDS="1")
    monkeypatch.setattr(process_handler, "get_deps", lambda: deps)
    set_max_active(aws, TENANT, 1)
    assert deps.dispatch is not None
    busy, waiting = queued(deps.jobs, tenant=TENANT), queued(deps.jobs, tenant=TENANT)
    assert claim_in_turn(busy.id, "other-worker", LEASE, deps.dispatch) is not None
    record = delivered(aws, waiting.id)
    sqs, queue = client("sqs"), aws.queues["jobs"]

    result = process_handler.lambda_handler(sqs_event(record), context())

    assert result == {"batchItemFailures": []}  # this delivery is done: the event source deletes it
    sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=record["receiptHandle"])
    [again] = sqs.receive_message(
        QueueUrl=queue.url, WaitTimeSeconds=5, MessageSystemAttributeNames=["All"], VisibilityTimeout=30
    )["Messages"]
    assert json.loads(again["Body"]) == {"job_id": waiting.id, "deferrals": 1}  # the next wait is longer
    assert again["Attributes"]["ApproximateReceiveCount"] == "1"  # a fresh message: its count starts again
    assert again["Attributes"]["MessageGroupId"] == TENANT
    current = deps.jobs.get(waiting.id, consistent=True)
    assert current is not None and (current.status, current.attempts) == (JobStatus.QUEUED, 0)


def test_every_tenants_table_item_stays_small_as_the_tenant_runs_more_jobs(aws: Resources, jobs: JobStore) -> None:
    """Each write costs write units for its whole item (1 per KB): the records a claim or a submit writes must
    not grow with the tenant's job count, or one big tenant passes a partition's write limit (README
    "Capacity")."""
    from infra.local.atomic_dynamodb import emulate
    from tools.capacity import item_size
    from videojobs.tenant_counters import PendingJobs

    count = 40  # the sets of the old design passed 1 KB at about 25 jobs
    set_max_active(aws, "acme", 1000)
    turn = dispatch(aws, jobs)
    pending = PendingJobs(client("dynamodb"), aws.tables["tenants"])
    with emulate(transaction_seconds=0):  # no racing here: do not hold each transaction
        for _ in range(count):
            job = queued(jobs)
            pending.reserve("acme", job.id, job.created_at, 1000)
            assert claim_in_turn(job.id, "w", LEASE, turn) is not None

    assert pending.count("acme") == count and len(turn.active.job_ids("acme")) == count
    items = client("dynamodb").scan(TableName=aws.tables["tenants"])["Items"]
    assert max(item_size(item) for item in items) < 1024
