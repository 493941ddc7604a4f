"""Split and stitch: a long input encoded in chunks by many workers at once.

The job's own worker (the coordinator, ``processing.process_job``) keeps the job's lease throughout, so a job's
cancel, reclaim, hand-off and completion work as for a single encode. After the probe it records the chunks
(``ChunkStore``, one item per time range of ``chunk_seconds``), queues one message per chunk on the chunks
queue, encodes what chunks do not make (audio tracks, audio and thumbnails outputs) from the whole input, and
watches the chunks: their progress is the job's, each completion is written to the job
(``parallelism.completed_chunks``, a job event), a chunk that failed for good fails the job with its reason.
Once every chunk is done, it downloads the pieces and stitches them by stream copy (``videojobs.chunk_plan``);
``processing`` then uploads and completes the job as for a single encode, and the pieces are removed.

A chunk worker (``process_chunk``, the chunks queue's consumer) claims its chunk with a lease (a duplicate
delivery finds it held or done, and writes nothing), keeps the lease and the message alive while it encodes,
looks at the job about once a second (a cancel or a finished job stops ffmpeg at once and removes what it
wrote), and marks the chunk done with a conditional write. A worker that dies leaves a lease that runs out and a
message that comes back: the chunk is reclaimed. A transient error gives the chunk back for a retry later; a
permanent one (``JobFailure``), or a chunk out of tries, fails the chunk and with it the job.

The coordinator, not the last chunk, stitches: it holds the job's lease, so the stitch runs once (only the lease
holder may complete the job) and is reclaimed with the job if its worker dies.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from videojobs import chunk_plan, media
from videojobs.chunk_store import Chunk, ChunkFile, ChunkStatus, ChunkStore
from videojobs.errors import JobFailure
from videojobs.job_store import JobStore
from videojobs.models import ChunkMessage, ErrorCode, ErrorDetail, Job, JobStage, Parallelism, utcnow
from videojobs.object_store import ObjectStore, output_key
from videojobs.observability import logger
from videojobs.outputs import Made, plan_side_encode
from videojobs.service.early_hls import EarlyHls, PlayableSink
from videojobs.settings import ChunkWorkerSettings, WorkerSettings

if TYPE_CHECKING:
    from videojobs.media import Probe
    from videojobs.queues import ChunkQueue

POLL_SECONDS = 1.0
"""The coordinator reads the chunks this often (a completion or a failure is seen within about that)."""
CHUNKS_SHARE = 0.9
"""Of the coordinator's transcoding progress: the chunks' encodes; the stitch makes up the rest."""
CHECK_INTERVAL_SECONDS = 1.0
"""A chunk worker reads its job this often: a cancel stops it within about that."""
TICK_SECONDS = 0.25
PIECES = "chunks"
"""The pieces' folder under the job's output prefix."""


class JobHeartbeat(Protocol):
    """What the coordinator needs of the job's ``processing.Heartbeat``."""

    stopped: threading.Event

    def stage(self, stage: JobStage, *, duration_seconds: float | None = None, total_bytes: int = 0) -> None: ...

    def transcoded(self, fraction: float) -> None: ...

    def transferred(self, chunk_bytes: int) -> None: ...

    def record_parallelism(self, parallelism: Parallelism) -> None: ...


ChunkCompleted = Callable[[Job, Chunk, Parallelism], None]
"""Called by the coordinator each time it sees a chunk done (after ``parallelism`` is written to the job)."""


def chunk_completed(job: Job, chunk: Chunk, parallelism: Parallelism) -> None:
    """The hook of a chunk's completion (HLS playable early builds on it). It is also a job event: the job's
    ``parallelism.completed_chunks`` changed."""
    logger.info(
        "chunk completed",
        extra={"chunk": chunk.index, "completed_chunks": parallelism.completed_chunks, "chunks": parallelism.chunks},
    )


def should_chunk(job: Job, probe: Probe, settings: WorkerSettings) -> bool:
    """Chunked when the job allows it, the input is long enough, and there are video renditions to make."""
    duration = probe.metadata.duration_seconds or 0
    if job.parallel != "auto" or duration < settings.chunked_min_seconds:
        return False
    return (
        chunk_plan.can_chunk(job.outputs, probe) and len(chunk_plan.chunk_ranges(duration, settings.chunk_seconds)) > 1
    )


# -- the coordinator ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coordination:
    settings: WorkerSettings
    jobs: JobStore
    chunks: ChunkStore
    chunk_queue: ChunkQueue
    objects: ObjectStore


