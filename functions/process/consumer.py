"""``python -m functions.process.consumer``: the long-jobs consumer, for jobs longer than a Lambda may run.

The same image and the same service code as the Lambda worker (``handler.py``), run as an ECS Fargate task in
AWS (``infra/fargate.py``) and as a subprocess of the local stack. It polls the long-jobs queue one message at
a time; while a job runs, the heartbeat keeps the message invisible and ECS task scale-in protection keeps the
autoscaler from stopping this task. SIGTERM (a deployment, or a scale-in after protection ran out) stops
ffmpeg, gives the job back and makes its message visible at once, so another task takes it over.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from videojobs import wiring
from videojobs.aws import client
from videojobs.chunk_store import ChunkStore
from videojobs.dispatch import Dispatch
from videojobs.job_store import JobStore
from videojobs.metric_names import TASK_PROTECTION_FAILED
from videojobs.models import JobMessage
from videojobs.object_store import ObjectStore
from videojobs.observability import logger, metrics
from videojobs.pricing import Compute, fargate_compute
from videojobs.queues import ChunkQueue, JobQueue, ReceivedMessage, UnreadableMessage, read_message
from videojobs.service.processing import (
    Attempt,
    WorkerDeps,
    process_job,
    record_job_metrics,
    sweep_stale_scratch,
)
from videojobs.settings import WorkerSettings
from videojobs.usage import UsageLedger

if TYPE_CHECKING:
    from types_boto3_sqs import SQSClient
    from types_boto3_sqs.type_defs import MessageTypeDef

SERVICE = "long_worker"
"""This consumer's service in the wiring."""
RECEIVE_WAIT_SECONDS = 20  # SQS long polling's maximum: an idle task costs one request per 20 s
# ECS allows scale-in protection for up to 48 hours at a time.
MAX_PROTECTION_MINUTES = 2880


@cache
def get_deps() -> WorkerDeps:
    settings = WorkerSettings.from_env()
    sweep_stale_scratch(settings.scratch_dir)  # what a killed earlier run left behind
    jobs = JobStore(
        client("dynamodb"), settings.jobs_table, ledger=UsageLedger(client("dynamodb"), settings.usage_table)
    )
    return WorkerDeps(
        settings=settings,
        jobs=jobs,
        objects=ObjectStore(client("s3")),
        # The host and process: which task holds a job is visible in the job's lease.
        worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        dispatch=Dispatch.from_settings(settings, client("dynamodb"), jobs),
        chunks=ChunkStore(client("dynamodb"), settings.chunks_table),
        chunk_queue=ChunkQueue(client("sqs"), settings.chunks_queue_url),
    )


@cache
def task_compute() -> Compute:
    """What Fargate bills this task by: its size as the ECS task metadata endpoint reports it (props may change
    the declared one), or as declared where there is no such endpoint (the local stack)."""
    declared = wiring.SERVICES[SERVICE]
    vcpu, memory_mb = declared.cpu / 1024, declared.memory_mb
    endpoint = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if endpoint:
        try:
            with urllib.request.urlopen(f"{endpoint}/task", timeout=5) as response:
                limits = json.loads(response.read()).get("Limits", {})
            vcpu, memory_mb = float(limits.get("CPU", vcpu)), int(limits.get("Memory", memory_mb))
        except (OSError, ValueError):
            logger.warning("could not read the task's size; using the declared one", exc_info=True)
    return fargate_compute(vcpu, memory_mb, ephemeral_gb=declared.ephemeral_storage_gib)


@contextmanager
def scale_in_protection(minutes: float) -> Iterator[None]:
    """ECS task scale-in protection while a job runs (only where the ECS agent's endpoint is set)."""
    agent = os.environ.get("ECS_AGENT_URI")
    if agent is None:
        yield
        return
    _protect(agent, {"ProtectionEnabled": True, "ExpiresInMinutes": min(math.ceil(minutes), MAX_PROTECTION_MINUTES)})
    try:
        yield
    finally:
        _protect(agent, {"ProtectionEnabled": False})


def _protect(agent: str, state: dict[str, Any]) -> bool:
    """Set the task's protection through the ECS agent; a failure is logged and counted (``TASK_PROTECTION_FAILED``):
    without protection a scale-in may stop this task mid-job, which then hands the job back on SIGTERM."""
    request = urllib.request.Request(
        f"{agent}/task-protection/v1/state",
        data=json.dumps(state).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        logger.exception("could not set ECS task protection", extra={"state": state})
    else:
        # The agent answers 200 with a "failure" (or "error") when ECS refused, e.g. for a missing permission.
        problem = answer.get("failure") or answer.get("error")
        if not problem:
            return True
        logger.error("ECS refused task protection", extra={"state": state, "answer": problem})
    metrics.add_metric(name=TASK_PROTECTION_FAILED, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    return False


def handle(
    message: MessageTypeDef, received_at: float, deps: WorkerDeps, sqs: SQSClient, shutdown: threading.Event
) -> None:
    """One message received at ``received_at`` (``time.monotonic``, or a moment before): run its job, then
    delete the message or make it visible again when asked."""
    inflight = ReceivedMessage(sqs, deps.settings.long_jobs_queue_url, message["ReceiptHandle"], received_at)
    try:
        received = read_message(JobMessage, message["Body"], message["MessageId"])
    except UnreadableMessage:  # logged and counted; left undeleted, it ends in the dead-letter queue
        metrics.flush_metrics()
        return
    limit = deps.settings.job_time_limit_seconds
    with scale_in_protection(limit / 60):
        attempt = Attempt(
            time.monotonic() + limit,
            message=inflight,
            shutdown=shutdown,
            deferrals=received.deferrals,
            compute=task_compute(),
        )
        outcome = process_job(received.job_id, deps, attempt)
    if record_job_metrics(outcome.job):
        metrics.flush_metrics()
    if outcome.requeue_in_seconds is not None and outcome.job is not None:
        # A fresh copy before this one goes: see videojobs/dispatch.py.
        again = received.model_copy(update={"deferrals": received.deferrals + outcome.at_limit})
        JobQueue(sqs, deps.settings.long_jobs_queue_url).send(
            again, tenant_id=outcome.job.tenant_id, delay_seconds=outcome.requeue_in_seconds
        )
        inflight.delete()
    elif outcome.retry_in_seconds is None:
        inflight.delete()
    else:
        inflight.hide_for(outcome.retry_in_seconds)


def main() -> int:
    deps = get_deps()
    sqs = client("sqs")
    shutdown, busy = threading.Event(), threading.Event()

    def stop(signum: int, _: Any) -> None:
        shutdown.set()
        if not busy.is_set():  # idle in a long poll: leave now rather than after it
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("long-jobs consumer started", extra={"worker_id": deps.worker_id})
    while not shutdown.is_set():
        asked_at = time.monotonic()  # SQS's 12 h visibility limit counts from the receive, a moment after this
        received = sqs.receive_message(
            QueueUrl=deps.settings.long_jobs_queue_url,
            MaxNumberOfMessages=1,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            VisibilityTimeout=math.ceil(2 * deps.settings.lease_seconds),
        ).get("Messages", [])
        for message in received:
            busy.set()
            try:
                handle(message, asked_at, deps, sqs, shutdown)
            except Exception:  # the message comes back when its visibility ends; this task carries on
                logger.exception("message handling failed")
            finally:
                busy.clear()
    logger.info("long-jobs consumer stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
