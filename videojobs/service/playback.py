"""Where a completed job's outputs are: presigned GETs, and signed playback links for HLS (``videojobs.playback``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from videojobs import playback
from videojobs.errors import ApiError, not_found
from videojobs.job_store import JobStore
from videojobs.models import OUTPUT_SPEC, ErrorCode, HlsOutput, Job, JobStatus, StoredOutput
from videojobs.object_store import ObjectStore
from videojobs.settings import PlaybackSettings


@dataclass(frozen=True)
class PlaybackDeps:
    settings: PlaybackSettings
    jobs: JobStore
    objects: ObjectStore


@dataclass(frozen=True)
class Playlist:
    text: str
    final: bool
    """The completed job's playlists; else the ``EVENT`` playlists of an output playable early, which grow."""


def playlist(token: str, name: str, deps: PlaybackDeps) -> Playlist:
    """The playlist ``name`` of the HLS output the token names: the master as written, a variant with each
    segment as a presigned GET. An invalid or expired token is 403, whatever it names. An output playable
    early (``StoredOutput.playable_key``) is served while its job runs."""
    forbidden = ApiError(
        ErrorCode.FORBIDDEN,
        "the playback link is invalid or has expired; get a fresh one from GET /jobs/{id}",
    )
    parsed = playback.parse(token)
    job = deps.jobs.get(parsed.job_id, consistent=True) if parsed is not None else None
    output = _hls_output(job, parsed.output_index) if job is not None and parsed is not None else None
    if parsed is None or output is None or not playback.is_valid(parsed, output.secret or "", time.time()):
        raise forbidden
    names = {rendition["playlist"] for rendition in (output.details or {}).get("renditions", [])}
    if name != playback.MASTER_PLAYLIST and name not in names:
        raise not_found("playlist")
    master = output.key or output.playable_key
    assert master is not None and job is not None
    folder = master.rsplit("/", 1)[0]
    final = job.status is JobStatus.COMPLETED
    bucket, ttl = deps.settings.outputs_bucket, deps.settings.download_url_ttl_seconds
    text = deps.objects.read(bucket, f"{folder}/{name}").decode()
    if name == playback.MASTER_PLAYLIST:
        return Playlist(text, final)  # relative variant URIs: the player resolves them under the same signed path
    rewritten = playback.rewrite_media_playlist(
        text, lambda uri: deps.objects.presigned_download(bucket, f"{folder}/{uri}", ttl)
    )
    return Playlist(rewritten, final)


def _hls_output(job: Job, index: int) -> StoredOutput | None:
    if index >= len(job.outputs):
        return None
    output = job.outputs[index]
    is_hls = isinstance(OUTPUT_SPEC.validate_python(output.spec), HlsOutput)
    if job.status is JobStatus.COMPLETED:
        return output if is_hls and output.secret and output.key else None
    playable = job.status is JobStatus.PROCESSING and output.playable_key
    return output if is_hls and output.secret and playable else None
