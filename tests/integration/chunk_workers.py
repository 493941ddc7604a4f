"""Helpers for the chunked-encode tests on moto: a coordinator and chunk workers fed by the real chunks queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.resources import Resources
from tests.integration.workers import worker_deps
from videojobs.aws import client
from videojobs.chunk_store import ChunkStore
from videojobs.job_store import JobStore
from videojobs.models import ChunkMessage
from videojobs.object_store import ObjectStore
from videojobs.queues import ChunkQueue, ReceivedMessage
from videojobs.service.chunking import ChunkAttempt, ChunkDeps, ChunkOutcome, process_chunk
from videojobs.service.processing import WorkerDeps
from videojobs.settings import ChunkWorkerSettings

SMALL_CHUNKS = {"CHUNK_SECONDS": "12", "CHUNKED_MIN_SECONDS": "20"}
"""Chunked encodes of short clips: 12 s chunks (two HLS segments) from 20 s on."""


def coordinator_deps(aws: Resources, scratch: Path, worker_id: str = "w1", **settings: str) -> WorkerDeps:
    """The job worker of a chunked encode: ``worker_deps`` with the chunks table and queue."""
    base = worker_deps(aws, scratch, worker_id, long_jobs=False, **(SMALL_CHUNKS | settings))
    return WorkerDeps(
        base.settings,
        base.jobs,
        base.objects,
        base.worker_id,
        base.long_jobs,
        chunks=ChunkStore(client("dynamodb"), aws.tables["chunks"]),
        chunk_queue=ChunkQueue(client("sqs"), aws.queues["chunks"].url),
    )


def chunk_deps(aws: Resources, scratch: Path, worker_id: str = "c1", **settings: str) -> ChunkDeps:
    environment = {**aws.environment(), "SCRATCH_DIR": str(scratch), **settings}
    values = ChunkWorkerSettings.from_env(environment)
    return ChunkDeps(
        values,
        JobStore(client("dynamodb"), aws.tables["jobs"]),
        ChunkStore(client("dynamodb"), aws.tables["chunks"]),
        ObjectStore(client("s3")),
        worker_id,
    )


def receive_chunk(aws: Resources, wait_seconds: int = 1) -> tuple[ChunkMessage, ReceivedMessage] | None:
    sqs = client("sqs")
    url = aws.queues["chunks"].url
    found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=wait_seconds, VisibilityTimeout=60)
    if not found.get("Messages"):
        return None
    (message,) = found["Messages"]
    return (
        ChunkMessage.model_validate_json(message["Body"]),
        ReceivedMessage(sqs, url, message["ReceiptHandle"], time.monotonic()),
    )


class ChunkWorkers:
    """Chunk workers polling the chunks queue in threads, as the local stack's pollers do (a message is deleted
    when its outcome is final, else hidden for the retry the outcome asks)."""

    def __init__(
        self, aws: Resources, deps: ChunkDeps, count: int = 2, on_outcome: Callable[[Any], None] | None = None
    ):
        self._aws, self._deps = aws, deps
        self._stop = threading.Event()
        self.outcomes: list[ChunkOutcome] = []
        self._on_outcome = on_outcome
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> ChunkWorkers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            received = receive_chunk(self._aws)
            if received is None:
                continue
            message, inflight = received
            outcome = process_chunk(
                message, self._deps, ChunkAttempt(deadline=time.monotonic() + 300, message=inflight)
            )
            self.outcomes.append(outcome)
            if outcome.retry_in_seconds is None:
                inflight.delete()
            else:
                inflight.hide_for(outcome.retry_in_seconds)
