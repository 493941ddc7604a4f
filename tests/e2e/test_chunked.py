"""Chunked encoding on ``make run``'s defaults (60 s threshold, 30 s chunks, the local chunk pollers): a 90 s
clip whose keyframes miss every chunk boundary, an MP4 and a 3-rung HLS ladder, held to a single encode of the
same request (``"parallel": "off"``)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import submit, upload, wait_for
from tests.integration.test_chunking import REQUEST, make_source
from tests.quality import decodes, frame_psnr, timeline

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def download(url: str, path: Path) -> Path:
    response = httpx.get(url)
    assert response.status_code == 200
    path.write_bytes(response.content)
    return path


def fetch_hls(api: httpx.Client, job: dict, folder: Path) -> Path:
    """The HLS output as a player gets it: the master, each rung's playlist, every segment."""
    folder.mkdir()
    master_url = job["outputs"][1]["url"]
    master = httpx.get(master_url)
    assert master.status_code == 200
    (folder / "master.m3u8").write_text(master.text)
    for playlist in [line for line in master.text.splitlines() if line and not line.startswith("#")]:
        listing = httpx.get(httpx.URL(master_url).join(playlist))
        assert listing.status_code == 200
        (folder / Path(playlist).name).write_text(listing.text)
        segments = [line for line in listing.text.splitlines() if line and not line.startswith("#")]
        for number, segment in enumerate(segments):
            download(str(httpx.URL(str(listing.url)).join(segment)), folder / f"{Path(playlist).stem}_{number:05d}.ts")
    return folder


@pytest.mark.timeout(900)  # two encodes of 90 s of video on a 2-core machine; pytest's default is 300 s
def test_a_90_s_clip_is_encoded_in_chunks_like_a_single_encode(api: httpx.Client, tmp_path: Path):
    source = make_source(tmp_path / "source.mp4", seconds=90)
    upload_id = upload(api, source)
    chunked_id = submit(api, upload_id, REQUEST).json()["id"]
    single_id = submit(api, upload_id, REQUEST, parallel="off").json()["id"]
    chunked = wait_for(api, chunked_id, patience_seconds=600)
    single = wait_for(api, single_id, patience_seconds=600)

    assert (chunked["status"], single["status"]) == ("completed", "completed"), (chunked, single)
    assert chunked["parallelism"] == {"chunks": 3, "completed_chunks": 3}
    assert "parallelism" not in single

    ours = download(chunked["outputs"][0]["url"], tmp_path / "chunked.mp4")
    theirs = download(single["outputs"][0]["url"], tmp_path / "single.mp4")
    a, b = timeline(ours), timeline(theirs)
    assert a.video_times == pytest.approx(b.video_times, abs=1e-3)
    assert abs(a.video_end - b.video_end) <= a.frame_seconds
    assert abs(a.drift - b.drift) <= a.frame_seconds
    assert a.video_bytes == pytest.approx(b.video_bytes, rel=0.03)
    ours_psnr, theirs_psnr = frame_psnr(ours, source), frame_psnr(theirs, source)
    assert len(ours_psnr) == len(theirs_psnr) == len(a.video_times)
    assert min(x - y for x, y in zip(ours_psnr, theirs_psnr, strict=True)) > -3
    assert sum(ours_psnr) / len(ours_psnr) == pytest.approx(sum(theirs_psnr) / len(theirs_psnr), abs=0.2)

    hls, single_hls = fetch_hls(api, chunked, tmp_path / "hls"), fetch_hls(api, single, tmp_path / "single_hls")
    for rung in ("240p", "180p", "144p"):
        segments = sorted(hls.glob(f"{rung}_*.ts"))
        assert len(segments) == 15  # 6 s segments: five per chunk
        assert [decodes(path) for path in segments] == [
            decodes(path) for path in sorted(single_hls.glob(f"{rung}_*.ts"))
        ]
