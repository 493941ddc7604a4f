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


def playlist(token: str, name: str, deps: PlaybackDeps) -> str:
    """The playlist ``name`` of the HLS output the token names: the master as written, a variant with each
    segment as a presigned GET. An invalid or expired token is 403, whatever it names."""
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
    assert output.key is not None
    folder = output.key.rsplit("/", 1)[0]
    bucket, ttl = deps.settings.outputs_bucket, deps.settings.download_url_ttl_seconds
    text = deps.objects.read(bucket, f"{folder}/{name}").decode()
    if name == playback.MASTER_PLAYLIST:
        return text  # relative variant URIs: the player resolves them under the same signed path
    return playback.rewrite_media_playlist(
        text, lambda uri: deps.objects.presigned_download(bucket, f"{folder}/{uri}", ttl)
    )


def _hls_output(job: Job, index: int) -> StoredOutput | None:
    if job.status is not JobStatus.COMPLETED or index >= len(job.outputs):
        return None
    output = job.outputs[index]
    is_hls = isinstance(OUTPUT_SPEC.validate_python(output.spec), HlsOutput)
    return output if is_hls and output.secret and output.key else None
