"""The counts behind the 429s (pending jobs, upload bytes per UTC day, open streams), under concurrency,
retries and replays, against moto's DynamoDB."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest

from infra.local.resources import Resources
from tests.integration.test_submit import REQUEST, make_deps, put_upload
from videojobs.aws import client, events_client
from videojobs.errors import ApiError, LimitReached
from videojobs.event_bus import EventBus
from videojobs.models import CreateUploadRequest, Job, JobStatus
from videojobs.notification_store import ConnectionStore, DeliveryLedger, EndpointStore, EventLog
from videojobs.queues import DeliveryQueue
from videojobs.service import fanout, jobs
from videojobs.tenant_counters import (
    ORPHAN_AFTER,
    PENDING_RETRY_AFTER_SECONDS,
    PRUNE_EVERY,
    DailyUploadBytes,
    OpenStreams,
    PendingJobs,
    StreamLease,
)

TENANT = "t1"


def race(count: int, attempt: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``attempt(i)`` in ``count`` threads released at once; their results and errors."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results.append(attempt(index))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def notify_deps(aws: Resources) -> fanout.NotifyDeps:
    dynamodb = client("dynamodb")
    return fanout.NotifyDeps(
        events=EventLog(dynamodb, aws.tables["job_events"]),
        ledger=DeliveryLedger(dynamodb, aws.tables["webhook_deliveries"]),
        deliveries=DeliveryQueue(client("sqs"), aws.queues["deliveries"].url),
        connections=ConnectionStore(dynamodb, aws.tables["ws_connections"]),
        sockets=boto3.client("apigatewaymanagementapi", endpoint_url="https://unused.example.com"),
        endpoints=EndpointStore(dynamodb, aws.tables["webhook_endpoints"]),
        endpoint_ledger=DeliveryLedger(dynamodb, aws.tables["endpoint_deliveries"], by_endpoint=True),
        bus=EventBus(events_client(), aws.event_bus),
        pending_jobs=PendingJobs(dynamodb, aws.tables["tenants"]),
        open_streams=OpenStreams(dynamodb, aws.tables["tenants"]),
    )


def stream_change(aws: Resources, old: Job, new: Job) -> None:
    """The jobs table's stream record of this change, handled by notify."""
    fanout.handle_change(old.model_dump(mode="json"), new.model_dump(mode="json"), notify_deps(aws))


# --- pending jobs -------------------------------------------------------------------------------------------


def test_racing_submits_never_pass_max_pending_jobs(aws: Resources) -> None:
    put_upload(aws, 10)
    deps = make_deps(aws)
    deps.limits.set_limits(TENANT, max_pending_jobs=3)
    submitted, errors = race(10, lambda _: jobs.submit_job(REQUEST, TENANT, None, deps))
    assert len(submitted) == 3
    assert len(errors) == 7 and all(isinstance(error, LimitReached) for error in errors)
    refused = errors[0]
    assert isinstance(refused, LimitReached)
    assert (refused.status, refused.code) == (HTTPStatus.TOO_MANY_REQUESTS, "quota_exceeded")
    assert refused.headers == {"Retry-After": str(PENDING_RETRY_AFTER_SECONDS)}
    assert "max_pending_jobs of 3" in refused.message and "you have 3 jobs queued or processing" in refused.message
    assert deps.pending_jobs.count(TENANT) == 3
    assert deps.pending_jobs.count("another") == 0


def test_a_replayed_key_at_the_limit_gets_its_job_and_counts_once(aws: Resources) -> None:
    put_upload(aws, 10)
    deps = make_deps(aws)
    deps.limits.set_limits(TENANT, max_pending_jobs=1)
    first = jobs.submit_job(REQUEST, TENANT, "key-1", deps)
    again, errors = race(4, lambda _: jobs.submit_job(REQUEST, TENANT, "key-1", deps))
    assert errors == [] and {job.id for job in again} == {first.id}
    assert deps.pending_jobs.count(TENANT) == 1
    with pytest.raises(LimitReached):
        jobs.submit_job(REQUEST, TENANT, "key-2", deps)


def test_every_terminal_status_frees_its_slot_once_even_when_the_stream_replays(aws: Resources) -> None:
    put_upload(aws, 10)
    deps = make_deps(aws)
    deps.limits.set_limits(TENANT, max_pending_jobs=2)
    first = jobs.submit_job(REQUEST, TENANT, None, deps)
    jobs.submit_job(REQUEST, TENANT, None, deps)
    with pytest.raises(LimitReached):
        jobs.submit_job(REQUEST, TENANT, None, deps)
    old = deps.jobs.get(first.id, consistent=True)
    new = deps.jobs.cancel_queued(first.id)
    assert old is not None and new is not None and new.status == JobStatus.CANCELLED
    for _ in range(3):  # at-least-once: the same stream record, three times
        stream_change(aws, old, new)
    assert deps.pending_jobs.count(TENANT) == 1
    jobs.submit_job(REQUEST, TENANT, None, deps)
    assert deps.pending_jobs.count(TENANT) == 2


