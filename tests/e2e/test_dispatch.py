"""Dispatch on the local stack: a tenant's max_active_jobs, priority within a tenant, and PATCH /jobs/{id}."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningStack, submit, upload, wait_for
from tests.e2e.test_tenant_limits import admin
from tests.media import make_clip

pytestmark = pytest.mark.e2e


def tenant_client(stack: RunningStack, tenant: str, max_active_jobs: int) -> httpx.Client:
    limited = admin(stack, "set-limits", "--tenant", tenant, "--max-active-jobs", str(max_active_jobs))
    assert limited.returncode == 0, limited.stderr
    return stack.client(stack.create_key(tenant))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("dispatch") / "tiny.mp4", seconds=1, width=160, height=120, audio=False)


@dataclass
class Run:
    submitted: list[str]
    """Labels in the order submitted."""
    jobs: dict[str, dict]
    """Label -> the finished job."""

    def span(self, label: str) -> tuple[datetime, datetime]:
        job = self.jobs[label]
        return datetime.fromisoformat(job["started_at"]), datetime.fromisoformat(job["completed_at"])


@pytest.fixture(scope="module")
def one_at_a_time(stack: RunningStack, clip: Path) -> Iterator[Run]:
    """A tenant limited to one active job submits normal, normal, low, high (the stack runs two workers)."""
    with tenant_client(stack, "dispatch-one", 1) as client:
        upload_id = upload(client, clip)
        order = [("first", "normal"), ("second", "normal"), ("low", "low"), ("high", "high")]
        ids = {}
        for label, priority in order:
            answer = submit(client, upload_id, [{"type": "mp4", "height": 144}], priority=priority)
            assert answer.status_code == 202, answer.text
            assert answer.json()["priority"] == priority
            ids[label] = answer.json()["id"]
        finished = {label: wait_for(client, job_id, patience_seconds=240) for label, job_id in ids.items()}
    yield Run([label for label, _ in order], finished)


def test_a_tenant_at_max_active_jobs_never_has_more_jobs_processing(one_at_a_time: Run) -> None:
    assert all(job["status"] == "completed" for job in one_at_a_time.jobs.values()), one_at_a_time.jobs
    spans = sorted(one_at_a_time.span(label) for label in one_at_a_time.submitted)
    # Two workers were free, yet each job started only once the one before it had ended.
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert started >= ended, spans


def test_within_a_tenant_the_more_urgent_queued_job_starts_first(one_at_a_time: Run) -> None:
    started = sorted(one_at_a_time.submitted, key=lambda label: one_at_a_time.span(label)[0])
    # "first" was claimed before the others were queued; then high, normal, low although submitted the other way.
    assert started == ["first", "high", "second", "low"]


def test_patch_changes_the_priority_of_a_queued_job_only(stack: RunningStack, clip: Path) -> None:
    with tenant_client(stack, "dispatch-patch", 1) as client:
        upload_id = upload(client, clip)
        running = submit(client, upload_id).json()["id"]
        waiting = submit(client, upload_id).json()["id"]  # behind `running`: the tenant has one active slot

        changed = client.patch(f"/jobs/{waiting}", json={"priority": "high"})

        assert changed.status_code == 200, changed.text
        assert changed.json()["id"] == waiting and changed.json()["priority"] == "high"
        assert client.get(f"/jobs/{waiting}").json()["priority"] == "high"
        listed = client.get("/jobs", params={"priority": "high"}).json()["jobs"]
        assert [job["id"] for job in listed] == [waiting]
        assert client.get("/jobs", params={"priority": "urgent"}).status_code == 422

        wait_for(client, running)
        refused = client.patch(f"/jobs/{running}", json={"priority": "low"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "job_started"
        assert client.patch(f"/jobs/{running}", json={"priority": "soon"}).status_code == 422
        assert client.patch("/jobs/job_0000", json={"priority": "low"}).status_code == 404
        assert wait_for(client, waiting)["status"] == "completed"