def encode_in_chunks(
    job: Job,
    deps: Coordination,
    heartbeat: JobHeartbeat,
    source: Path,
    probe: Probe,
    made_dir: Path,
    timeout_seconds: float,
    on_chunk_completed: ChunkCompleted = chunk_completed,
    playable: PlayableSink | None = None,
) -> list[Made]:
    """Run the job's encode as chunks and stitch them; returns every output's files, in the job's order. With
    ``playable``, HLS outputs are published as their chunks finish (``early_hls``)."""
    duration = probe.metadata.duration_seconds or 0
    ranges = [
        (start + probe.start_seconds, None if end is None else end + probe.start_seconds)
        for start, end in chunk_plan.chunk_ranges(duration, deps.settings.chunk_seconds)
    ]
    deps.chunks.create(job.id, ranges)
    heartbeat.stage(JobStage.TRANSCODING, duration_seconds=duration)
    chunks = deps.chunks.of_job(job.id)
    for chunk in chunks:  # all of them at first; on a reclaim, those not done yet (a duplicate does no harm)
        if chunk.status not in (ChunkStatus.DONE, ChunkStatus.FAILED):
            deps.chunk_queue.send(ChunkMessage(job_id=job.id, index=chunk.index))
    logger.info("encoding in chunks", extra={"chunks": len(chunks), "chunk_seconds": deps.settings.chunk_seconds})

    # Every ffmpeg of the coordinator (side encode, early HLS, stitch): no progress of its own, stopped with the job.
    run_ffmpeg = partial(
        media.run_ffmpeg,
        duration_seconds=None,
        on_progress=lambda _: None,
        timeout_seconds=timeout_seconds,
        stop=heartbeat.stopped,
    )
    side = plan_side_encode(job.outputs, probe, made_dir)
    side_error: list[BaseException] = []

    def encode_side() -> None:
        try:
            run_ffmpeg(source, probe.demuxer, side.arguments)
        except BaseException as error:  # re-raised by the coordinator's thread
            side_error.append(error)

    side_thread = threading.Thread(target=encode_side, name=f"side-{job.id}", daemon=True)
    if side.arguments:
        side_thread.start()
    early = None
    if playable is not None:
        early = EarlyHls(
            job,
            probe,
            source,
            made_dir.parent / "early",
            deps.objects,
            deps.settings.outputs_bucket,
            playable,
            lambda first, options, arguments: run_ffmpeg(
                first, chunk_plan.PIECE_DEMUXER, arguments, input_options=options
            ),
        )
    try:
        done = _wait_for_chunks(
            job, deps, heartbeat, len(ranges), on_chunk_completed, early if early and early.wanted else None
        )
    finally:
        if side.arguments:
            side_thread.join()
    if side_error:
        raise side_error[0]

    parts = chunk_plan.renditions(job.outputs, probe)
    videos = _download_pieces(job, deps, heartbeat, done, parts, made_dir.parent / "pieces")
    stitch = chunk_plan.plan_stitch(job.outputs, parts, videos, side.audio_tracks, made_dir)
    run_ffmpeg(stitch.source, chunk_plan.PIECE_DEMUXER, stitch.arguments)
    heartbeat.transcoded(1.0)
    collectors = side.collectors | stitch.collectors
    return [collectors[index]() for index in range(len(job.outputs))]


def _wait_for_chunks(
    job: Job,
    deps: Coordination,
    heartbeat: JobHeartbeat,
    count: int,
    on_chunk_completed: ChunkCompleted,
    early: EarlyHls | None,
) -> list[Chunk]:
    seen: set[int] = set()
    heartbeat.record_parallelism(Parallelism(chunks=count, completed_chunks=0))
    while True:
        chunks = deps.chunks.of_job(job.id)
        failed = next((chunk for chunk in chunks if chunk.status is ChunkStatus.FAILED), None)
        if failed is not None:
            error = failed.error or ErrorDetail(code=ErrorCode.PROCESSING_FAILED, message="a chunk failed")
            raise JobFailure(ErrorCode(error.code), f"chunk {failed.index}: {error.message}")
        done = [chunk for chunk in chunks if chunk.status is ChunkStatus.DONE]
        if {chunk.index for chunk in done} != seen:
            parallelism = Parallelism(chunks=count, completed_chunks=len(done))
            heartbeat.record_parallelism(parallelism)
            for chunk in done:
                if chunk.index not in seen:
                    on_chunk_completed(job, chunk, parallelism)
            seen = {chunk.index for chunk in done}
        published = False
        if early is not None and (len(done) < count or early.published == 0):
            # One chunk at a time, between reads of the chunks: once all are done the stitch comes first (the
            # final output replaces the early one), save the first chunk, which makes the output playable.
            try:
                published = early.publish_next(done)
            except Exception:
                if heartbeat.stopped.is_set():
                    raise
                # A convenience, not the job: the output is still made whole at completion.
                logger.warning("publishing HLS early failed; the output comes at completion", exc_info=True)
                early = None
        heartbeat.transcoded(CHUNKS_SHARE * sum(chunk.progress for chunk in chunks) / count)
        if len(done) == count:
            return done
        if heartbeat.stopped.wait(0 if published else POLL_SECONDS):
            raise media.EncodeStopped("the job was stopped while its chunks ran")


