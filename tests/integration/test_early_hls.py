"""HLS playable before the job completes (split and stitch) against moto with the real ffmpeg: the EVENT
playlists grow in chunk order while the job runs, their segments decode, the playback route serves them, the
job shows the output pending with its ``playable_url``, and completion leaves the final VOD output in place."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.local.resources import Resources
from tests.integration.chunk_workers import coordinator_deps
from tests.integration.test_chunking import make_source, run_chunked
from tests.integration.workers import queued_job
from tests.quality import decodes
from videojobs import job_events, playback
from videojobs.aws import client
from videojobs.job_store import JobStore
from videojobs.job_view import DownloadLinks, to_resource
from videojobs.models import Job, JobStatus
from videojobs.service import early_hls
from videojobs.service.early_hls import EarlyHls
from videojobs.service.playback import PlaybackDeps, playlist
from videojobs.settings import PlaybackSettings

REQUEST = [{"type": "hls", "heights": [180, 144]}]
API = "https://api.example.test/v1"


@dataclass
class Seen:
    """The job and its HLS output as they stood in S3 right after a chunk was published (the job still runs)."""

    published: int
    job: Job
    playlists: dict[str, str]
    segment_frames: dict[str, int]


def watch_publications(monkeypatch: pytest.MonkeyPatch, jobs: JobStore, bucket: str, folder: Path) -> list[Seen]:
    """Record the output after each publication, from inside the coordinator: the job cannot end meanwhile."""
    seen: list[Seen] = []
    publish = EarlyHls.publish_next

    def publish_and_look(self: EarlyHls, done: list) -> bool:
        if not publish(self, done):
            return False
        job = jobs.get(self._job.id, consistent=True)
        assert job is not None
        output = job.outputs[0]
        playlists, frames = {}, {}
        if output.playable_key:
            prefix = output.playable_key.rsplit("/", 1)[0]
            for name in ("master.m3u8", "180p.m3u8", "144p.m3u8"):
                playlists[name] = client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{name}")["Body"].read().decode()
            for name in re.findall(r"^\S+\.ts$", playlists["180p.m3u8"] + playlists["144p.m3u8"], re.M):
                path = folder / f"{self.published}-{name}"
                client("s3").download_file(bucket, f"{prefix}/{name}", str(path))
                frames[name] = decodes(path)
        seen.append(Seen(self.published, job, playlists, frames))
        return True

    monkeypatch.setattr(EarlyHls, "publish_next", publish_and_look)
    return seen


def test_an_hls_output_is_playable_in_chunk_order_before_the_job_completes(
    aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    source = make_source(tmp_path / "source.mp4", seconds=36)  # three 12 s chunks, two segments each
    deps = coordinator_deps(aws, tmp_path)
    bucket = deps.settings.outputs_bucket
    (tmp_path / "seen").mkdir()
    seen = watch_publications(monkeypatch, deps.jobs, bucket, tmp_path / "seen")
    job = queued_job(deps, source, REQUEST)
    done = run_chunked(aws, deps, job, tmp_path)
    assert done.status is JobStatus.COMPLETED

    assert seen, "nothing was published early"
    first = seen[0]
    assert first.job.status is JobStatus.PROCESSING and first.job.outputs[0].playable_key
    assert not first.job.outputs[0].ready  # pending until the final playlists are in place
    for rung in ("180p", "144p"):
        text = first.playlists[f"{rung}.m3u8"]
        assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-MEDIA-SEQUENCE:0" in text
        assert "#EXT-X-ENDLIST" not in text and "#EXT-X-DISCONTINUITY" not in text
        assert re.findall(r"^\S+\.ts$", text, re.M)[:2] == [f"{rung}_00000.ts", f"{rung}_00001.ts"]
    assert all(frames > 0 for frames in first.segment_frames.values())
    assert "180p.m3u8" in first.playlists["master.m3u8"] and "144p.m3u8" in first.playlists["master.m3u8"]

    # Each publication only appends: the playlists seen later start with what was seen before.
    for earlier, later in itertools.pairwise(seen):
        for name in ("180p.m3u8", "144p.m3u8"):
            assert later.playlists[name].startswith(earlier.playlists[name])
    # In chunk order, two segments a chunk: segment n is chunk n // 2's, numbered from the input's start.
    for look in seen:
        names = re.findall(r"^(\S+)\.ts$", look.playlists["144p.m3u8"], re.M)
        assert names == [f"144p_{n:05d}" for n in range(2 * look.published)][: len(names)]
        assert len(names) == 2 * look.published

    # The job as a client sees it while playable: pending, with a playable_url the playback route serves.
    links = DownloadLinks(client("s3"), bucket, 3600)
    resource = to_resource(first.job, links, API)
    assert resource.outputs[0].status == "pending" and resource.outputs[0].url is None
    assert resource.outputs[0].playable_url is not None
    token = resource.outputs[0].playable_url.removeprefix(f"{API}{playback.PATH}/").split("/")[0]
    playback_deps = PlaybackDeps(PlaybackSettings.from_env(aws.environment()), deps.jobs, deps.objects)

    # The final output: VOD playlists over the same segment names, the link signed early still valid.
    final = done.outputs[0]
    assert final.ready and final.secret == first.job.outputs[0].secret
    assert final.playable_key == final.key
    served = playlist(token, "144p.m3u8", playback_deps)
    assert served.final and "#EXT-X-PLAYLIST-TYPE:VOD" in served.text and "#EXT-X-ENDLIST" in served.text
    prefix = final.key.rsplit("/", 1)[0]
    vod = client("s3").get_object(Bucket=bucket, Key=f"{prefix}/144p.m3u8")["Body"].read().decode()
    early = re.findall(r"^\S+\.ts$", seen[-1].playlists["144p.m3u8"], re.M)
    assert re.findall(r"^\S+\.ts$", vod, re.M)[: len(early)] == early


def test_the_playback_route_serves_the_event_playlist_uncached_while_the_job_runs(
    aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    deps = coordinator_deps(aws, tmp_path)
    playback_deps = PlaybackDeps(PlaybackSettings.from_env(aws.environment()), deps.jobs, deps.objects)
    served: list[tuple[str, bool, str]] = []
    publish = EarlyHls.publish_next

    def publish_and_play(self: EarlyHls, done: list) -> bool:
        published = publish(self, done)
        job = deps.jobs.get(self._job.id, consistent=True)
        assert job is not None
        resource = to_resource(job, DownloadLinks(client("s3"), deps.settings.outputs_bucket, 3600), API)
        url = resource.outputs[0].playable_url
        if url is None or served:
            return published
        token = url.removeprefix(f"{API}{playback.PATH}/").split("/")[0]
        master = playlist(token, playback.MASTER_PLAYLIST, playback_deps)
        variant = playlist(token, "144p.m3u8", playback_deps)
        served.append((job.status.value, master.final or variant.final, variant.text))
        return published

    monkeypatch.setattr(EarlyHls, "publish_next", publish_and_play)
    run_chunked(aws, deps, queued_job(deps, make_source(tmp_path / "s.mp4", seconds=24), REQUEST), tmp_path)
    ((status, final, text),) = served
    assert (status, final) == ("processing", False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text
    assert all(line.startswith("https://") for line in text.splitlines() if line and not line.startswith("#"))


def test_the_write_that_makes_an_output_playable_is_one_job_playable_event():
    job = {
        "id": "job_" + "0" * 32,
        "tenant_id": "t1",
        "status": "processing",
        "version": 5,
        "created_at": "2026-11-30T00:00:00Z",
        "updated_at": "2026-11-30T00:00:01Z",
        "upload_id": "up_1",
        "input_key": "uploads/t1/up_1",
        "outputs": [{"spec": {"type": "mp4", "height": 144}}, {"spec": {"type": "hls", "heights": [144]}}],
    }
    playable = job | {"version": 6}
    playable["outputs"] = [job["outputs"][0], {**job["outputs"][1], "playable_key": "k/1-hls/master.m3u8"}]
    event = job_events.event_for(job, playable)
    assert event is not None and (event.type, event.output_index) == ("job.playable", 1)
    assert not job_events.is_terminal(event)
    again = playable | {"version": 7, "progress": 50}
    assert job_events.event_for(playable, again).type == "job.progress"  # type: ignore[union-attr]


def test_an_event_playlist_is_the_entries_so_far_with_a_fixed_target_duration():
    text = early_hls.event_playlist([(6.0, "144p_00000.ts"), (6.04, "144p_00001.ts")], early_hls.target_duration(6))
    assert text.splitlines()[:7] == [
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-TARGETDURATION:7",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        "#EXT-X-START:TIME-OFFSET=0",
    ]
    assert early_hls.media_entries(text) == [(6.0, "144p_00000.ts"), (6.04, "144p_00001.ts")]
    assert "#EXT-X-ENDLIST" not in text


def test_a_failed_early_publication_leaves_the_job_to_complete_as_before(
    aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def broken(self: EarlyHls, ladder: object, chunk: object) -> None:
        raise RuntimeError("the early segmenting failed")

    monkeypatch.setattr(EarlyHls, "_publish_chunk", broken)
    deps = coordinator_deps(aws, tmp_path)
    job = queued_job(deps, make_source(tmp_path / "s.mp4", seconds=24), REQUEST)
    done = run_chunked(aws, deps, job, tmp_path)
    assert done.status is JobStatus.COMPLETED and done.attempts == 1
    assert done.outputs[0].ready and done.outputs[0].playable_key is None
