"""The local stack's container tasks: as many as the deployed scaling policy gives for the queue's backlog, and
scale-in spares tasks that took scale-in protection (infra/local/services.py)."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator

import pytest

from infra.local import services
from infra.local.services import ServiceTasks
from videojobs import wiring

SERVICE = "long_worker"
PATIENCE_SECONDS = 60  # a hang guard only


class Backlog:
    """The SQS calls ServiceTasks makes, answering with a backlog the test sets."""

    def __init__(self) -> None:
        self.visible = self.in_flight = 0

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict:
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(self.visible),
                "ApproximateNumberOfMessagesNotVisible": str(self.in_flight),
            }
        }


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServiceTasks, Backlog]]:
    idle = dataclasses.replace(wiring.SERVICES[SERVICE], module="tests.integration.fake_functions.idle_task")
    monkeypatch.setattr(wiring, "SERVICES", {SERVICE: idle})
    monkeypatch.setattr(services, "SUPERVISE_INTERVAL_SECONDS", 0.05)
    backlog = Backlog()
    running = ServiceTasks()
    yield running, backlog
    running.stop(timeout_seconds=5)


def _settles_at(running: ServiceTasks, count: int) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while len(running.pids(SERVICE)) != count or not all(_alive(running, SERVICE)):
        assert time.monotonic() < deadline, f"{len(running.pids(SERVICE))} tasks, not {count}"
        time.sleep(0.05)


def _alive(running: ServiceTasks, name: str) -> list[bool]:
    with running._lock:
        return [task.process.poll() is None for task in running._tasks[name] if not task.stopping]


def test_one_task_per_job_waiting_or_running_up_to_the_maximum(tasks, monkeypatch) -> None:
    running, backlog = tasks
    monkeypatch.setenv("PROTECT", "0")
    running.start(dict(os.environ), backlog, {wiring.SERVICES[SERVICE].queue: "url"})
    _settles_at(running, 0)  # an empty queue: no task
    backlog.in_flight = 1  # one job, already received (e.g. by a task that then died)
    _settles_at(running, 1)
    backlog.visible, backlog.in_flight = 2, 1
    _settles_at(running, 3)
    backlog.visible = 9
    _settles_at(running, wiring.SERVICES[SERVICE].max_tasks)
    backlog.visible, backlog.in_flight = 0, 1
    _settles_at(running, 1)


def test_scale_in_spares_protected_tasks(tasks, monkeypatch) -> None:
    running, backlog = tasks
    monkeypatch.setenv("PROTECT", "1")
    backlog.visible = 2
    running.start(dict(os.environ), backlog, {wiring.SERVICES[SERVICE].queue: "url"})
    _settles_at(running, 2)
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not all(task.protected for task in running._tasks[SERVICE]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    backlog.visible = 0
    later = running.rounds + 5
    while running.rounds < later:  # several scaling rounds at a backlog of 0
        time.sleep(0.05)
    assert len(running.pids(SERVICE)) == 2 and all(_alive(running, SERVICE))
