"""Submission rules that HTTP tests cannot easily provoke: an upload over the limit, a queue that is down."""

from __future__ import annotations

import threading
from http import HTTPStatus

import pytest

from infra.local.atomic_dynamodb import emulate, transaction_conflicts
from infra.local.resources import Resources
from videojobs.aws import client
from videojobs.errors import ApiError
from videojobs.job_store import JobStore
from videojobs.models import CreateJobRequest, JobStatus
from videojobs.object_store import ObjectStore, upload_key
from videojobs.queues import JobQueue
from videojobs.service import jobs
from videojobs.settings import StatusSettings, SubmitSettings
from videojobs.tenant_counters import DailyUploadBytes, PendingJobs
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.usage import UsageLedger

UPLOAD_ID = "upl_" + "a" * 32


class DownQueue:
    def send(self, message, **_) -> None:
        raise ConnectionError("SQS is unreachable")


def make_deps(aws: Resources, queue=None, **settings) -> jobs.SubmitDeps:
    config = SubmitSettings.from_env({**aws.environment(), **settings})
    dynamodb = client("dynamodb")
    return jobs.SubmitDeps(
        settings=config,
        jobs=JobStore(dynamodb, config.jobs_table, config.idempotency_table),
        objects=ObjectStore(client("s3")),
        queue=queue or JobQueue(client("sqs"), config.jobs_queue_url),
        ledger=UsageLedger(client("dynamodb"), config.usage_table),
        limits=TenantLimitStore(dynamodb, config.tenants_table, TenantLimits.defaults(config)),
        pending_jobs=PendingJobs(dynamodb, config.tenants_table, config.jobs_table),
        upload_bytes=DailyUploadBytes(dynamodb, config.tenants_table),
    )


def put_upload(aws: Resources, size: int) -> None:
    client("s3").put_object(Bucket=aws.buckets["uploads"], Key=upload_key("t1", UPLOAD_ID), Body=b"x" * size)


REQUEST = CreateJobRequest.model_validate(
    {"input": {"upload_id": UPLOAD_ID}, "outputs": [{"type": "mp4", "height": 360}]}
)


def test_an_upload_larger_than_allowed_is_refused_even_if_s3_accepted_it(aws: Resources):
    put_upload(aws, 2048)
    with pytest.raises(ApiError) as refused:
        jobs.submit_job(REQUEST, "t1", None, make_deps(aws, MAX_UPLOAD_BYTES="1024"))
    assert (refused.value.status, refused.value.code) == (HTTPStatus.UNPROCESSABLE_ENTITY, "upload_too_large")


def test_submit_sends_exactly_one_message_naming_the_job(aws: Resources):
    put_upload(aws, 10)
    job = jobs.submit_job(REQUEST, "t1", None, make_deps(aws))
    messages = client("sqs").receive_message(
        QueueUrl=aws.queues["jobs"].url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
    )["Messages"]
    assert [message["Body"] for message in messages] == [f'{{"job_id":"{job.id}"}}']
    # The tenant as message group: what makes the standard queue an SQS fair queue.
    assert messages[0]["Attributes"]["MessageGroupId"] == "t1"


def test_a_job_that_cannot_be_queued_is_failed_and_its_key_freed(aws: Resources):
    put_upload(aws, 10)
    with pytest.raises(ApiError) as refused:
        jobs.submit_job(REQUEST, "t1", "key-1", make_deps(aws, queue=DownQueue()))
    assert (refused.value.status, refused.value.code) == (HTTPStatus.SERVICE_UNAVAILABLE, "service_unavailable")
    [stored] = JobStore(client("dynamodb"), aws.tables["jobs"]).list_for_tenant("t1", limit=10)[0]
    assert (stored.status, stored.error.code) == (JobStatus.FAILED, "service_unavailable")

    # The client's retry with the same key creates a new job that does get queued.
    retried = jobs.submit_job(REQUEST, "t1", "key-1", make_deps(aws))
    assert retried.id != stored.id and retried.status == JobStatus.QUEUED


def status_deps(aws: Resources) -> jobs.StatusDeps:
    config = StatusSettings.from_env(aws.environment())
    return jobs.StatusDeps(
        settings=config,
        jobs=JobStore(client("dynamodb"), config.jobs_table),
        objects=ObjectStore(client("s3")),
        ledger=UsageLedger(client("dynamodb"), config.usage_table),
        limits=TenantLimitStore(client("dynamodb"), config.tenants_table, TenantLimits.defaults(config)),
        counters=jobs.tenant_counters(client("dynamodb"), config.tenants_table),
    )


def test_a_job_is_readable_right_after_the_202_even_while_reads_lag(aws: Resources):
    """DynamoDB may answer an eventually consistent GetItem from before the write: GET /jobs/{id} right after
    the 202 must still find the job (the list, a GSI query, may lag: the README says so)."""
    put_upload(aws, 10)
    with emulate(stale_read_seconds=60):
        job = jobs.submit_job(REQUEST, "t1", None, make_deps(aws))
        assert jobs.get_job(job.id, "t1", status_deps(aws)).id == job.id
        # The emulation is on: the index does not show the job yet.
        assert jobs.list_jobs("t1", 10, None, None, status_deps(aws)).jobs == []


def test_racing_submits_with_one_key_all_answer_the_same_job(aws: Resources):
    """DynamoDB cancels a transaction on items another one is writing (TransactionConflict), and the loser
    cannot see the winner's record yet: it must retry, not answer 500."""
    put_upload(aws, 10)
    racers = 6
    barrier = threading.Barrier(racers)
    answers: list[str] = []
    errors: list[BaseException] = []
    deps = make_deps(aws)

    def race() -> None:
        barrier.wait()
        try:
            answers.append(jobs.submit_job(REQUEST, "t1", "same-key", deps).id)
        except BaseException as error:
            errors.append(error)

    conflicts_before = transaction_conflicts()
    with emulate(transaction_seconds=0.1):
        threads = [threading.Thread(target=race) for _ in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert transaction_conflicts() > conflicts_before  # the race did happen
    assert errors == [] and len(answers) == racers and len(set(answers)) == 1
    messages = client("sqs").receive_message(QueueUrl=aws.queues["jobs"].url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