def _download_pieces(
    job: Job,
    deps: Coordination,
    heartbeat: JobHeartbeat,
    done: list[Chunk],
    parts: list[chunk_plan.Rendition],
    folder: Path,
) -> dict[str, Path]:
    """Each rendition's pieces, concatenated in chunk order (MPEG-TS concatenates byte for byte)."""
    folder.mkdir()
    bucket = deps.settings.outputs_bucket
    fetched = []
    for chunk in sorted(done, key=lambda chunk: chunk.index):
        for file in chunk.files:
            path = folder / f"{chunk.index:05d}-{file.rendition}.ts"
            fetched.append((file.key, path))
    for key, path in fetched:
        deps.objects.download(bucket, key, path, progress=heartbeat.transferred)
    videos = {}
    for part in parts:
        videos[part.name] = folder / f"{part.name}.ts"
        with videos[part.name].open("wb") as whole:
            for chunk in sorted(done, key=lambda chunk: chunk.index):
                piece = folder / f"{chunk.index:05d}-{part.name}.ts"
                if not piece.exists():
                    raise RuntimeError(f"chunk {chunk.index} has no piece of {part.name}")
                with piece.open("rb") as read:
                    while block := read.read(1024 * 1024):
                        whole.write(block)
                piece.unlink()
    return videos


def discard_pieces(job: Job, chunks: ChunkStore, objects: ObjectStore, bucket: str) -> None:
    """Remove the pieces the done chunks recorded (after the stitch, or when the job ended otherwise). A piece
    of an attempt killed mid-upload is not recorded: the outputs bucket's expiry removes it."""
    keys = [file.key for chunk in chunks.of_job(job.id) for file in chunk.files]
    if keys:
        objects.delete_keys(bucket, keys)
        logger.info("removed chunk pieces", extra={"count": len(keys)})


# -- the chunk worker --------------------------------------------------------------------------------------


class MessageLease(Protocol):
    def hide_for(self, seconds: float) -> object: ...


@dataclass(frozen=True)
class ChunkDeps:
    settings: ChunkWorkerSettings
    jobs: JobStore
    chunks: ChunkStore
    objects: ObjectStore
    worker_id: str

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    @property
    def heartbeat_seconds(self) -> float:
        return self.settings.lease_seconds / 4


@dataclass(frozen=True)
class ChunkAttempt:
    deadline: float
    """``time.monotonic()`` by which the worker must have stopped."""
    message: MessageLease | None = None


@dataclass(frozen=True)
class ChunkOutcome:
    chunk: Chunk | None
    retry_in_seconds: float | None = None
    """None: done with the message (delete it). Else deliver it again this much later."""


class ChunkStillRunning(Exception):
    """A live worker holds the chunk: its dead letter must come back later rather than fail it."""


def fail_abandoned_chunk(message: ChunkMessage, chunks: ChunkStore) -> Chunk | None:
    """The last delivery of a chunk's message failed: fail the chunk (its job's coordinator then fails the job).
    Raises ``ChunkStillRunning`` while a live worker holds it; returns None when it is already over."""
    current = chunks.get(message.job_id, message.index)
    if current is None or current.status in (ChunkStatus.DONE, ChunkStatus.FAILED):
        return None
    reason = f"the chunk's processing failed on every attempt ({current.attempts})"
    failed = chunks.fail(message.job_id, message.index, ErrorDetail(code=ErrorCode.PROCESSING_FAILED, message=reason))
    if failed is None:
        raise ChunkStillRunning(f"{message.job_id}/{message.index}")
    return failed


def _job_over(job: Job | None) -> bool:
    return job is None or job.status.terminal or job.cancel_requested_at is not None


