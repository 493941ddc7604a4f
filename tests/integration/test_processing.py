"""The worker against moto (S3, DynamoDB, SQS) with the real ffmpeg: the Lambda handler's paths, retries, dead
letters, and the hand-off to the long-jobs consumer."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import av
import pytest

from functions.fail_dead_jobs import handler as dead_letters
from functions.process import consumer
from functions.process import handler as process_handler
from infra.local.resources import Resources
from tests.integration.workers import (
    attempt,
    context,
    delivered,
    output_keys,
    queued_job,
    sqs_event,
    visible_in,
    worker_deps,
)
from tests.media import make_tone
from videojobs.aws import client
from videojobs.models import JobStatus
from videojobs.service.processing import WorkerDeps, process_job


@pytest.fixture
def deps(aws: Resources, tmp_path: Path) -> WorkerDeps:
    return worker_deps(aws, tmp_path)


def test_a_job_runs_to_completion_with_outputs_under_its_attempt(deps: WorkerDeps, clip: Path, tmp_path: Path):
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    done = process_job(job.id, deps, attempt()).job

    assert (done.status, done.progress, done.attempts, done.lease_owner) == ("completed", 100, 1, None)
    assert (done.stage, done.eta_seconds) == (None, None)
    assert done.input_metadata.duration_seconds == pytest.approx(2, abs=0.1)
    [output] = done.outputs
    assert output.key == f"outputs/t1/{job.id}/a1/0-mp4-144p.mp4"
    local = tmp_path / "result.mp4"
    client("s3").download_file(deps.settings.outputs_bucket, output.key, str(local))
    assert local.stat().st_size == output.size_bytes
    with av.open(str(local)) as result:
        assert result.streams.video[0].codec_context.height == 144
    assert list(tmp_path.glob("job_*")) == []  # the scratch directory is gone


def test_a_second_delivery_of_a_finished_job_changes_nothing(deps: WorkerDeps, clip: Path):
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    first = process_job(job.id, deps, attempt()).job
    again = process_job(job.id, deps, attempt())
    assert again.retry_in_seconds is None and again.job.version == first.version


def test_text_input_fails_the_job_at_once_and_acks_the_message(
    aws: Resources, deps: WorkerDeps, tmp_path: Path, monkeypatch
):
    text = tmp_path / "input.txt"
    text.write_text("not a video")
    job = queued_job(deps, text, [{"type": "mp4", "height": 144}])
    monkeypatch.setattr(process_handler, "get_deps", lambda: deps)

    result = process_handler.lambda_handler(sqs_event(delivered(aws, job.id)), context())
    assert result == {"batchItemFailures": []}
    failed = deps.jobs.get(job.id)
    assert (failed.status, failed.error.code) == ("failed", "invalid_media")


def test_audio_only_input_for_a_video_output_fails_with_invalid_media(deps: WorkerDeps, tmp_path: Path):
    job = queued_job(deps, make_tone(tmp_path / "tone.mp3"), [{"type": "mp4", "height": 144}])
    failed = process_job(job.id, deps, attempt()).job
    assert (failed.status, failed.error.code) == ("failed", "invalid_media")


def test_a_transient_error_gives_the_job_back_and_delivers_it_again_later(
    aws: Resources, deps: WorkerDeps, clip: Path, monkeypatch
):
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    monkeypatch.setattr(process_handler, "get_deps", lambda: deps)
    real_download = deps.objects.download

    def broken_download(*_args, **_kwargs):
        raise ConnectionError("S3 went away")

    monkeypatch.setattr(deps.objects, "download", broken_download)
    message = delivered(aws, job.id)
    result = process_handler.lambda_handler(sqs_event(message), context())
    assert result == {"batchItemFailures": [{"itemIdentifier": message["messageId"]}]}  # nothing is deleted
    given_back = deps.jobs.get(job.id)
    assert (given_back.status, given_back.lease_owner, given_back.attempts) == ("processing", None, 1)
    assert visible_in(aws) == 0  # hidden for the retry's back-off, not the queue's 90 minutes

    monkeypatch.setattr(deps.objects, "download", real_download)
    retried = process_job(job.id, deps, attempt()).job
    assert (retried.status, retried.attempts) == ("completed", 2)


def test_after_its_last_attempt_a_job_ends_processing_failed(aws: Resources, tmp_path: Path, clip: Path, monkeypatch):
    deps = worker_deps(aws, tmp_path, MAX_ATTEMPTS="1")
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    monkeypatch.setattr(deps.objects, "download", lambda *_a, **_k: (_ for _ in ()).throw(TimeoutError("slow")))
    assert process_job(job.id, deps, attempt()).retry_in_seconds is not None
    failed = process_job(job.id, deps, attempt()).job
    assert (failed.status, failed.error.code, failed.attempts) == ("failed", "processing_failed", 2)


def test_a_delivery_that_finds_a_live_worker_comes_back_when_its_lease_could_end(
    aws: Resources, deps: WorkerDeps, clip: Path, monkeypatch
):
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    assert deps.jobs.claim(job.id, "w-live", deps.lease) is not None
    monkeypatch.setattr(process_handler, "get_deps", lambda: deps)

    message = delivered(aws, job.id)
    # Kept, not run: a routine retry, reported as a batch item failure rather than raised (a function error).
    result = process_handler.lambda_handler(sqs_event(message), context())
    assert result == {"batchItemFailures": [{"itemIdentifier": message["messageId"]}]}
    assert visible_in(aws) == 0  # hidden until the live worker's lease could have run out
    held = deps.jobs.get(job.id)
    assert (held.lease_owner, held.attempts, held.version) == ("w-live", 1, 2)


def test_a_dead_letter_ends_an_abandoned_job_failed(deps: WorkerDeps, clip: Path, monkeypatch):
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    deps.jobs.claim(job.id, "w-dead", -deps.lease)  # its lease ran out: the worker died
    monkeypatch.setattr(dead_letters, "get_jobs", lambda: deps.jobs)

    body = json.dumps({"job_id": job.id})
    result = dead_letters.lambda_handler({"Records": [_dead_letter(body), _dead_letter("garbage", "m1")]}, context(30))
    assert result == {"batchItemFailures": []}
    failed = deps.jobs.get(job.id)
    assert (failed.status, failed.error.code, failed.lease_owner) == ("failed", "processing_failed", None)
    assert failed.error.message == "processing failed on every attempt (1)"


def test_a_dead_letter_of_a_job_no_worker_ever_ran_says_it_never_started(deps: WorkerDeps, clip: Path, monkeypatch):
    # Its every receive was throttled (or the worker died before claiming it): attempts is still 0.
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    monkeypatch.setattr(dead_letters, "get_jobs", lambda: deps.jobs)

    dead_letters.lambda_handler({"Records": [_dead_letter(json.dumps({"job_id": job.id}))]}, context(30))
    failed = deps.jobs.get(job.id)
    assert (failed.status, failed.attempts) == ("failed", 0)
    assert failed.error.message.startswith("processing never started")


def test_a_dead_letter_waits_while_a_live_worker_holds_the_job(deps: WorkerDeps, clip: Path, monkeypatch):
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    deps.jobs.claim(job.id, "w-slow", deps.lease)  # a duplicate's copy went dead while the job runs fine
    monkeypatch.setattr(dead_letters, "get_jobs", lambda: deps.jobs)

    records = [_dead_letter(json.dumps({"job_id": job.id})), _dead_letter("garbage", "m1")]
    result = dead_letters.lambda_handler({"Records": records}, context(30))
    assert result == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]
    }  # comes back; the garbage is logged, counted and let go
    assert deps.jobs.get(job.id).status == "processing"


def test_a_job_too_long_for_the_lambda_is_finished_by_the_long_jobs_consumer(
    aws: Resources, tmp_path: Path, clip: Path
):
    lambda_deps = worker_deps(aws, tmp_path, "lambda", LAMBDA_TIME_BUDGET_SECONDS="0.001")
    job = queued_job(lambda_deps, clip, [{"type": "mp4", "height": 144}])

    handed = process_job(job.id, lambda_deps, attempt()).job
    assert (handed.status, handed.long_job, handed.lease_owner, handed.attempts) == ("processing", True, None, 0)
    assert handed.input_metadata is not None  # probed first: routing needs the duration and size
    assert output_keys(lambda_deps, job) == []

    sqs = client("sqs")
    (message,) = sqs.receive_message(QueueUrl=aws.queues["long_jobs"].url)["Messages"]
    consumer_deps = worker_deps(aws, tmp_path, "consumer", long_jobs=False)
    consumer.handle(message, time.monotonic(), consumer_deps, sqs, threading.Event())

    done = consumer_deps.jobs.get(job.id)
    assert (done.status, done.attempts, done.progress) == (JobStatus.COMPLETED, 1, 100)
    assert visible_in(aws, "long_jobs") == 0 and not sqs.receive_message(QueueUrl=aws.queues["long_jobs"].url).get(
        "Messages"
    )


def test_a_shutdown_hands_the_job_back_without_counting_an_attempt(aws: Resources, tmp_path: Path, clip: Path):
    """SIGTERM (a deployment, or a scale-in past the task's protection) is not the job's fault."""
    deps = worker_deps(aws, tmp_path, "consumer", long_jobs=False)
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    sqs, url = client("sqs"), aws.queues["long_jobs"].url
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"job_id": job.id}))
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    stopping = threading.Event()
    stopping.set()  # SIGTERM came while the job ran
    consumer.handle(message, time.monotonic(), deps, sqs, stopping)

    handed_back = deps.jobs.get(job.id, consistent=True)
    assert (handed_back.status, handed_back.attempts, handed_back.lease_owner) == ("processing", 0, None)
    assert visible_in(aws, "long_jobs") == 1  # at once, for another task
    (again,) = sqs.receive_message(QueueUrl=url)["Messages"]
    consumer.handle(
        again, time.monotonic(), worker_deps(aws, tmp_path, "another", long_jobs=False), sqs, threading.Event()
    )
    assert deps.jobs.get(job.id).attempts == 1


def _dead_letter(body: str, message_id: str = "m0") -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": "r",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "0",
            "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": "0",
        },
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs-dlq",
        "awsRegion": "us-east-1",
    }
