"""Running one job: claim it, fetch the input to disk, probe, encode, upload the outputs, complete.

Delivery is at least once. The claim is a conditional write with a lease, so two deliveries of one message
produce one set of outputs and one ``completed``; a worker that dies leaves a lease that runs out, and the
redelivered message reclaims the job.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from videojobs import media
from videojobs.errors import JobFailure, LeaseLost
from videojobs.models import ErrorCode, ErrorDetail, Job, Mp4Output, StoredOutput
from videojobs.observability import logger
from videojobs.settings import WorkerSettings
from videojobs.storage import ObjectStore, output_key
from videojobs.store import JobStore

PROGRESS_INTERVAL_SECONDS = 1.0
# Progress writes double as the heartbeat that keeps the lease: even without progress, write this often.
HEARTBEAT_SECONDS = 15.0
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class WorkerDeps:
    settings: WorkerSettings
    jobs: JobStore
    objects: ObjectStore
    worker_id: str


class ProgressReporter:
    """Writes progress at most once a second (and only when it moved), or as a heartbeat."""

    def __init__(self, job: Job, deps: WorkerDeps, clock=time.monotonic):
        self._job_id = job.id
        self._deps = deps
        self._clock = clock
        self._last_percent = job.progress
        self._last_write = clock()

    def __call__(self, fraction: float) -> None:
        percent = min(int(fraction * 100), 99)  # 100 is written by the completion itself
        now = self._clock()
        moved = percent > self._last_percent and now - self._last_write >= PROGRESS_INTERVAL_SECONDS
        if moved or now - self._last_write >= HEARTBEAT_SECONDS:
            if self._deps.jobs.record_progress(self._job_id, self._deps.worker_id, percent, LEASE) is None:
                raise LeaseLost(self._job_id)
            self._last_percent, self._last_write = percent, now


def process_job(job_id: str, deps: WorkerDeps, *, time_limit_seconds: float) -> Job | None:
    """Run the job if this worker can claim it. Returns the finished job, or None when there was nothing
    to do (unknown job, already finished, or held by another live worker). Raises on transient errors so
    the message is retried; permanent ones end the job ``failed``."""
    job = deps.jobs.claim(job_id, deps.worker_id, LEASE)
    if job is None:
        current = deps.jobs.get(job_id, consistent=True)
        logger.info("job not claimed", extra={"job_id": job_id, "status": current.status if current else None})
        return None
    logger.append_keys(job_id=job.id, attempt=job.attempts)
    try:
        with tempfile.TemporaryDirectory(prefix="job-", dir=deps.settings.scratch_dir) as scratch:
            outputs = _run(job, Path(scratch), deps, time_limit_seconds)
        finished = deps.jobs.complete(job.id, deps.worker_id, outputs)
        if finished is None:
            raise LeaseLost(job.id)
        logger.info("job completed")
        return finished
    except JobFailure as failure:
        logger.info("job failed", extra={"code": failure.code, "reason": failure.message})
        return deps.jobs.fail(job.id, ErrorDetail(code=failure.code, message=failure.message), deps.worker_id)
    except LeaseLost:
        logger.warning("lease lost: another worker or a cancel took the job")
        return None
    finally:
        logger.remove_keys(["job_id", "attempt"])


def _run(job: Job, scratch: Path, deps: WorkerDeps, time_limit_seconds: float) -> list[StoredOutput]:
    source = scratch / "input"
    deps.objects.download(deps.settings.uploads_bucket, job.input_key, source)
    probed = media.probe(source)
    if deps.jobs.record_probe(job.id, deps.worker_id, probed.metadata) is None:
        raise LeaseLost(job.id)

    arguments: list[str] = []
    planned: list[tuple[StoredOutput, Path, str]] = []
    for index, output in enumerate(job.outputs):
        spec = Mp4Output.model_validate(output.spec)
        if not probed.has_video:
            raise JobFailure(ErrorCode.INVALID_MEDIA, "an mp4 output needs a video stream; the input has none")
        name = f"{index}-mp4-{spec.height}p.mp4"
        arguments += media.mp4_arguments(spec, scratch / name, probed.has_audio)
        planned.append((output, scratch / name, "video/mp4"))

    try:
        media.run_ffmpeg(source, probed.demuxer, arguments,
                         duration_seconds=probed.metadata.duration_seconds,
                         on_progress=ProgressReporter(job, deps), timeout_seconds=time_limit_seconds)
    except media.EncodeTimeout as error:
        raise JobFailure(ErrorCode.PROCESSING_FAILED, str(error)) from error

    results = []
    for output, path, content_type in planned:
        key = output_key(job.tenant_id, job.id, path.name)
        deps.objects.upload(path, deps.settings.outputs_bucket, key, content_type)
        results.append(output.model_copy(update={
            "key": key, "size_bytes": path.stat().st_size, "content_type": content_type,
        }))
    return results


def fail_abandoned(job_id: str, jobs: JobStore, reason: str) -> Job | None:
    """The last delivery of a job's message failed: end the job ``failed`` rather than leave it hanging."""
    return jobs.fail(job_id, ErrorDetail(code=ErrorCode.PROCESSING_FAILED, message=reason))
