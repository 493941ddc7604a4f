"""Untrusted media through the whole worker (moto, real ffmpeg): streams off the codec allowlist are ignored and
reported, an input with nothing allowed fails, and an input with no declared duration is measured first."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from infra.local.resources import Resources
from tests.crafted import make_h264_with_png, make_png_only, make_streamed_mkv
from tests.integration.workers import attempt, queued_job, worker_deps
from videojobs.aws import client
from videojobs.models import IgnoredStream, Job
from videojobs.service.processing import WorkerDeps, process_job


def test_an_mkv_with_h264_and_png_completes_with_the_png_stream_ignored(aws: Resources, tmp_path: Path):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(
        deps, make_h264_with_png(tmp_path / "both.mkv", corrupt_png=True), [{"type": "mp4", "height": 144}]
    )
    done = process(deps, job.id)
    assert done.status == "completed", done.error
    assert done.input_metadata.ignored_streams == [IgnoredStream(index=1, codec="png")]
    local = tmp_path / "result.mp4"
    client("s3").download_file(deps.settings.outputs_bucket, done.outputs[0].key, str(local))
    with av.open(str(local)) as result:
        assert [stream.codec_context.name for stream in result.streams] == ["h264"]


def test_a_file_whose_only_video_stream_is_png_fails_unsupported_format(aws: Resources, tmp_path: Path):
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, make_png_only(tmp_path / "png.mkv"), [{"type": "mp4", "height": 144}])
    failed = process(deps, job.id)
    assert (failed.status, failed.error.code) == ("failed", "unsupported_format")


def test_a_streamed_mkv_is_measured_before_the_limits_and_routing(aws: Resources, tmp_path: Path):
    streamed = make_streamed_mkv(tmp_path / "streamed.mkv", seconds=3)
    deps = worker_deps(aws, tmp_path / "a", MAX_INPUT_DURATION_SECONDS="2")
    (tmp_path / "a").mkdir()
    refused = process(deps, queued_job(deps, streamed, [{"type": "mp4", "height": 144}]).id)
    assert (refused.status, refused.error.code) == ("failed", "input_too_large")

    deps = worker_deps(aws, tmp_path)
    done = process(deps, queued_job(deps, streamed, [{"type": "mp4", "height": 144}]).id)
    assert done.status == "completed"
    assert done.input_metadata.duration_seconds == pytest.approx(3, abs=0.2)


def process(deps: WorkerDeps, job_id: str) -> Job:
    return process_job(job_id, deps, attempt()).job
