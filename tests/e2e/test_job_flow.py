"""The whole path over real HTTP on the local stack: upload, submit, queue, ffmpeg worker, S3, polling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import httpx
import pytest

from tests.e2e.conftest import ROOT, RunningStack, submit, upload, wait_for
from tests.media import make_clip

pytestmark = pytest.mark.e2e


def test_health_needs_no_key(stack: RunningStack):
    response = httpx.get(f"{stack.url}/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_a_720p_clip_becomes_a_360p_h264_mp4_with_the_same_duration(api: httpx.Client, tmp_path: Path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=5, width=1280, height=720)
    upload_id = upload(api, clip)

    response = submit(api, upload_id, [{"type": "mp4", "height": 360}], metadata={"customer_ref": "A-1"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["version"] == 1 and job["progress"] == 0
    assert response.headers["Location"].endswith(f"/jobs/{job['id']}")
    assert int(response.headers["Retry-After"]) >= 1
    assert httpx.get(response.headers["Location"], headers=api.headers).json()["id"] == job["id"]

    done = wait_for(api, job["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100 and done["error"] is None
    assert done["metadata"] == {"customer_ref": "A-1"}
    assert done["started_at"] and done["completed_at"] and done["version"] > job["version"]
    probe = done["input"]["metadata"]
    assert (probe["width"], probe["height"], probe["video_codec"]) == (1280, 720, "h264")
    assert probe["duration_seconds"] == pytest.approx(5, abs=0.1)

    [output] = done["outputs"]
    assert (output["type"], output["height"], output["content_type"]) == ("mp4", 360, "video/mp4")
    downloaded = tmp_path / "out.mp4"
    downloaded.write_bytes(httpx.get(output["url"]).raise_for_status().content)
    assert downloaded.stat().st_size == output["size_bytes"]
    with av.open(str(downloaded)) as result:
        video = result.streams.video[0].codec_context
        assert (video.codec.canonical_name, video.height, video.width) == ("h264", 360, 640)
        assert result.duration / 1e6 == pytest.approx(5, abs=0.2)


def test_a_file_that_is_not_media_ends_failed_with_invalid_media(api: httpx.Client, tmp_path: Path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 200)
    response = submit(api, upload(api, text))
    assert response.status_code == 202
    done = wait_for(api, response.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "invalid_media"
    assert all(output["url"] is None for output in done["outputs"])


def test_several_outputs_come_from_one_job(api: httpx.Client, clip: Path):
    response = submit(api, upload(api, clip), [{"type": "mp4", "height": 144}, {"type": "mp4", "height": 240}])
    done = wait_for(api, response.json()["id"])
    assert [output["height"] for output in done["outputs"]] == [144, 240]
    assert all(output["url"] and output["size_bytes"] > 0 for output in done["outputs"])


def test_the_readme_quickstart_runs_as_written(stack: RunningStack, tmp_path: Path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=2, width=640, height=360)
    env = {**os.environ, "VIDEOJOBS_URL": stack.url, "VIDEOJOBS_API_KEY": stack.api_key}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), str(clip)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "completed 100%" in result.stdout
    assert (tmp_path / "clip-0-360p.mp4").stat().st_size > 0
