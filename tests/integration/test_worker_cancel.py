"""Cancel, duplicate deliveries and lost leases: whatever happens, one set of outputs or none, never a stuck job."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.local.resources import Resources
from tests.integration.workers import TENANT, attempt, output_keys, queued_job, worker_deps
from tests.media import make_clip
from videojobs.aws import client
from videojobs.errors import ApiError
from videojobs.models import Job, JobStage
from videojobs.service.cancel import CancelDeps, cancel_job
from videojobs.service.processing import Outcome, WorkerDeps, process_job
from videojobs.settings import CancelSettings

PATIENCE_SECONDS = 60  # a hang guard only


@pytest.fixture
def slow_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("slow") / "slow.mp4", seconds=8)


def cancel_deps(aws: Resources, worker: WorkerDeps) -> CancelDeps:
    return CancelDeps(CancelSettings.from_env(aws.environment()), worker.jobs, worker.objects)


def in_background(deps: WorkerDeps, job: Job) -> tuple[ThreadPoolExecutor, object]:
    pool = ThreadPoolExecutor(1)
    return pool, pool.submit(process_job, job.id, deps, attempt())


def wait_for_stage(deps: WorkerDeps, job: Job, stage: JobStage) -> Job:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        current = deps.jobs.get(job.id, consistent=True)
        if current.stage is stage and current.progress > 0:
            return current
        time.sleep(0.1)
    pytest.fail(f"the job never reached {stage} with progress")


def ffmpeg_running_for(job: Job) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if job.id.encode() in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def test_cancelling_a_queued_job_ends_it_at_once(aws: Resources, tmp_path: Path, clip: Path):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    cancelled = cancel_job(job.id, TENANT, cancel_deps(aws, deps))
    assert (cancelled.status, cancelled.completed_at is not None) == ("cancelled", True)
    outcome = process_job(job.id, deps, attempt())  # its message arrives after all: nothing to do
    assert outcome.retry_in_seconds is None and outcome.job.status == "cancelled"


def test_cancelling_a_processing_job_stops_ffmpeg_and_leaves_no_outputs(
    aws: Resources, tmp_path: Path, slow_clip: Path
):
    deps = worker_deps(aws, tmp_path, INPUT_READ_RATE="1")  # 8 s of encoding
    job = queued_job(deps, slow_clip, [{"type": "mp4", "height": 144}, {"type": "hls", "heights": [144]}])
    pool, running = in_background(deps, job)
    wait_for_stage(deps, job, JobStage.TRANSCODING)
    assert ffmpeg_running_for(job)

    requested = cancel_job(job.id, TENANT, cancel_deps(aws, deps))
    assert (requested.status, requested.cancel_requested_at is not None) == ("processing", True)
    outcome: Outcome = running.result(timeout=PATIENCE_SECONDS)
    pool.shutdown()

    assert outcome.retry_in_seconds is None
    assert (outcome.job.status, outcome.job.lease_owner, outcome.job.stage) == ("cancelled", None, None)
    assert output_keys(deps, job) == []
    assert not ffmpeg_running_for(job)
    assert list(tmp_path.glob("job_*")) == []  # scratch removed
    with pytest.raises(ApiError) as finished:
        cancel_job(job.id, TENANT, cancel_deps(aws, deps))
    assert (finished.value.status, finished.value.code) == (409, "job_finished")


def test_a_cancel_that_arrives_during_the_upload_removes_what_was_uploaded(
    aws: Resources, tmp_path: Path, clip: Path, monkeypatch
):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, clip, [{"type": "hls", "heights": [240, 144]}])
    real_upload_many = deps.objects.upload_many

    def cancelled_while_uploading(bucket, files, progress):
        def first_bytes_then_cancel(chunk: int) -> None:
            deps.jobs.request_cancel(job.id)  # as POST /jobs/{id}/cancel does, once bytes are on their way
            progress(chunk)

        real_upload_many(bucket, files, progress=first_bytes_then_cancel)

    monkeypatch.setattr(deps.objects, "upload_many", cancelled_while_uploading)
    outcome = process_job(job.id, deps, attempt())
    assert outcome.job.status == "cancelled"
    assert output_keys(deps, job) == []


def test_cancel_is_409_for_a_finished_job_and_404_for_another_tenant(aws: Resources, tmp_path: Path, clip: Path):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    with pytest.raises(ApiError) as foreign:
        cancel_job(job.id, "someone-else", cancel_deps(aws, deps))
    assert (foreign.value.status, foreign.value.code) == (404, "not_found")
    process_job(job.id, deps, attempt())
    with pytest.raises(ApiError) as finished:
        cancel_job(job.id, TENANT, cancel_deps(aws, deps))
    assert (finished.value.status, finished.value.code) == (409, "job_finished")
    assert deps.jobs.get(job.id).status == "completed"


def test_a_job_whose_worker_died_is_cleaned_up_and_cancelled_by_the_request(aws: Resources, tmp_path: Path, clip: Path):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, clip, [{"type": "mp4", "height": 144}])
    deps.jobs.claim(job.id, "w-dead", -deps.lease)
    leftover = f"outputs/{TENANT}/{job.id}/a1/0-mp4-144p.mp4"  # the dead worker was uploading
    client("s3").put_object(Bucket=deps.settings.outputs_bucket, Key=leftover, Body=b"partial")

    cancelled = cancel_job(job.id, TENANT, cancel_deps(aws, deps))
    assert cancelled.status == "cancelled"
    assert output_keys(deps, job) == []


def test_concurrent_duplicate_deliveries_give_one_set_of_outputs_and_one_completion(
    aws: Resources, tmp_path: Path, clip: Path
):
    first, second = worker_deps(aws, tmp_path, "w1"), worker_deps(aws, tmp_path, "w2")
    job = queued_job(first, clip, [{"type": "mp4", "height": 144}, {"type": "thumbnails", "count": 2}])
    start = threading.Barrier(2)

    def deliver(deps: WorkerDeps) -> Outcome:
        start.wait()
        return process_job(job.id, deps, attempt())

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(deliver, [first, second]))
    ran = [o for o in outcomes if o.retry_in_seconds is None]
    deferred = [o for o in outcomes if o.retry_in_seconds is not None]
    assert len(ran) == 1 and len(deferred) == 1 and ran[0].job.status == "completed"
    assert deferred[0].retry_in_seconds >= 1  # until the winner's lease could have run out

    done = first.jobs.get(job.id)
    assert (done.attempts, done.status) == (1, "completed")
    keys = output_keys(first, job)
    assert len(keys) == 3 and all(f"/{job.id}/a1/" in key for key in keys)
    again = process_job(job.id, second, attempt())  # the deferred copy comes back
    assert again.retry_in_seconds is None and first.jobs.get(job.id).version == done.version


def test_a_worker_that_loses_its_lease_stops_and_removes_nothing_of_the_new_holder(
    aws: Resources, tmp_path: Path, slow_clip: Path
):
    deps = worker_deps(aws, tmp_path, INPUT_READ_RATE="1")
    job = queued_job(deps, slow_clip, [{"type": "mp4", "height": 144}])
    pool, running = in_background(deps, job)
    wait_for_stage(deps, job, JobStage.TRANSCODING)
    # Another worker took the job over (as after a long stall of this one).
    client("dynamodb").update_item(
        TableName=aws.tables["jobs"],
        Key={"id": {"S": job.id}},
        UpdateExpression="SET lease_owner = :other",
        ExpressionAttributeValues={":other": {"S": "w-other"}},
    )
    outcome = running.result(timeout=PATIENCE_SECONDS)
    pool.shutdown()
    assert outcome.retry_in_seconds is None  # the message is done: the new holder has its own delivery
    current = deps.jobs.get(job.id)
    assert (current.status, current.lease_owner) == ("processing", "w-other")
    assert not ffmpeg_running_for(job) and output_keys(deps, job) == []