def process_chunk(message: ChunkMessage, deps: ChunkDeps, attempt: ChunkAttempt) -> ChunkOutcome:
    """Encode the chunk if this worker can claim it (see the module's docstring)."""
    if attempt.message is not None:
        attempt.message.hide_for(2 * deps.settings.lease_seconds)
    job = deps.jobs.get(message.job_id, consistent=True)
    if job is None or _job_over(job):
        logger.info("the chunk's job is over", extra={"job_id": message.job_id, "chunk": message.index})
        return ChunkOutcome(None)
    chunk = deps.chunks.claim(job.id, message.index, deps.worker_id, deps.lease)
    if chunk is None:
        current = deps.chunks.get(job.id, message.index)
        if current is None or current.status in (ChunkStatus.DONE, ChunkStatus.FAILED):
            return ChunkOutcome(current)
        expires = current.lease_expires_at
        wait = (expires - utcnow()).total_seconds() + 1 if expires else 1
        logger.info("chunk held by another worker", extra={"job_id": job.id, "chunk": message.index})
        return ChunkOutcome(current, retry_in_seconds=max(wait, 1))
    logger.append_keys(job_id=job.id, chunk=chunk.index, attempt=chunk.attempts)
    uploaded: list[str] = []
    try:
        if chunk.attempts > deps.settings.max_attempts:
            detail = f"processing failed on {chunk.attempts - 1} attempts"
            error = ErrorDetail(code=ErrorCode.PROCESSING_FAILED, message=detail)
            return ChunkOutcome(deps.chunks.fail(job.id, chunk.index, error, deps.worker_id))
        with ChunkHeartbeat(job, chunk, deps, attempt) as beat:
            try:
                return ChunkOutcome(_encode_chunk(job, chunk, deps, beat, attempt, uploaded))
            except (media.EncodeStopped, ChunkStopped):
                logger.info("chunk stopped", extra={"reason": beat.reason})
                _discard(deps, uploaded)
                if beat.reason == "deadline":
                    deps.chunks.release(job.id, chunk.index, deps.worker_id)
                    return ChunkOutcome(chunk, retry_in_seconds=0)
                return ChunkOutcome(None)
            except JobFailure as failure:
                logger.info("chunk failed", extra={"code": failure.code, "reason": failure.message})
                _discard(deps, uploaded)
                error = ErrorDetail(code=failure.code, message=failure.message)
                return ChunkOutcome(deps.chunks.fail(job.id, chunk.index, error, deps.worker_id))
    except Exception:
        logger.exception("chunk attempt failed; it will be retried")
        _discard(deps, uploaded)
        deps.chunks.release(job.id, chunk.index, deps.worker_id)
        return ChunkOutcome(
            chunk, retry_in_seconds=min(deps.settings.lease_seconds * 2 ** (chunk.attempts - 1) / 2, 900)
        )
    finally:
        logger.remove_keys(["job_id", "chunk", "attempt"])


def _encode_chunk(
    job: Job, chunk: Chunk, deps: ChunkDeps, beat: ChunkHeartbeat, attempt: ChunkAttempt, uploaded: list[str]
) -> Chunk | None:
    settings = deps.settings
    # The owner's pid in the name, as processing's scratch directories: sweep_stale_scratch removes it once dead.
    prefix = f"{job.id}-pid{os.getpid()}-c{chunk.index}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=settings.scratch_dir) as directory:
        scratch = Path(directory)
        source = scratch / "input"
        deps.objects.download(settings.uploads_bucket, job.input_key, source, progress=beat.transferred)
        limits = media.Limits(
            settings.max_input_dimension,
            settings.max_input_pixels,
            settings.max_input_duration_seconds,
            settings.max_input_streams,
        )
        probe = media.probe(
            source,
            limits,
            timeout_seconds=max(min(media.PROBE_TIMEOUT_SECONDS, attempt.deadline - time.monotonic()), 1),
        )
        parts = chunk_plan.renditions(job.outputs, probe)
        if not parts:
            raise JobFailure(ErrorCode.INVALID_MEDIA, "the input has no video stream to encode in chunks")
        pieces = scratch / "pieces"
        pieces.mkdir()
        offset = chunk.start_seconds - probe.start_seconds
        length = None if chunk.end_seconds is None else chunk.end_seconds - chunk.start_seconds
        arguments, paths = chunk_plan.chunk_arguments(parts, probe, offset, length, pieces)
        if length is None:
            length = (probe.metadata.duration_seconds or offset) - offset
        input_options = chunk_plan.chunk_input_options(offset)
        input_options += ["-max_pixels", str(limits.max_pixels)]
        if settings.input_read_rate:
            input_options += ["-readrate", str(settings.input_read_rate)]
        started = time.monotonic()
        media.run_ffmpeg(
            source,
            probe.demuxer,
            arguments,
            duration_seconds=max(length, 0.001),
            on_progress=beat.encoded,
            timeout_seconds=max(attempt.deadline - time.monotonic(), 1),
            stop=beat.stopped,
            input_options=input_options,
        )
        encode_seconds = time.monotonic() - started
        files = [
            ChunkFile(
                rendition=name,
                key=output_key(job.tenant_id, job.id, f"{PIECES}/{chunk.index}/a{chunk.attempts}/{name}.ts"),
            )
            for name in paths
        ]
        uploaded.extend(file.key for file in files)  # before: a transfer cut short may still leave its object
        deps.objects.upload_many(
            settings.outputs_bucket,
            [(paths[file.rendition], file.key, "video/mp2t") for file in files],
            progress=beat.transferred,
        )
        return beat.complete(files, encode_seconds)


