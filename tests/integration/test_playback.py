"""HLS behind signed links: every URI resolves the way a player resolves it, and only a valid link is served."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from infra.local.resources import Resources
from tests.integration.workers import attempt, queued_job, worker_deps
from videojobs import playback
from videojobs.aws import client
from videojobs.errors import ApiError
from videojobs.job_view import to_resource
from videojobs.models import Job
from videojobs.service.jobs import StatusDeps, download_links, tenant_counters
from videojobs.service.playback import PlaybackDeps, playlist
from videojobs.service.processing import process_job
from videojobs.settings import PlaybackSettings, StatusSettings
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.usage import UsageLedger

API = "https://api.example.com/v1"


@pytest.fixture
def completed(aws: Resources, tmp_path: Path, clip: Path) -> Job:
    deps = worker_deps(aws, tmp_path)
    job = queued_job(deps, clip, [{"type": "hls", "heights": [240, 144]}, {"type": "mp4", "height": 144}])
    return process_job(job.id, deps, attempt()).job


@pytest.fixture
def deps(aws: Resources) -> PlaybackDeps:
    worker = worker_deps(aws, Path("/tmp"))
    return PlaybackDeps(PlaybackSettings.from_env(aws.environment()), worker.jobs, worker.objects)


def fetch(url: str, deps: PlaybackDeps) -> str:
    """What a player gets for ``url``: our route for playlists, S3 for the rest."""
    parts = urlsplit(url)
    if url.startswith(API):
        token, name = parts.path.removeprefix(urlsplit(API).path + playback.PATH + "/").split("/")
        return playlist(token, name, deps).text
    bucket = parts.netloc.split(".s3", 1)[0]  # a virtual-hosted presigned URL
    return client("s3").get_object(Bucket=bucket, Key=unquote(parts.path.lstrip("/")))["Body"].read().decode("latin-1")


def master_url(completed: Job, aws: Resources) -> str:
    worker = worker_deps(aws, Path("/tmp"))
    settings = StatusSettings.from_env(aws.environment())
    limits = TenantLimitStore(client("dynamodb"), settings.tenants_table, TenantLimits.defaults(settings))
    status = StatusDeps(
        settings,
        worker.jobs,
        worker.objects,
        UsageLedger(client("dynamodb"), settings.usage_table),
        limits,
        tenant_counters(client("dynamodb"), settings.tenants_table),
    )
    resource = to_resource(completed, download_links(status), API)
    hls, mp4 = resource.outputs
    assert mp4.url and "Signature" in mp4.url  # a presigned GET, as before
    assert hls.url and hls.url.startswith(f"{API}{playback.PATH}/") and hls.url.endswith("/master.m3u8")
    return hls.url


def test_master_variants_and_segments_resolve_as_a_player_resolves_them(
    completed: Job, aws: Resources, deps: PlaybackDeps
):
    url = master_url(completed, aws)
    master = fetch(url, deps)
    variants = [line for line in master.splitlines() if line and not line.startswith("#")]
    assert len(variants) == 2 and "RESOLUTION=320x240" in master and 'CODECS="avc1.' in master
    for variant in variants:
        variant_url = urljoin(url, variant)  # relative: stays under the signed path
        assert variant_url.startswith(url.rsplit("/", 1)[0] + "/")
        media = fetch(variant_url, deps)
        segments = [urljoin(variant_url, line) for line in media.splitlines() if line and not line.startswith("#")]
        assert segments and "#EXT-X-ENDLIST" in media
        for segment in segments:
            assert "amazonaws.com" in segment and "Signature" in segment  # presigned, absolute
            assert fetch(segment, deps).startswith("G")  # an MPEG-TS packet's sync byte (0x47)


def test_only_a_valid_link_to_a_listed_playlist_is_served(completed: Job, aws: Resources, deps: PlaybackDeps):
    token = master_url(completed, aws).split("/")[-2]
    secret = completed.outputs[0].secret
    refused_tokens = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # another signature
        token.replace(".0.", ".1.", 1),  # another output: the mp4, which has no playlist
        playback.sign(secret, completed.id, 0, 1),  # expired
        "nonsense",
    ]
    for refused_token in refused_tokens:
        with pytest.raises(ApiError) as refused:
            playlist(refused_token, playback.MASTER_PLAYLIST, deps)
        assert (refused.value.status, refused.value.code) == (403, "forbidden"), refused_token
    for name in ("240p_00000.ts", "../0-mp4-144p.mp4", "1080p.m3u8"):
        with pytest.raises(ApiError) as missing:
            playlist(token, name, deps)
        assert missing.value.status == 404
    assert playlist(token, "144p.m3u8", deps).text.startswith("#EXTM3U")
