"""The metrics the CloudWatch dashboard draws and alarms on, emitted under the names ``infra/monitoring.py``
imports from ``videojobs.metric_names``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from videojobs.metric_names import (
    JOB_DURATION,
    JOBS_CANCELLED,
    JOBS_COMPLETED,
    JOBS_FAILED,
    METRICS_NAMESPACE,
    SERVICE_NAME,
    UNREADABLE_MESSAGES,
)
from videojobs.models import Job, JobMessage, JobStatus, utcnow
from videojobs.observability import metrics
from videojobs.queues import UnreadableMessage, read_message
from videojobs.service.processing import record_job_metrics


@pytest.fixture(autouse=True)
def no_pending_metrics() -> Iterator[None]:
    """The Metrics object is shared by the process: start and leave it empty."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def _flush() -> dict[str, tuple[str, list[float]]]:
    """What a handler's ``log_metrics`` would print: name -> (unit, values)."""
    document = metrics.serialize_metric_set()
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert document["service"] == SERVICE_NAME
    return {m["Name"]: (m["Unit"], document[m["Name"]]) for m in directive["Metrics"]}


def _job(status: JobStatus, seconds: float | None) -> Job:
    started = utcnow() - timedelta(minutes=5)
    return Job(
        id="job_1",
        tenant_id="t1",
        status=status,
        created_at=started,
        updated_at=started,
        started_at=started,
        completed_at=started + timedelta(seconds=seconds) if seconds is not None else None,
        upload_id="upl_1",
        input_key="uploads/t1/upl_1",
        outputs=[],
    )


def test_a_completed_job_counts_as_completed_with_its_duration() -> None:
    assert record_job_metrics(_job(JobStatus.COMPLETED, 42.5))
    assert _flush() == {JOBS_COMPLETED: ("Count", [1.0]), JOB_DURATION: ("Seconds", [42.5])}


def test_a_failed_job_counts_as_failed_without_a_duration() -> None:
    assert record_job_metrics(_job(JobStatus.FAILED, 3))
    assert _flush() == {JOBS_FAILED: ("Count", [1.0])}


def test_a_job_still_running_counts_nothing() -> None:
    assert not record_job_metrics(_job(JobStatus.PROCESSING, None))
    assert not record_job_metrics(None)


def test_a_cancelled_job_counts_as_cancelled() -> None:
    assert record_job_metrics(_job(JobStatus.CANCELLED, None))
    assert _flush() == {JOBS_CANCELLED: ("Count", [1.0])}


def test_an_unreadable_queue_message_is_counted_and_raised_not_dropped() -> None:
    with pytest.raises(UnreadableMessage, match="m-1"):
        read_message(JobMessage, "garbage", "m-1")
    assert _flush() == {UNREADABLE_MESSAGES: ("Count", [1.0])}
    assert read_message(JobMessage, '{"job_id": "job_1"}', "m-2") == JobMessage(job_id="job_1")