def _discard(deps: ChunkDeps, uploaded: list[str]) -> None:
    if uploaded:
        deps.objects.delete_keys(deps.settings.outputs_bucket, uploaded)
        uploaded.clear()


class ChunkStopped(Exception):
    pass


class ChunkHeartbeat:
    """While a chunk runs: its lease and progress written (at least every quarter lease), the message kept
    invisible, and the job read about once a second; ``stopped`` is set (with ``reason``) when the job was
    cancelled or is over, when the chunk was taken from this worker, or at the attempt's deadline."""

    def __init__(self, job: Job, chunk: Chunk, deps: ChunkDeps, attempt: ChunkAttempt):
        self.stopped = threading.Event()
        self.reason: str | None = None
        self._job, self._chunk, self._deps, self._attempt = job, chunk, deps, attempt
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._done = 0.0
        now = time.monotonic()
        self._last_write = self._last_check = now
        self._last_hidden = -math.inf
        self._thread = threading.Thread(target=self._run, name=f"chunk-{job.id}-{chunk.index}", daemon=True)

    def __enter__(self) -> ChunkHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closing.set()
        self._thread.join()

    def encoded(self, fraction: float) -> None:
        self._done = min(fraction, 1.0)

    def transferred(self, _bytes: int) -> None:
        """A transfer's progress callback: raising aborts the transfer when the chunk must stop."""
        if self.stopped.is_set():
            raise ChunkStopped(self.reason)

    def complete(self, files: list[ChunkFile], encode_seconds: float) -> Chunk | None:
        """Mark the chunk done, unless its job is over (the pieces would be left behind) or it is not ours."""
        with self._lock:
            if self.stopped.is_set() or _job_over(self._deps.jobs.get(self._job.id, consistent=True)):
                self._stop("job_over")
                raise ChunkStopped(self.reason)
            done = self._deps.chunks.complete(
                self._job.id, self._chunk.index, self._deps.worker_id, files, encode_seconds
            )
            if done is None:
                self._stop("lost")
                raise ChunkStopped(self.reason)
        logger.info("chunk encoded", extra={"encode_seconds": round(encode_seconds, 3)})
        return done

    def _run(self) -> None:
        while not self._closing.wait(TICK_SECONDS) and not self.stopped.is_set():
            try:
                self._beat(time.monotonic())
            except Exception:  # retried on the next tick; the lease outlasts a few
                logger.warning("chunk heartbeat failed", exc_info=True)

    def _beat(self, now: float) -> None:
        if now >= self._attempt.deadline:
            self._stop("deadline")
            return
        if self._attempt.message is not None and now - self._last_hidden >= self._deps.heartbeat_seconds:
            self._last_hidden = now
            self._attempt.message.hide_for(2 * self._deps.settings.lease_seconds)
        with self._lock:
            if now - self._last_check >= CHECK_INTERVAL_SECONDS:
                self._last_check = now
                if _job_over(self._deps.jobs.get(self._job.id, consistent=True)):
                    self._stop("job_over")
                    return
                if now - self._last_write >= min(CHECK_INTERVAL_SECONDS, self._deps.heartbeat_seconds):
                    self._last_write = now
                    written = self._deps.chunks.record_progress(
                        self._job.id, self._chunk.index, self._deps.worker_id, self._done, self._deps.lease
                    )
                    if written is None:
                        self._stop("lost")

    def _stop(self, reason: str) -> None:
        if not self.stopped.is_set():
            self.reason = reason
            self.stopped.set()
