"""Running one job: claim it, fetch the input, probe, route, encode, upload the outputs, complete.

Delivery is at least once. The claim is a conditional write with a lease, so two deliveries of one message
produce one set of outputs and one ``completed``: a delivery that finds the job held by a live worker is put
back until that lease could have run out, and one that finds it finished is dropped. A worker that dies leaves
a lease that runs out and a message that becomes visible again; the next delivery reclaims the job.

While the job runs, a ``Heartbeat`` thread writes throttled progress (which extends the lease), keeps the queue
message invisible, and looks about once a second whether the job was cancelled or taken away; when it was,
ffmpeg or the transfer in flight is stopped at once.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from videojobs import media, wiring
from videojobs.chunk_store import ChunkStore
from videojobs.dispatch import Deferred, Dispatch, claim_in_turn
from videojobs.errors import JobFailure
from videojobs.job_store import JobStore
from videojobs.metric_names import JOB_DURATION, JOBS_CANCELLED, JOBS_COMPLETED, JOBS_FAILED
from videojobs.models import (
    ErrorCode,
    ErrorDetail,
    Job,
    JobMessage,
    JobStage,
    JobStatus,
    MediaMetadata,
    Parallelism,
    StoredOutput,
    utcnow,
)
from videojobs.object_store import ObjectStore, output_key
from videojobs.observability import logger, metrics
from videojobs.outputs import plan_encode
from videojobs.pricing import Compute
from videojobs.queues import ChunkQueue, JobQueue
from videojobs.service import chunking
from videojobs.settings import WorkerSettings
from videojobs.usage import UsageMeter

SCRATCH_OWNER_MARK = "pid"
_SCRATCH_NAME = re.compile(rf"job_[0-9a-f]+-{SCRATCH_OWNER_MARK}(\d+)-.+")

PROGRESS_INTERVAL_SECONDS = 1.0
"""Progress is written at most this often, and only when it moved by a whole percent."""
CHECK_INTERVAL_SECONDS = 1.0
"""Between writes, the job is read this often: a cancel or a lost lease is noticed within about that."""
TICK_SECONDS = 0.25
TRANSCODED_PERCENT = 95
"""Transcoding fills progress up to here; uploading up to 99; the completion itself writes 100."""
HAND_OFF_AFTER_FRACTION = 0.05
"""A Lambda worker trusts its ETA after this much of the encode, and hands the job on if it would not finish."""
DISK_HEADROOM = 2.5
"""The input and every output must fit the scratch disk: about this many times the input's size."""


class MessageLease(Protocol):
    """The queue message being worked on (``videojobs.queues.ReceivedMessage``)."""

    def hide_for(self, seconds: float) -> object: ...


@dataclass(frozen=True)
class WorkerDeps:
    settings: WorkerSettings
    jobs: JobStore
    objects: ObjectStore
    worker_id: str
    long_jobs: JobQueue | None = None
    """Where a Lambda worker hands the jobs too long for it; None for the long-jobs consumer itself."""
    dispatch: Dispatch | None = None
    """Per-tenant ``max_active_jobs`` and priorities at claim time; None claims any job at once."""
    chunks: ChunkStore | None = None
    chunk_queue: ChunkQueue | None = None
    """Both set: long inputs are encoded in chunks by the chunk workers (``chunking``)."""

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    @property
    def heartbeat_seconds(self) -> float:
        return self.settings.lease_seconds / 4


@dataclass(frozen=True)
class Attempt:
    """What the runner (Lambda handler or long-jobs consumer) gives one delivery."""

    deadline: float
    """``time.monotonic()`` by which the worker must have stopped."""
    message: MessageLease | None = None
    shutdown: threading.Event | None = None
    """Set when the runner must stop (a container's SIGTERM): the job is given back at once."""
    deferrals: int = 0
    """How often the message's job was deferred at its tenant's limit before (``JobMessage.deferrals``)."""
    compute: Compute | None = None
    """What runs it, as the bill sees it: each write that ends the attempt adds its usage to the job's."""

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(frozen=True)
class Outcome:
    job: Job | None
    retry_in_seconds: float | None = None
    """None: the delivery is done (delete the message). Else deliver the message again this much later."""
    requeue_in_seconds: float | None = None
    """Not the job's turn (``videojobs.dispatch``): queue a fresh copy of the message this much later, then end
    this delivery, so that waiting counts neither an attempt nor a receive toward the dead-letter queue."""
    at_limit: bool = False
    """The deferral was for the tenant's ``max_active_jobs``: the copy counts one more deferral."""


