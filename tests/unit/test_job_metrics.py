"""The job metrics the CloudWatch dashboard draws (infra/monitoring.py names them; tests/infra ties the names to
the dashboard, and importing infra here would start CDK's Node runtime)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from videojobs.models import Job, JobStatus, utcnow
from videojobs.observability import metrics
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
    assert directive["Namespace"] == "VideoJobs"
    assert document["service"] == "videojobs"
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
    assert _flush() == {"JobsCompleted": ("Count", [1.0]), "JobDuration": ("Seconds", [42.5])}


def test_a_failed_job_counts_as_failed_without_a_duration() -> None:
    assert record_job_metrics(_job(JobStatus.FAILED, 3))
    assert _flush() == {"JobsFailed": ("Count", [1.0])}


def test_a_job_still_running_counts_nothing() -> None:
    assert not record_job_metrics(_job(JobStatus.PROCESSING, None))
    assert not record_job_metrics(None)