def test_a_job_that_could_not_be_queued_frees_its_slot_when_it_fails(aws: Resources) -> None:
    from tests.integration.test_submit import DownQueue

    put_upload(aws, 10)
    deps = make_deps(aws, queue=DownQueue())
    with pytest.raises(ApiError):
        jobs.submit_job(REQUEST, TENANT, None, deps)
    [job_id] = PendingJobs(client("dynamodb"), aws.tables["tenants"]).slots.job_ids(TENANT)
    job = deps.jobs.get(job_id, consistent=True)
    assert job is not None and job.status == JobStatus.FAILED
    stream_change(aws, job.model_copy(update={"status": JobStatus.QUEUED}), job)
    assert deps.pending_jobs.count(TENANT) == 0


def test_members_of_ended_or_never_stored_jobs_are_pruned_before_a_refusal(aws: Resources) -> None:
    """A missed release (a stream record past its retries) or a submit that died after reserving must not
    hold a slot for good."""
    put_upload(aws, 10)
    now = [datetime.now(UTC).timestamp()]
    deps = make_deps(aws)
    pending = PendingJobs(client("dynamodb"), aws.tables["tenants"], aws.tables["jobs"], clock=lambda: now[0])
    deps = deps.__class__(**{**deps.__dict__, "pending_jobs": pending})
    deps.limits.set_limits(TENANT, max_pending_jobs=2)
    ended = jobs.submit_job(REQUEST, TENANT, None, deps)
    deps.jobs.cancel_queued(ended.id)  # its stream record never reaches notify
    pending.reserve(TENANT, "job_died", datetime.fromtimestamp(now[0], UTC), 2)  # a submit that died here
    jobs.submit_job(REQUEST, TENANT, None, deps)  # at the limit: the ended job is pruned, which makes room
    assert pending.count(TENANT) == 2
    with pytest.raises(LimitReached):  # the reservation without a job may be a submit still in flight
        jobs.submit_job(REQUEST, TENANT, None, deps)
    now[0] += ORPHAN_AFTER.total_seconds() + PRUNE_EVERY.total_seconds()
    jobs.submit_job(REQUEST, TENANT, None, deps)  # now it is taken for an orphan
    assert pending.count(TENANT) == 2


# --- upload bytes per UTC day -------------------------------------------------------------------------------


def test_racing_uploads_never_pass_the_days_bytes_and_retry_after_is_midnight_utc(aws: Resources) -> None:
    counter = DailyUploadBytes(client("dynamodb"), aws.tables["tenants"])
    now = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    admitted, errors = race(8, lambda _: counter.reserve(TENANT, 300, 1000, now))
    assert len(admitted) == 3 and len(errors) == 5
    assert counter.used(TENANT, now) == 900
    refused = errors[0]
    assert isinstance(refused, LimitReached)
    assert refused.headers == {"Retry-After": "3600"}
    assert "900 bytes declared by uploads today (UTC), and this one declares 300" in refused.message
    counter.reserve(TENANT, 300, 1000, now + timedelta(hours=1))  # a new UTC day


def test_post_uploads_counts_the_declared_size_against_the_day(aws: Resources) -> None:
    deps = make_deps(aws)
    deps.limits.set_limits(TENANT, max_upload_bytes_per_day=150)
    request = CreateUploadRequest(filename="a.mp4", content_type="video/mp4", size_bytes=100)
    jobs.create_upload(request, TENANT, deps)
    with pytest.raises(LimitReached) as refused:
        jobs.create_upload(request, TENANT, deps)
    assert refused.value.code == "quota_exceeded" and "max_upload_bytes_per_day of 150" in refused.value.message
    jobs.create_upload(request.model_copy(update={"size_bytes": 50}), TENANT, deps)
    jobs.create_upload(request, "another", deps)


# --- open streams -------------------------------------------------------------------------------------------


def test_racing_streams_never_pass_max_open_streams_and_release_frees_one(aws: Resources) -> None:
    streams = OpenStreams(client("dynamodb"), aws.tables["tenants"])
    leases, errors = race(8, lambda index: streams.acquire(TENANT, f"s{index}", 3, 30))
    assert len(leases) == 3 and len(errors) == 5
    assert all(isinstance(error, LimitReached) and error.code == "too_many_streams" for error in errors)
    assert streams.count(TENANT) == 3
    streams.release(leases[0])
    streams.release(leases[0])  # idempotent
    assert streams.count(TENANT) == 2
    streams.acquire(TENANT, "again", 3, 30)
    with pytest.raises(LimitReached):
        streams.acquire(TENANT, "one-more", 3, 30)


def test_a_stream_whose_holder_vanished_stops_counting_at_its_expiry(aws: Resources) -> None:
    now = [1_000_000.0]
    streams = OpenStreams(client("dynamodb"), aws.tables["tenants"], clock=lambda: now[0])
    streams.acquire(TENANT, "killed-poll", 1, 30)  # never released
    with pytest.raises(LimitReached) as refused:
        streams.acquire(TENANT, "next", 1, 30)
    assert refused.value.headers == {"Retry-After": "30"}
    now[0] += 30
    lease = streams.acquire(TENANT, "next", 1, 30)
    assert lease == StreamLease(TENANT, "next") and streams.count(TENANT) == 1