class Stop(StrEnum):
    CANCELLED = "cancelled"
    LOST = "lost"
    """The job is no longer ours: finished, or taken over after our lease ran out."""
    SHUTDOWN = "shutdown"
    HAND_OFF = "hand_off"
    DEADLINE = "deadline"
    """The attempt ran past its time limit (a probe or a transfer that hangs): the lease is no longer renewed."""


class Interrupted(Exception):
    def __init__(self, reason: Stop):
        super().__init__(reason.value)
        self.reason = reason


def sweep_stale_scratch(scratch_dir: str) -> int:
    """Remove the job scratch directories whose worker process is gone; returns how many. A Lambda invocation
    killed at its timeout leaves its files in a ``/tmp`` that the sandbox's next runtime reuses; run this when a
    worker starts. A directory of a live process is another worker's at work (locally, workers share a folder)."""
    removed = 0
    for path in Path(scratch_dir).glob("job_*"):
        owner = _SCRATCH_NAME.fullmatch(path.name)
        if owner is None or not path.is_dir() or _alive(int(owner.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    if removed:
        logger.info("removed stale scratch directories", extra={"count": removed, "scratch_dir": scratch_dir})
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def process_job(job_id: str, deps: WorkerDeps, attempt: Attempt) -> Outcome:
    """Run the job if this worker can claim it. Permanent failures end the job ``failed`` (done); transient ones
    give the job back and ask for the message again later; a job another live worker holds is asked for again
    once that worker's lease could have run out; a job whose turn has not come is queued again (deferred). A job
    that ended frees its tenant's active-job slot."""
    outcome = _process_job(job_id, deps, attempt)
    if deps.dispatch is not None and outcome.job is not None and outcome.job.status.terminal:
        deps.dispatch.active.release(outcome.job.tenant_id, outcome.job.id)
    return outcome


def _process_job(job_id: str, deps: WorkerDeps, attempt: Attempt) -> Outcome:
    if attempt.message is not None:
        # The queue's visibility is long (it covers a whole Lambda run); should this worker die before its first
        # heartbeat, its message comes back after two leases instead.
        attempt.message.hide_for(2 * deps.settings.lease_seconds)
    try:
        job = _claim(job_id, deps, attempt.deferrals)
    except Deferred as wait:
        logger.info("job deferred", extra={"job_id": job_id, "reason": wait.reason, "seconds": round(wait.seconds)})
        return Outcome(wait.job, requeue_in_seconds=wait.seconds, at_limit=wait.at_limit)
    if job is None:
        return _not_claimed(job_id, deps)
    logger.append_keys(job_id=job.id, attempt=job.attempts)
    uploaded: list[str] = []  # the keys this attempt wrote: what it removes if it does not complete
    if attempt.compute is not None:
        kept_days = wiring.BUCKETS["outputs"].expire_after_days or 0
        deps = replace(deps, jobs=deps.jobs.metered(UsageMeter(attempt.compute, job, uploaded, kept_days)))
    try:
        if job.cancel_requested_at is not None:  # asked while its previous worker was dying
            return Outcome(_cancel(job, deps, uploaded))
        if job.attempts > deps.settings.max_attempts:
            detail = f"processing failed on {job.attempts - 1} attempts"
            return Outcome(
                deps.jobs.fail(job.id, ErrorDetail(code=ErrorCode.PROCESSING_FAILED, message=detail), deps.worker_id)
            )
        if job.long_job and deps.long_jobs is not None:  # a redelivery of a job already handed on
            return _hand_off(job, deps)
        with Heartbeat(job, deps, attempt) as heartbeat:
            try:
                return _run(job, deps, heartbeat, attempt, uploaded)
            except media.EncodeStopped:
                return _interrupted(job, deps, heartbeat.reason or Stop.LOST, uploaded)
            except Interrupted as interruption:
                return _interrupted(job, deps, interruption.reason, uploaded)
            except JobFailure as failure:
                return _failed(job, deps, failure, uploaded)
    except Exception:
        logger.exception("job attempt failed; it will be retried")
        _discard(deps, uploaded)
        deps.jobs.release(job.id, deps.worker_id)
        return Outcome(job, retry_in_seconds=min(deps.settings.lease_seconds * 2 ** (job.attempts - 1) / 2, 900))
    finally:
        logger.remove_keys(["job_id", "attempt"])


def _claim(job_id: str, deps: WorkerDeps, deferrals: int) -> Job | None:
    if deps.dispatch is None:
        return deps.jobs.claim(job_id, deps.worker_id, deps.lease)
    return claim_in_turn(job_id, deps.worker_id, deps.lease, deps.dispatch, deferrals=deferrals)


def _not_claimed(job_id: str, deps: WorkerDeps) -> Outcome:
    current = deps.jobs.get(job_id, consistent=True)
    if current is None or current.status.terminal:
        logger.info("nothing to do", extra={"job_id": job_id, "status": current.status if current else None})
        return Outcome(current)
    expires = current.lease_expires_at
    wait = (expires - utcnow()).total_seconds() + 1 if current.lease_owner and expires else 1
    logger.info("job held by another worker", extra={"job_id": job_id, "retry_in_seconds": wait})
    return Outcome(current, retry_in_seconds=max(wait, 1))


def _run(job: Job, deps: WorkerDeps, heartbeat: Heartbeat, attempt: Attempt, uploaded: list[str]) -> Outcome:
    settings = deps.settings
    prefix = f"{job.id}-{SCRATCH_OWNER_MARK}{os.getpid()}-"  # the owner's pid: see sweep_stale_scratch
    with tempfile.TemporaryDirectory(prefix=prefix, dir=settings.scratch_dir) as directory:
        scratch = Path(directory)
        heartbeat.stage(JobStage.PROBING)
        found = deps.objects.head(settings.uploads_bucket, job.input_key)
        if found is None:
            raise JobFailure(ErrorCode.UPLOAD_NOT_FOUND, "the uploaded input is gone (uploads expire after 7 days)")
        if found.size_bytes * DISK_HEADROOM > shutil.disk_usage(scratch).free:
            if deps.long_jobs is not None:
                return _hand_off(job, deps)
            raise JobFailure(ErrorCode.INPUT_TOO_LARGE, "the input and its outputs do not fit the worker's disk")
        source = scratch / "input"
        deps.objects.download(settings.uploads_bucket, job.input_key, source, progress=heartbeat.transferred)
        limits = media.Limits(
            settings.max_input_dimension,
            settings.max_input_pixels,
            settings.max_input_duration_seconds,
            settings.max_input_streams,
        )
        probed = media.probe(
            source, limits, timeout_seconds=max(min(media.PROBE_TIMEOUT_SECONDS, attempt.seconds_left()), 1)
        )
        heartbeat.record_probe(probed.metadata)

        made_dir = scratch / "outputs"
        made_dir.mkdir()
        coordination = _coordination(deps)
        if coordination is not None and chunking.should_chunk(job, probed, settings):
            # Chunk workers encode the video; this worker waits for them (handed on like any job if it
            # would outlast its time), then stitches.
            try:
                made = chunking.encode_in_chunks(
                    job,
                    coordination,
                    heartbeat,
                    source,
                    probed,
                    made_dir,
                    max(attempt.seconds_left(), 1),
                    playable=_Playable(job, heartbeat, uploaded),
                )
            except media.EncodeTimeout as error:
                if deps.long_jobs is not None:
                    return _hand_off(job, deps)
                raise JobFailure(ErrorCode.PROCESSING_FAILED, str(error)) from error
        else:
            plan = plan_encode(job.outputs, probed, made_dir, settings.work_pixels_per_second)
            duration = probed.metadata.duration_seconds
            work = plan.work_seconds
            if settings.input_read_rate and duration:
                work = max(work, duration / settings.input_read_rate)
            budget = min(settings.lambda_time_budget_seconds, attempt.seconds_left())
            if deps.long_jobs is not None and work > budget:
                logger.info("handing the job on", extra={"estimated_seconds": round(work), "budget_seconds": budget})
                return _hand_off(job, deps)

            heartbeat.stage(JobStage.TRANSCODING, duration_seconds=duration)
            input_options = ["-max_pixels", str(limits.max_pixels), "-t", str(limits.max_duration_seconds)]
            if settings.input_read_rate:
                input_options += ["-readrate", str(settings.input_read_rate)]
            try:
                media.run_ffmpeg(
                    source,
                    probed.demuxer,
                    plan.arguments,
                    duration_seconds=duration,
                    on_progress=heartbeat.transcoded,
                    timeout_seconds=max(attempt.seconds_left(), 1),
                    stop=heartbeat.stopped,
                    input_options=input_options,
                )
            except media.EncodeTimeout as error:
                if deps.long_jobs is not None:
                    return _hand_off(job, deps)
                raise JobFailure(ErrorCode.PROCESSING_FAILED, str(error)) from error
            made = [collect() for collect in plan.collectors]

        files = [file for output in made for file in output.files]
        heartbeat.stage(JobStage.UPLOADING, total_bytes=sum(file.path.stat().st_size for file in files))
        # One output at a time, each announced (job.output.ready) as soon as it is uploaded.
        for index, output in enumerate(made):
            uploads = [(file.path, _key(job, file.name), file.content_type) for file in output.files]
            uploaded.extend(key for _, key, _ in uploads)  # before: a transfer cut short may still leave its object
            deps.objects.upload_many(settings.outputs_bucket, uploads, progress=heartbeat.transferred)
            # heartbeat.outputs: an HLS output made playable early keeps its secret (links handed out work on).
            stored = output.stored(heartbeat.outputs[index], lambda name: _key(job, name))
            heartbeat.output_ready(index, stored)
        finished = heartbeat.complete(heartbeat.outputs)
        logger.info("job completed")
        _discard_pieces(job, deps)
        return Outcome(finished)


@dataclass
class _Playable:
    """Where a chunked encode publishes its HLS outputs early (``early_hls.PlayableSink``)."""

    job: Job
    heartbeat: Heartbeat
    uploaded: list[str]

    def key_of(self, name: str) -> str:
        return _key(self.job, name)

    def output_playable(self, index: int, output: StoredOutput) -> None:
        self.heartbeat.output_playable(index, output)


def _coordination(deps: WorkerDeps) -> chunking.Coordination | None:
    if deps.chunks is None or deps.chunk_queue is None:
        return None
    return chunking.Coordination(deps.settings, deps.jobs, deps.chunks, deps.chunk_queue, deps.objects)


def _discard_pieces(job: Job, deps: WorkerDeps) -> None:
    """A chunked encode's pieces: removed once the job is over, whichever way it ended."""
    if deps.chunks is not None:
        chunking.discard_pieces(job, deps.chunks, deps.objects, deps.settings.outputs_bucket)


def _key(job: Job, name: str) -> str:
    # Each attempt writes under its own prefix: two workers never write the same key.
    return output_key(job.tenant_id, job.id, f"a{job.attempts}/{name}")


def _hand_off(job: Job, deps: WorkerDeps) -> Outcome:
    """Give the job to the long-jobs queue: released first, so that the consumer can claim it at once."""
    assert deps.long_jobs is not None
    released = deps.jobs.release(job.id, deps.worker_id, to_long_queue=True)
    if released is None:
        return Outcome(deps.jobs.get(job.id, consistent=True))
    deps.long_jobs.send(JobMessage(job_id=job.id), tenant_id=job.tenant_id)
    logger.info("job handed to the long-jobs queue")
    return Outcome(released)


def _interrupted(job: Job, deps: WorkerDeps, reason: Stop, uploaded: list[str]) -> Outcome:
    logger.info("job attempt stopped", extra={"reason": reason.value})
    if reason is Stop.CANCELLED:
        return Outcome(_cancel(job, deps, uploaded))
    _discard(deps, uploaded)
    if reason is Stop.HAND_OFF or (reason is Stop.DEADLINE and deps.long_jobs is not None):
        return _hand_off(job, deps)
    if reason is Stop.DEADLINE:
        detail = f"the job ran longer than {deps.settings.job_time_limit_seconds:.0f} s"
        return Outcome(
            deps.jobs.fail(job.id, ErrorDetail(code=ErrorCode.PROCESSING_FAILED, message=detail), deps.worker_id)
        )
    if reason is Stop.SHUTDOWN:  # a deployment or a scale-in, not the job's fault: the try does not count
        deps.jobs.release(job.id, deps.worker_id, count_attempt=False)
        return Outcome(job, retry_in_seconds=0)
    return Outcome(deps.jobs.get(job.id, consistent=True))


def _failed(job: Job, deps: WorkerDeps, failure: JobFailure, uploaded: list[str]) -> Outcome:
    logger.info("job failed", extra={"code": failure.code, "reason": failure.message})
    _discard(deps, uploaded)
    _discard_pieces(job, deps)
    failed = deps.jobs.fail(job.id, ErrorDetail(code=failure.code, message=failure.message), deps.worker_id)
    if failed is None and _reason_lost(job, deps) is Stop.CANCELLED:
        return Outcome(_cancel(job, deps, uploaded))
    return Outcome(failed)


def _cancel(job: Job, deps: WorkerDeps, uploaded: list[str]) -> Job | None:
    """Remove the outputs this attempt wrote, then end the job ``cancelled``. (The cancel request itself
    removed what earlier attempts left.)"""
    _discard(deps, uploaded)
    logger.info("job cancelled", extra={"objects_removed": len(uploaded)})
    cancelled = deps.jobs.cancel(job.id, deps.worker_id)
    _discard_pieces(job, deps)
    return cancelled


def _discard(deps: WorkerDeps, uploaded: list[str]) -> None:
    if uploaded:
        deps.objects.delete_keys(deps.settings.outputs_bucket, uploaded)
        uploaded.clear()


def _reason_lost(job: Job, deps: WorkerDeps) -> Stop | None:
    """Why a write of this worker's would fail now, or None if the job is still ours to write."""
    current = deps.jobs.get(job.id, consistent=True)
    if current is None or current.status is not JobStatus.PROCESSING or current.lease_owner != deps.worker_id:
        return Stop.LOST
    return Stop.CANCELLED if current.cancel_requested_at is not None else None


class Heartbeat:
    """While a job runs, the one writer of its progress: throttled writes (each extends the lease, and one at
    least every quarter lease as a heartbeat), the queue message kept invisible, a read about once a second to
    notice a cancel or a lost lease, and, in a Lambda worker, a hand-off when the ETA passes the deadline.

    ``stopped`` is set with a ``reason`` when the job must stop; ffmpeg and the transfers watch it."""

    def __init__(self, job: Job, deps: WorkerDeps, attempt: Attempt, clock: Callable[[], float] = time.monotonic):
        self.stopped = threading.Event()
        self.reason: Stop | None = None
        self._job, self._deps, self._attempt, self._clock = job, deps, attempt, clock
        self.outputs: list[StoredOutput] = list(job.outputs)
        """The job's outputs as written so far: those ready have their keys."""
        self._lock = threading.Lock()
        self._closing = threading.Event()
        now = clock()
        self._stage: JobStage | None = None
        self._stage_started = now
        self._done = 0.0  # of the current stage, 0..1
        self._total_bytes = 0
        self._duration: float | None = None
        self._written_percent = -1
        self._last_write = self._last_check = now
        self._last_hidden = -math.inf
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._keep_message_hidden(self._clock())
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self._thread.join()

    # -- from the worker ---------------------------------------------------------------------------------

    def stage(self, stage: JobStage, *, duration_seconds: float | None = None, total_bytes: int = 0) -> None:
        """Enter ``stage`` and write it at once."""
        with self._lock:
            self._stage, self._stage_started, self._done = stage, self._clock(), 0.0
            self._duration, self._total_bytes = duration_seconds, total_bytes
            self._write_locked(self._clock())
        self._raise_if_stopped()

    def record_probe(self, metadata: MediaMetadata) -> None:
        with self._lock:
            if self._deps.jobs.record_probe(self._job.id, self._deps.worker_id, metadata) is None:
                self._stop(_reason_lost(self._job, self._deps) or Stop.LOST)
        self._raise_if_stopped()

    def transcoded(self, fraction: float) -> None:
        """ffmpeg's progress (it may pass 1: the input is longer than its header declares)."""
        if self._duration and fraction > 1.05 + 5 / self._duration:
            raise JobFailure(ErrorCode.INVALID_MEDIA, "the input is longer than its header declares")
        self._done = min(fraction, 1.0)

    def transferred(self, chunk_bytes: int) -> None:
        """A transfer's progress callback (S3 threads): raising here aborts the transfer when we must stop."""
        self._raise_if_stopped()
        if self._total_bytes:
            self._done = min(self._done + chunk_bytes / self._total_bytes, 1.0)

    def record_parallelism(self, parallelism: Parallelism) -> None:
        """A chunked encode's chunk count and completions, on the job."""
        with self._lock:
            if self._deps.jobs.record_parallelism(self._job.id, self._deps.worker_id, parallelism) is None:
                self._stop(_reason_lost(self._job, self._deps) or Stop.LOST)
        self._raise_if_stopped()

    def output_ready(self, index: int, output: StoredOutput) -> None:
        """Output ``index`` is finished and uploaded: write it at once (clients may fetch it before the job
        completes)."""
        self._record_output(index, output)

    def output_playable(self, index: int, output: StoredOutput) -> None:
        """HLS output ``index`` can be played (its ``playable_key`` set) while it is still being made."""
        self._record_output(index, output)

    def _record_output(self, index: int, output: StoredOutput) -> None:
        with self._lock:
            self.outputs[index] = output
            if self._deps.jobs.record_outputs(self._job.id, self._deps.worker_id, self.outputs) is None:
                self._stop(_reason_lost(self._job, self._deps) or Stop.LOST)
        self._raise_if_stopped()

    def complete(self, outputs: list[StoredOutput]) -> Job | None:
        with self._lock:
            finished = self._deps.jobs.complete(self._job.id, self._deps.worker_id, outputs)
            if finished is None:
                self._stop(_reason_lost(self._job, self._deps) or Stop.LOST)
        self._raise_if_stopped()
        return finished

    # -- the thread --------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing.wait(TICK_SECONDS) and not self.stopped.is_set():
            try:
                self._beat(self._clock())
            except Exception:  # a failed beat is retried on the next tick; the lease outlasts a few
                logger.warning("heartbeat failed", exc_info=True)

    def _beat(self, now: float) -> None:
        if now >= self._attempt.deadline:  # renewing past it would hold the job for ever
            self._stop(Stop.DEADLINE)
            return
        self._keep_message_hidden(now)
        if self._attempt.shutdown is not None and self._attempt.shutdown.is_set():
            self._stop(Stop.SHUTDOWN)
            return
        with self._lock:
            percent, eta = self._estimate(now)
            moved = percent > self._written_percent and now - self._last_write >= PROGRESS_INTERVAL_SECONDS
            if moved or now - self._last_write >= self._deps.heartbeat_seconds:
                self._write_locked(now)
            elif now - self._last_check >= CHECK_INTERVAL_SECONDS:
                self._last_check = now
                reason = _reason_lost(self._job, self._deps)
                if reason is not None:
                    self._stop(reason)
        trusted = self._stage is JobStage.TRANSCODING and self._done >= HAND_OFF_AFTER_FRACTION
        if self._deps.long_jobs is not None and trusted and eta is not None and eta > self._attempt.deadline - now:
            logger.info("the encode would outlast this worker", extra={"eta_seconds": eta})
            self._stop(Stop.HAND_OFF)

    def _estimate(self, now: float) -> tuple[int, int | None]:
        """Progress over the whole job (percent) and the seconds left in the current stage, if known."""
        if self._stage is JobStage.TRANSCODING:
            percent = int(self._done * TRANSCODED_PERCENT)
        elif self._stage is JobStage.UPLOADING:
            percent = TRANSCODED_PERCENT + int(self._done * (99 - TRANSCODED_PERCENT))
        else:
            percent = 0
        eta = None
        if self._stage in (JobStage.TRANSCODING, JobStage.UPLOADING) and self._done >= 0.01:
            eta = math.ceil((now - self._stage_started) * (1 - self._done) / self._done)
        return percent, eta

    def _write_locked(self, now: float) -> None:
        percent, eta = self._estimate(now)
        written = self._deps.jobs.record_progress(
            self._job.id, self._deps.worker_id, percent, self._deps.lease, stage=self._stage, eta_seconds=eta
        )
        self._last_write = self._last_check = now
        if written is None:
            self._stop(_reason_lost(self._job, self._deps) or Stop.LOST)
        else:
            self._written_percent = percent

    def _keep_message_hidden(self, now: float) -> None:
        if self._attempt.message is not None and now - self._last_hidden >= self._deps.heartbeat_seconds:
            self._last_hidden = now
            try:
                self._attempt.message.hide_for(2 * self._deps.settings.lease_seconds)
            except Exception:  # the job's lease decides who works on it; the message only brings it back
                logger.warning("could not extend the message's visibility", exc_info=True)

    def _stop(self, reason: Stop) -> None:
        if not self.stopped.is_set():
            self.reason = reason
            self.stopped.set()

    def _raise_if_stopped(self) -> None:
        if self.stopped.is_set():
            raise Interrupted(self.reason or Stop.LOST)


OUTCOME_METRICS = {
    JobStatus.COMPLETED: JOBS_COMPLETED,
    JobStatus.FAILED: JOBS_FAILED,
    JobStatus.CANCELLED: JOBS_CANCELLED,
}


def record_job_metrics(job: Job | None) -> bool:
    """Count a finished job by its status, and a completed one's duration (first claim to completion).
    Returns whether there was anything to count."""
    if job is None or not job.status.terminal:
        return False
    metrics.add_metric(name=OUTCOME_METRICS[job.status], unit=MetricUnit.Count, value=1)
    if job.status is JobStatus.COMPLETED and job.started_at and job.completed_at:
        seconds = (job.completed_at - job.started_at).total_seconds()
        metrics.add_metric(name=JOB_DURATION, unit=MetricUnit.Seconds, value=seconds)
    return True


class JobStillRunning(Exception):
    """A live worker holds the job: its dead letter must come back later rather than fail it."""


def abandoned_reason(attempts: int) -> str:
    """Why a dead-lettered job failed. With no attempt, no worker ever ran it: its message was received (and
    counted) while the worker was throttled or crashed before claiming it."""
    if attempts == 0:
        return "processing never started: every delivery of the job failed before a worker could run it"
    return f"processing failed on every attempt ({attempts})"


def fail_abandoned(job_id: str, jobs: JobStore) -> Job | None:
    """The last delivery of a job's message failed: end the job ``failed`` (or ``cancelled``, if that was
    asked) rather than leave it hanging. Raises ``JobStillRunning`` while a live worker holds it; returns None
    when it is already finished."""
    current = jobs.get(job_id, consistent=True)
    if current is None or current.status.terminal:
        return None
    if current.cancel_requested_at is not None:
        ended = jobs.cancel(job_id)
    else:
        reason = abandoned_reason(current.attempts)
        ended = jobs.fail_abandoned(job_id, ErrorDetail(code=ErrorCode.PROCESSING_FAILED, message=reason))
    if ended is None:
        raise JobStillRunning(job_id)
    return ended
