"""Every output type from one ffmpeg run, checked by decoding what landed in S3; and the progress it wrote."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import patch

import av
import pytest

from infra.local.resources import Resources
from tests.integration.workers import attempt, output_keys, queued_job, worker_deps
from tests.media import make_clip
from videojobs import media
from videojobs.aws import client
from videojobs.job_view import to_resource
from videojobs.models import Job, JobStage, StoredOutput
from videojobs.service import processing


def _download(bucket: str, key: str, path: Path) -> Path:
    client("s3").download_file(bucket, key, str(path))
    return path


def test_every_output_type_comes_from_one_ffmpeg_run(aws: Resources, tmp_path: Path, monkeypatch):
    runs = []
    real_run = media.run_ffmpeg
    monkeypatch.setattr(media, "run_ffmpeg", lambda *a, **k: runs.append(a) or real_run(*a, **k))
    deps = worker_deps(aws, tmp_path)
    source = make_clip(tmp_path / "in.mp4", seconds=3, width=640, height=360)
    job = queued_job(
        deps,
        source,
        [
            {"type": "mp4", "height": 720, "quality": "low"},  # above the input: made at 360p
            {"type": "hls", "heights": [1080, 360, 240]},  # 1080 dropped
            {"type": "thumbnails", "count": 4, "width": 160},
            {"type": "thumbnails", "at_seconds": [2.0, 0.5]},
            {"type": "audio", "format": "mp3"},
            {"type": "audio", "format": "aac"},
        ],
    )
    done = processing.process_job(job.id, deps, attempt()).job
    assert done.status == "completed", done.error
    assert len(runs) == 1
    bucket = deps.settings.outputs_bucket
    mp4, hls, counted, timed, mp3, aac = done.outputs

    with av.open(str(_download(bucket, mp4.key, tmp_path / "out.mp4"))) as made:
        video = made.streams.video[0].codec_context
        assert (video.name, video.width, video.height, made.streams.audio[0].codec_context.name) == (
            "h264",
            640,
            360,
            "aac",
        )
    assert mp4.details == {"resolution": {"width": 640, "height": 360}}

    renditions = hls.details["renditions"]
    assert [(r["width"], r["height"]) for r in renditions] == [(640, 360), (426, 240)]
    assert all(r["bandwidth"] > 0 and r["codecs"].startswith("avc1.") for r in renditions)
    folder = hls.key.rsplit("/", 1)[0]
    master = client("s3").get_object(Bucket=bucket, Key=hls.key)["Body"].read().decode()
    assert master.count("#EXT-X-STREAM-INF:") == 2 and "RESOLUTION=426x240" in master
    for rendition in renditions:
        playlist = client("s3").get_object(Bucket=bucket, Key=f"{folder}/{rendition['playlist']}")["Body"].read()
        segments = [line for line in playlist.decode().splitlines() if line and not line.startswith("#")]
        joined = tmp_path / f"{rendition['height']}.ts"
        joined.write_bytes(
            b"".join(client("s3").get_object(Bucket=bucket, Key=f"{folder}/{name}")["Body"].read() for name in segments)
        )
        with av.open(str(joined)) as made:
            assert made.streams.video[0].codec_context.height == rendition["height"]
            assert sum(1 for _ in made.decode(video=0)) == pytest.approx(75, abs=2)  # 3 s at 25 fps

    assert len(counted.keys) == 4 and counted.details["times_seconds"] == [0.375, 1.125, 1.875, 2.625]
    for key in counted.keys:
        with av.open(str(_download(bucket, key, tmp_path / "thumb.jpg"))) as picture:
            assert (picture.streams.video[0].codec_context.width, picture.streams.video[0].codec_context.height) == (
                160,
                90,
            )
    # In the order asked: the picture at 2.0 s first.
    assert [int(key.rsplit("/", 1)[1].removesuffix(".jpg")) for key in timed.keys] == [2000, 520]

    for output, codec in ((mp3, "mp3"), (aac, "aac")):
        with av.open(str(_download(bucket, output.key, tmp_path / output.key.rsplit("/", 1)[1]))) as made:
            assert not made.streams.video
            assert made.streams.audio[0].codec_context.codec.canonical_name == codec
            assert made.duration / 1e6 == pytest.approx(3, abs=0.2)
    assert (mp3.content_type, aac.content_type) == ("audio/mpeg", "audio/mp4")
    assert all(key.startswith(f"outputs/t1/{job.id}/a1/") for key in output_keys(deps, job))


def test_an_audio_output_of_an_input_without_sound_fails_the_job(aws: Resources, tmp_path: Path):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, make_clip(tmp_path / "silent.mp4", audio=False), [{"type": "audio", "format": "mp3"}])
    failed = processing.process_job(job.id, deps, attempt()).job
    assert (failed.status, failed.error.code) == ("failed", "invalid_media")
    assert output_keys(deps, job) == []


def test_progress_carries_stage_and_eta_and_writes_stay_throttled(aws: Resources, tmp_path: Path, monkeypatch):
    # Read at twice real time, a 4 s clip takes at least 2 s to encode: long enough for progress writes.
    deps = worker_deps(aws, tmp_path, INPUT_READ_RATE="2")
    job = queued_job(deps, make_clip(tmp_path / "in.mp4", seconds=4), [{"type": "mp4", "height": 144}])
    writes = []
    real_write = deps.jobs.record_progress

    def record(job_id, worker_id, progress, lease, *, stage=None, eta_seconds=None):
        writes.append((job_id, stage, progress, eta_seconds))
        return real_write(job_id, worker_id, progress, lease, stage=stage, eta_seconds=eta_seconds)

    monkeypatch.setattr(deps.jobs, "record_progress", record)
    done = processing.process_job(job.id, deps, attempt()).job
    assert done.status == "completed"

    stages = [stage for _, stage, _, _ in writes]
    assert stages[0] == JobStage.PROBING and stages[-1] == JobStage.UPLOADING
    assert JobStage.TRANSCODING in stages
    percents = [percent for _, _, percent, _ in writes]
    assert percents == sorted(percents) and max(percents) <= 99
    transcoding = [(percent, eta) for _, stage, percent, eta in writes if stage is JobStage.TRANSCODING]
    assert any(eta is not None for _, eta in transcoding)
    # Never the same percent twice (the heartbeat is 15 s here); the time rule is in tests/unit/test_heartbeat.py.
    assert len({percent for percent, _ in transcoding}) == len(transcoding)


def test_each_output_is_written_ready_with_its_keys_as_soon_as_it_is_uploaded(aws: Resources, tmp_path: Path):
    deps = worker_deps(aws, tmp_path)
    source = make_clip(tmp_path / "in.mp4", seconds=1, width=320, height=180)
    job = queued_job(deps, source, [{"type": "mp4", "height": 144}, {"type": "thumbnails", "count": 2, "width": 64}])
    written: list[tuple[list[bool], int]] = []
    uploads: list[list[str]] = []
    real_record, real_upload = deps.jobs.record_outputs, deps.objects.upload_many

    def record(job_id: str, worker_id: str, outputs: list[StoredOutput]) -> Job | None:
        written.append(([output.ready for output in outputs], len(uploads)))
        return real_record(job_id, worker_id, outputs)

    def upload(bucket: str, files: list[tuple[Path, str, str]], **options: object) -> None:
        uploads.append([key for _, key, _ in files])
        real_upload(bucket, files, **options)  # type: ignore[arg-type]

    with patch.object(deps.jobs, "record_outputs", record), patch.object(deps.objects, "upload_many", upload):
        done = processing.process_job(job.id, deps, attempt()).job
    assert done.status == "completed", done.error
    # Output 0 is ready after the first upload (its file only), output 1 after the second, then the job completes.
    assert written == [([True, False], 1), ([True, True], 2)]
    assert [len(keys) for keys in uploads] == [1, 2]
    assert [output.status for output in to_resource(done).outputs] == ["ready", "ready"]
