"""Chunked encodes (split and stitch) against moto with the real ffmpeg: the stitched outputs against a single
encode of the same request, and the chunk-level semantics (duplicates, retries, failures, cancel, reclaim)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from infra.local.resources import Resources
from tests.integration.chunk_workers import ChunkWorkers, chunk_deps, coordinator_deps, receive_chunk
from tests.integration.workers import attempt, queued_job
from tests.media import generate
from tests.quality import decodes, frame_psnr, timeline
from videojobs.aws import client
from videojobs.chunk_store import ChunkStatus
from videojobs.errors import JobFailure
from videojobs.models import ChunkMessage, ErrorCode, Job, JobStatus
from videojobs.service import chunking
from videojobs.service.chunking import ChunkAttempt, process_chunk
from videojobs.service.processing import WorkerDeps, process_job

pytestmark = pytest.mark.slow

REQUEST = [{"type": "mp4", "height": 144}, {"type": "hls", "heights": [240, 180, 144]}]


def make_source(path: Path, *, seconds: int = 36, keyframe_every: int = 183, variable_rate: bool = False) -> Path:
    """A 426x240 test pattern with a tone whose keyframes fall every ``keyframe_every`` frames (183: every 7.32 s,
    never on a 12 s chunk boundary); ``variable_rate``: frames at uneven intervals (a VFR phone clip)."""
    video = f"testsrc2=size=426x240:rate=25:duration={seconds}"
    if variable_rate:  # drop every third frame of each second's first half: 25 and ~21 fps alternate
        video += ",select='not(lt(mod(t\\,1)\\,0.5)*eq(mod(n\\,3)\\,0))'"
    return generate(
        path,
        *("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
        *("-g", str(keyframe_every), "-keyint_min", str(keyframe_every), "-sc_threshold", "0"),
        *(["-fps_mode", "vfr"] if variable_rate else []),
        *("-c:a", "aac", "-shortest"),
    )


def run_chunked(aws: Resources, deps: WorkerDeps, job: Job, scratch: Path, workers: int = 2) -> Job:
    with ChunkWorkers(aws, chunk_deps(aws, scratch), count=workers):
        done = process_job(job.id, deps, attempt()).job
    assert done is not None
    return done


def fetch(deps: WorkerDeps, key: str, path: Path) -> Path:
    client("s3").download_file(deps.settings.outputs_bucket, key, str(path))
    return path


def fetch_hls(deps: WorkerDeps, job: Job, index: int, folder: Path) -> Path:
    """Every file of an HLS output, as the job recorded it."""
    folder.mkdir()
    prefix = job.outputs[index].key.rsplit("/", 1)[0] + "/"
    listed = client("s3").list_objects_v2(Bucket=deps.settings.outputs_bucket, Prefix=prefix)
    for item in listed["Contents"]:
        fetch(deps, item["Key"], folder / item["Key"].rsplit("/", 1)[1])
    return folder


@pytest.mark.parametrize("variable_rate", [False, True], ids=["keyframes_off_boundaries", "variable_frame_rate"])
def test_a_chunked_encode_matches_a_single_encode(aws: Resources, tmp_path: Path, variable_rate: bool):
    source = make_source(tmp_path / "source.mp4", variable_rate=variable_rate)
    deps = coordinator_deps(aws, tmp_path)
    chunked = run_chunked(aws, deps, queued_job(deps, source, REQUEST), tmp_path)
    single_job = queued_job(deps, source, REQUEST)
    deps.jobs._client.update_item(  # the same request with "parallel": "off"
        TableName=aws.tables["jobs"],
        Key={"id": {"S": single_job.id}},
        UpdateExpression="SET #parallel = :off",
        ExpressionAttributeNames={"#parallel": "parallel"},
        ExpressionAttributeValues={":off": {"S": "off"}},
    )
    single = process_job(single_job.id, deps, attempt()).job
    assert single is not None

    assert (chunked.status, single.status) == (JobStatus.COMPLETED, JobStatus.COMPLETED)
    assert chunked.parallelism is not None and chunked.parallelism.model_dump() == {"chunks": 3, "completed_chunks": 3}
    assert single.parallelism is None

    ours = fetch(deps, chunked.outputs[0].key, tmp_path / "chunked.mp4")
    theirs = fetch(deps, single.outputs[0].key, tmp_path / "single.mp4")
    a, b = timeline(ours), timeline(theirs)
    assert a.video_times == pytest.approx(b.video_times, abs=1e-3)  # same frames at the same times
    assert abs(a.video_end - b.video_end) <= a.frame_seconds
    assert abs(a.drift - b.drift) <= a.frame_seconds
    assert a.video_bytes == pytest.approx(b.video_bytes, rel=0.03)
    ours_psnr, theirs_psnr = frame_psnr(ours, source), frame_psnr(theirs, source)
    assert len(ours_psnr) == len(theirs_psnr)
    assert min(x - y for x, y in zip(ours_psnr, theirs_psnr, strict=True)) > -3  # no frame out of place
    assert sum(ours_psnr) / len(ours_psnr) == pytest.approx(sum(theirs_psnr) / len(theirs_psnr), abs=0.2)

    hls = fetch_hls(deps, chunked, 1, tmp_path / "hls")
    single_hls = fetch_hls(deps, single, 1, tmp_path / "single_hls")
    assert sorted(path.name for path in hls.iterdir()) == sorted(path.name for path in single_hls.iterdir())
    for rung in ("240p", "180p", "144p"):
        segments = sorted(hls.glob(f"{rung}_*.ts"))
        assert [decodes(segment) for segment in segments] == [
            decodes(segment) for segment in sorted(single_hls.glob(f"{rung}_*.ts"))
        ]
        playlist = (hls / f"{rung}.m3u8").read_text()
        assert playlist == (single_hls / f"{rung}.m3u8").read_text()
    assert [r["height"] for r in chunked.outputs[1].details["renditions"]] == [240, 180, 144]
    # The pieces are gone once the job is done: only its outputs are left.
    listed = client("s3").list_objects_v2(Bucket=deps.settings.outputs_bucket, Prefix=f"outputs/t1/{chunked.id}/")
    assert not [item["Key"] for item in listed["Contents"] if "/chunks/" in item["Key"]]


def test_parallel_off_and_short_inputs_are_a_single_encode(aws: Resources, tmp_path: Path, clip: Path):
    deps = coordinator_deps(aws, tmp_path)
    done = process_job(queued_job(deps, clip, REQUEST).id, deps, attempt()).job
    assert done is not None and done.status is JobStatus.COMPLETED and done.parallelism is None
    assert receive_chunk(aws, wait_seconds=0) is None


# -- chunk-level semantics ---------------------------------------------------------------------------------


@pytest.fixture
def planned(aws: Resources, tmp_path: Path) -> tuple[WorkerDeps, Job]:
    """A job of a 24 s clip whose two chunks are recorded, as its coordinator records them."""
    deps = coordinator_deps(aws, tmp_path)
    job = queued_job(deps, make_source(tmp_path / "source.mp4", seconds=24), [{"type": "mp4", "height": 144}])
    assert deps.chunks is not None
    deps.chunks.create(job.id, [(0.0, 12.0), (12.0, None)])
    return deps, job


def chunk_attempt() -> ChunkAttempt:
    return ChunkAttempt(deadline=time.monotonic() + 300)


def test_a_chunk_delivered_twice_produces_one_result(aws: Resources, tmp_path: Path, planned: tuple[WorkerDeps, Job]):
    deps, job = planned
    workers = chunk_deps(aws, tmp_path, "c1"), chunk_deps(aws, tmp_path, "c2")
    first = process_chunk(ChunkMessage(job_id=job.id, index=0), workers[0], chunk_attempt())
    again = process_chunk(ChunkMessage(job_id=job.id, index=0), workers[1], chunk_attempt())

    assert first.chunk is not None and first.chunk.status is ChunkStatus.DONE and first.retry_in_seconds is None
    assert again.retry_in_seconds is None and again.chunk == first.chunk  # nothing written the second time
    pieces = client("s3").list_objects_v2(Bucket=deps.settings.outputs_bucket, Prefix=f"outputs/t1/{job.id}/chunks/")
    assert [item["Key"] for item in pieces["Contents"]] == [file.key for file in first.chunk.files]


def test_a_chunk_held_by_a_live_worker_is_delivered_again_later(
    aws: Resources, tmp_path: Path, planned: tuple[WorkerDeps, Job]
):
    deps, job = planned
    slow = chunk_deps(aws, tmp_path, "c1", INPUT_READ_RATE="2")
    running = threading.Thread(target=process_chunk, args=(ChunkMessage(job_id=job.id, index=0), slow, chunk_attempt()))
    running.start()
    assert deps.chunks is not None
    while (chunk := deps.chunks.get(job.id, 0)) is not None and chunk.status is ChunkStatus.PENDING:
        time.sleep(0.05)
    duplicate = process_chunk(ChunkMessage(job_id=job.id, index=0), chunk_deps(aws, tmp_path, "c2"), chunk_attempt())
    running.join()

    assert duplicate.retry_in_seconds is not None and duplicate.retry_in_seconds >= 1
    done = deps.chunks.get(job.id, 0)
    assert done is not None and (done.status, done.attempts) == (ChunkStatus.DONE, 1)


def test_a_failed_chunk_is_retried(
    aws: Resources, tmp_path: Path, planned: tuple[WorkerDeps, Job], monkeypatch: pytest.MonkeyPatch
):
    deps, job = planned
    worker = chunk_deps(aws, tmp_path)
    real_upload = worker.objects.upload_many
    calls = []

    def flaky_upload(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("S3 went away")
        real_upload(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker.objects, "upload_many", flaky_upload)
    failed = process_chunk(ChunkMessage(job_id=job.id, index=1), worker, chunk_attempt())
    assert failed.retry_in_seconds is not None and failed.chunk is not None
    assert deps.chunks is not None
    assert deps.chunks.get(job.id, 1).status is ChunkStatus.PENDING  # type: ignore[union-attr]

    retried = process_chunk(ChunkMessage(job_id=job.id, index=1), worker, chunk_attempt())
    assert retried.chunk is not None and (retried.chunk.status, retried.chunk.attempts) == (ChunkStatus.DONE, 2)
    assert all("/a2/" in file.key for file in retried.chunk.files)


def test_a_dead_workers_chunk_is_reclaimed_once_its_lease_runs_out(
    aws: Resources, tmp_path: Path, planned: tuple[WorkerDeps, Job]
):
    deps, job = planned
    assert deps.chunks is not None
    # A worker claimed the chunk and died: nothing renews its lease.
    deps.chunks.claim(job.id, 0, "dead", timedelta(seconds=1))
    early = process_chunk(ChunkMessage(job_id=job.id, index=0), chunk_deps(aws, tmp_path, "c2"), chunk_attempt())
    assert early.retry_in_seconds is not None
    time.sleep(early.retry_in_seconds)
    later = process_chunk(ChunkMessage(job_id=job.id, index=0), chunk_deps(aws, tmp_path, "c2"), chunk_attempt())
    assert later.chunk is not None and (later.chunk.status, later.chunk.attempts) == (ChunkStatus.DONE, 2)


def test_a_chunk_failing_for_good_fails_the_job_with_its_reason(
    aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def broken(job: Job, chunk: object, *_: object) -> None:
        if getattr(chunk, "index", None) == 1:
            raise JobFailure(ErrorCode.INVALID_MEDIA, "a frame does not decode")
        return real(job, chunk, *_)  # type: ignore[arg-type]

    real = chunking._encode_chunk
    monkeypatch.setattr(chunking, "_encode_chunk", broken)
    source = make_source(tmp_path / "source.mp4", seconds=24)
    deps = coordinator_deps(aws, tmp_path)
    failed = run_chunked(aws, deps, queued_job(deps, source, [{"type": "mp4", "height": 144}]), tmp_path)

    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and failed.error.model_dump() == {
        "code": "invalid_media",
        "message": "chunk 1: a frame does not decode",
    }
    listed = client("s3").list_objects_v2(Bucket=deps.settings.outputs_bucket, Prefix=f"outputs/t1/{failed.id}/")
    assert listed.get("Contents", []) == []  # the done chunk's pieces are gone too


def test_a_cancel_stops_every_chunk_and_removes_the_pieces(aws: Resources, tmp_path: Path):
    source = make_source(tmp_path / "source.mp4", seconds=24)
    deps = coordinator_deps(aws, tmp_path, INPUT_READ_RATE="1")
    job = queued_job(deps, source, [{"type": "mp4", "height": 144}])
    outcome: list[Job | None] = []
    with ChunkWorkers(aws, chunk_deps(aws, tmp_path, INPUT_READ_RATE="1"), count=2) as workers:
        coordinator = threading.Thread(target=lambda: outcome.append(process_job(job.id, deps, attempt()).job))
        coordinator.start()
        assert deps.chunks is not None
        while sum(chunk.progress > 0 for chunk in deps.chunks.of_job(job.id)) < 2:  # both chunks mid-encode
            time.sleep(0.1)
        deps.jobs.request_cancel(job.id)
        coordinator.join()
        while len(workers.outcomes) < 2:  # each chunk worker gave its chunk up
            time.sleep(0.1)

    assert outcome[0] is not None and outcome[0].status is JobStatus.CANCELLED
    assert [chunk.status for chunk in deps.chunks.of_job(job.id)] == [ChunkStatus.RUNNING, ChunkStatus.RUNNING]
    assert [o.chunk for o in workers.outcomes] == [None, None]
    listed = client("s3").list_objects_v2(Bucket=deps.settings.outputs_bucket, Prefix=f"outputs/t1/{job.id}/")
    assert listed.get("Contents", []) == []
