"""Submission rules that HTTP tests cannot easily provoke: an upload over the limit, a queue that is down."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from infra.local.resources import Resources
from videojobs.aws import client
from videojobs.errors import ApiError
from videojobs.job_store import JobStore
from videojobs.models import CreateJobRequest, JobStatus
from videojobs.object_store import ObjectStore, upload_key
from videojobs.queues import JobQueue
from videojobs.service import jobs
from videojobs.settings import SubmitSettings

UPLOAD_ID = "upl_" + "a" * 32


class DownQueue:
    def send(self, message) -> None:
        raise ConnectionError("SQS is unreachable")


def make_deps(aws: Resources, queue=None, **settings) -> jobs.SubmitDeps:
    config = SubmitSettings.from_env({**aws.environment(), **settings})
    return jobs.SubmitDeps(
        settings=config,
        jobs=JobStore(client("dynamodb"), config.jobs_table, config.idempotency_table),
        objects=ObjectStore(client("s3")),
        queue=queue or JobQueue(client("sqs"), config.jobs_queue_url),
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
    messages = client("sqs").receive_message(QueueUrl=aws.queues["jobs"].url, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in messages] == [f'{{"job_id":"{job.id}"}}']


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
