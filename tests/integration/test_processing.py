"""The worker against moto S3/DynamoDB with the real ffmpeg: one job, start to finish, and its failure paths."""

from __future__ import annotations

import json
from pathlib import Path

import av
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from functions.fail_dead_jobs import handler as dead_letters
from functions.process import handler as process_handler
from infra.local.lambda_context import LambdaContext
from infra.local.resources import Resources
from tests.media import make_tone
from videojobs.aws import client
from videojobs.models import Job, StoredOutput, utcnow
from videojobs.service.processing import LEASE, WorkerDeps, process_job
from videojobs.settings import WorkerSettings
from videojobs.storage import ObjectStore, upload_key
from videojobs.store import JobStore


@pytest.fixture
def deps(aws: Resources, tmp_path: Path) -> WorkerDeps:
    settings = WorkerSettings.from_env({**aws.environment(), "SCRATCH_DIR": str(tmp_path)})
    return WorkerDeps(settings, JobStore(client("dynamodb"), aws.tables["jobs"]), ObjectStore(client("s3")), "w1")


def queued_job(deps: WorkerDeps, source: Path, outputs: list[dict], job_id: str = "job_1") -> Job:
    key = upload_key("t1", "upl_1")
    client("s3").upload_file(str(source), deps.settings.uploads_bucket, key)
    now = utcnow()
    job = Job(id=job_id, tenant_id="t1", created_at=now, updated_at=now, upload_id="upl_1", input_key=key,
              outputs=[StoredOutput(spec=spec) for spec in outputs])
    return deps.jobs.create(job)


def context(timeout_seconds: int = 900) -> LambdaContext:
    return LambdaContext(function_name="process", memory_limit_in_mb=3008,
                         invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:process",
                         timeout_seconds=timeout_seconds)


def sqs_event(*bodies: str) -> dict:
    return {"Records": [
        {"messageId": f"m{index}", "receiptHandle": f"r{index}", "body": body, "attributes": {
            "ApproximateReceiveCount": "1", "SentTimestamp": "0", "SenderId": "x",
            "ApproximateFirstReceiveTimestamp": "0"},
         "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
         "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs", "awsRegion": "us-east-1"}
        for index, body in enumerate(bodies)
    ]}


def test_a_job_runs_to_completion_with_outputs_in_s3(deps: WorkerDeps, clip: Path, tmp_path: Path):
    queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    done = process_job("job_1", deps, time_limit_seconds=120)

    assert (done.status, done.progress, done.attempts, done.lease_owner) == ("completed", 100, 1, None)
    assert done.input_metadata.duration_seconds == pytest.approx(2, abs=0.1)
    [output] = done.outputs
    assert output.key == "outputs/t1/job_1/0-mp4-144p.mp4"
    local = tmp_path / "result.mp4"
    client("s3").download_file(deps.settings.outputs_bucket, output.key, str(local))
    assert local.stat().st_size == output.size_bytes
    with av.open(str(local)) as result:
        assert result.streams.video[0].codec_context.height == 144
    assert list(tmp_path.glob("job-*")) == []  # the scratch directory is gone


def test_a_second_delivery_of_a_finished_job_changes_nothing(deps: WorkerDeps, clip: Path):
    queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    first = process_job("job_1", deps, time_limit_seconds=120)
    assert process_job("job_1", deps, time_limit_seconds=120) is None
    assert deps.jobs.get("job_1").version == first.version


def test_text_input_fails_the_job_at_once_and_acks_the_message(deps: WorkerDeps, tmp_path: Path, monkeypatch):
    text = tmp_path / "input.txt"
    text.write_text("not a video")
    queued_job(deps, text, [{"type": "mp4", "height": 144}])
    monkeypatch.setattr(process_handler, "get_deps", lambda: deps)

    result = process_handler.lambda_handler(sqs_event(json.dumps({"job_id": "job_1"})), context())
    assert result == {"batchItemFailures": []}
    job = deps.jobs.get("job_1")
    assert (job.status, job.error.code) == ("failed", "invalid_media")


def test_audio_only_input_for_a_video_output_fails_with_invalid_media(deps: WorkerDeps, tmp_path: Path):
    queued_job(deps, make_tone(tmp_path / "tone.mp3"), [{"type": "mp4", "height": 144}])
    job = process_job("job_1", deps, time_limit_seconds=60)
    assert (job.status, job.error.code) == ("failed", "invalid_media")


def test_transient_errors_are_reported_as_batch_item_failures(deps: WorkerDeps, clip: Path, monkeypatch):
    queued_job(deps, clip, [{"type": "mp4", "height": 144}], job_id="job_ok")
    monkeypatch.setattr(process_handler, "get_deps", lambda: deps)
    event = sqs_event(json.dumps({"job_id": "job_ok"}), "{not json")
    result = process_handler.lambda_handler(event, context())
    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert deps.jobs.get("job_ok").status == "completed"


def test_a_batch_that_fails_entirely_raises_so_nothing_is_deleted(deps: WorkerDeps, clip: Path, monkeypatch):
    queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    monkeypatch.setattr(process_handler, "get_deps", lambda: deps)

    def broken_download(*_args, **_kwargs):
        raise ConnectionError("S3 went away")

    monkeypatch.setattr(deps.objects, "download", broken_download)
    with pytest.raises(BatchProcessingError):
        process_handler.lambda_handler(sqs_event(json.dumps({"job_id": "job_1"})), context())
    assert deps.jobs.get("job_1").status == "processing"  # the lease runs out and a redelivery reclaims it


def test_a_dead_letter_ends_the_job_failed_with_processing_failed(deps: WorkerDeps, clip: Path, monkeypatch):
    queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    deps.jobs.claim("job_1", "w-dead", LEASE)
    monkeypatch.setattr(dead_letters, "get_jobs", lambda: deps.jobs)

    result = dead_letters.lambda_handler(sqs_event(json.dumps({"job_id": "job_1"}), "garbage"), context(30))
    assert result == {"batchItemFailures": []}
    job = deps.jobs.get("job_1")
    assert (job.status, job.error.code, job.lease_owner) == ("failed", "processing_failed", None)
