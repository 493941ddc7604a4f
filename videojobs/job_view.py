"""The public view of a job: how a stored ``Job`` looks to a client (``JobResource``, ``OutputResult``) and how
soon a poller should ask again.

Pure mapping, no use case and no AWS call: adapters (the event log, the notifications) and the services that
answer the API import it alike. Download links are signed locally by a ``Presigner`` (no request is made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from videojobs import playback
from videojobs.models import (
    Job,
    JobInput,
    JobResource,
    JobStatus,
    OutputResult,
    OutputStatus,
    StoredOutput,
    isoformat,
)

MIN_RETRY_AFTER_SECONDS, MAX_RETRY_AFTER_SECONDS = 1, 30


class Presigner(Protocol):
    def presigned_download(self, bucket: str, key: str, expires_in: int) -> str: ...


@dataclass(frozen=True)
class DownloadLinks:
    """How to link a completed job's outputs: presigned GETs from ``bucket``, valid for ``ttl_seconds``."""

    presigner: Presigner
    bucket: str
    ttl_seconds: int


def to_resource(job: Job, links: DownloadLinks | None = None, base_url: str | None = None) -> JobResource:
    """The public view of a job. With ``links``, completed outputs get presigned download URLs, and with
    ``base_url`` (the API's, as the client called it) HLS outputs get their signed playback link."""
    outputs = [output_result(job, index, output, links, base_url) for index, output in enumerate(job.outputs)]
    return JobResource(
        id=job.id,
        status=job.status,
        progress=job.progress,
        created_at=isoformat(job.created_at),
        updated_at=isoformat(job.updated_at),
        started_at=isoformat(job.started_at) if job.started_at else None,
        completed_at=isoformat(job.completed_at) if job.completed_at else None,
        input=JobInput(upload_id=job.upload_id, metadata=job.input_metadata),
        outputs=outputs,
        error=job.error,
        webhook_url=job.webhook_url,
        metadata=job.metadata,
        version=job.version,
        webhook_events=job.webhook_events,
        stage=job.stage,
        eta_seconds=job.eta_seconds,
        cancel_requested_at=isoformat(job.cancel_requested_at) if job.cancel_requested_at else None,
        priority=job.priority,
        usage=job.usage if job.status.terminal else None,
        parallelism=job.parallelism,
    )


def output_result(
    job: Job, index: int, output: StoredOutput, links: DownloadLinks | None, base_url: str | None
) -> OutputResult:
    """The public view of one output: what was asked, what was made and, once it is ready (and ``links`` is
    given), where to get it, even while the job still works on its other outputs. Without ``base_url``, an HLS
    output has no ``url``."""
    found: dict[str, Any] = {}
    ready = output_ready(job, output)
    if links is not None and ready:
        if output.secret and output.key:
            if base_url is not None:
                expires = int(time.time()) + links.ttl_seconds
                found["url"] = playback.master_url(base_url, playback.sign(output.secret, job.id, index, expires))
        elif output.key:
            found["url"] = links.presigner.presigned_download(links.bucket, output.key, links.ttl_seconds)
        if output.keys is not None:
            found["urls"] = [
                links.presigner.presigned_download(links.bucket, key, links.ttl_seconds) for key in output.keys
            ]
    playable = output.playable_key and output.secret and job.status in (JobStatus.PROCESSING, JobStatus.COMPLETED)
    if links is not None and base_url is not None and playable:
        assert output.secret is not None
        expires = int(time.time()) + links.ttl_seconds
        token = playback.sign(output.secret, job.id, index, expires)
        found["playable_url"] = playback.master_url(base_url, token)
    details = dict(output.details or {})
    if "renditions" in details:
        details["renditions"] = [{k: v for k, v in r.items() if k != "playlist"} for r in details["renditions"]]
    return OutputResult(
        **output.spec,
        **details,
        **found,
        status=OutputStatus.READY if ready else OutputStatus.PENDING,
        size_bytes=output.size_bytes,
        content_type=output.content_type,
    )


def output_ready(job: Job, output: StoredOutput) -> bool:
    """Uploaded, and still there: a job that failed or was cancelled removed what its worker had written."""
    return output.ready and job.status not in (JobStatus.FAILED, JobStatus.CANCELLED)


def retry_after_seconds(job: Job | JobResource) -> int | None:
    """How long a poller should wait before asking again; None once the job is finished. While processing
    it follows the ETA, within 1..30 s: soon for a job about to finish, rarely for a long one."""
    if job.status.terminal:
        return None
    if job.status is JobStatus.QUEUED:
        return 5
    if job.cancel_requested_at is not None:
        return 1
    if job.eta_seconds is None:
        return 2
    return max(MIN_RETRY_AFTER_SECONDS, min(job.eta_seconds, MAX_RETRY_AFTER_SECONDS))
