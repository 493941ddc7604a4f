"""The worker's heartbeat, on a fake clock: throttled progress, the lease heartbeat, the watch for a cancel or a
lost lease, the queue message's visibility, and the hand-off of an encode that would outlast a Lambda."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from videojobs.models import Job, JobStage, StoredOutput, utcnow
from videojobs.service.processing import Attempt, Heartbeat, Interrupted, Stop, WorkerDeps, process_job
from videojobs.settings import WorkerSettings

ENV = {
    "JOBS_TABLE": "t",
    "USAGE_TABLE": "u",
    "TENANTS_TABLE": "n",
    "UPLOADS_BUCKET": "u",
    "OUTPUTS_BUCKET": "o",
    "LONG_JOBS_QUEUE_URL": "q",
    "CHUNKS_TABLE": "c",
    "CHUNKS_QUEUE_URL": "cq",
}


@dataclass
class FakeJobs:
    """The job store as the heartbeat sees it: writes succeed while the job is ours and not cancelled."""

    job: Job
    writes: list[tuple[float, int, JobStage | None, int | None]] = field(default_factory=list)
    reads: int = 0
    clock: Any = None

    def record_progress(self, job_id, worker_id, progress, lease, *, stage=None, eta_seconds=None):
        if self.job.cancel_requested_at is not None or self.job.lease_owner != worker_id:
            return None
        self.writes.append((self.clock(), progress, stage, eta_seconds))
        return self.job

    def get(self, job_id, consistent=False):
        self.reads += 1
        return self.job


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Message:
    hidden: list[float] = field(default_factory=list)

    def hide_for(self, seconds: float) -> None:
        self.hidden.append(seconds)


def heartbeat(
    *,
    long_jobs: bool = False,
    deadline: float = 10_000.0,
    message: Message | None = None,
    shutdown: threading.Event | None = None,
) -> tuple[Heartbeat, FakeJobs, Clock]:
    now = utcnow()
    job = Job(
        id="job_1",
        tenant_id="t",
        status="processing",
        created_at=now,
        updated_at=now,
        upload_id="u",
        input_key="k",
        outputs=[StoredOutput(spec={"type": "mp4", "height": 144})],
        lease_owner="w1",
    )
    clock = Clock()
    jobs = FakeJobs(job, clock=clock)
    deps = WorkerDeps(WorkerSettings.from_env(ENV), jobs, None, "w1", object() if long_jobs else None)  # type: ignore[arg-type]
    beat = Heartbeat(job, deps, Attempt(deadline, message, shutdown), clock=clock)
    return beat, jobs, clock


def run(beat: Heartbeat, clock: Clock, until: float, *, step: float = 0.25, each=None) -> None:
    while clock.now < until:
        clock.now += step
        if each:
            each(clock.now)
        beat._beat(clock.now)


def test_progress_is_written_at_most_once_a_second_and_only_when_it_moved_a_percent():
    beat, jobs, clock = heartbeat()
    beat.stage(JobStage.TRANSCODING, duration_seconds=100)
    start = clock.now
    run(beat, clock, start + 10, each=lambda now: beat.transcoded((now - start) / 100))  # 1 % a second
    transcoding = [w for w in jobs.writes if w[2] is JobStage.TRANSCODING]
    times = [at for at, *_ in transcoding]
    assert all(later - earlier >= 1 for earlier, later in itertools.pairwise(times))
    percents = [percent for _, percent, *_ in transcoding]
    assert percents == sorted(set(percents)) and percents[-1] == 9  # 10 % of the encode: 95 % of the job's 10 %
    assert all(eta is not None for *_, eta in transcoding[1:])
    assert transcoding[-1][3] == pytest.approx(90, abs=2)  # 10 s for 10 %: 90 s left


def test_a_stalled_encode_still_heartbeats_every_quarter_lease_and_reads_once_a_second_between():
    beat, jobs, clock = heartbeat()
    beat.stage(JobStage.TRANSCODING, duration_seconds=100)
    run(beat, clock, clock.now + 60)
    assert len(jobs.writes) == 1 + 4  # the stage, then a heartbeat every 15 s of a 60 s lease
    assert 40 <= jobs.reads <= 60


def test_a_cancel_request_stops_the_job_within_a_second():
    beat, jobs, clock = heartbeat()
    beat.stage(JobStage.TRANSCODING, duration_seconds=100)
    run(beat, clock, clock.now + 3)
    assert not beat.stopped.is_set()
    jobs.job = jobs.job.model_copy(update={"cancel_requested_at": utcnow()})
    asked = clock.now
    run(beat, clock, asked + 1.25)
    assert (beat.stopped.is_set(), beat.reason) == (True, Stop.CANCELLED)


def test_a_job_taken_over_by_another_worker_is_lost():
    beat, jobs, clock = heartbeat()
    beat.stage(JobStage.PROBING)
    jobs.job = jobs.job.model_copy(update={"lease_owner": "w2"})
    run(beat, clock, clock.now + 1.25)
    assert beat.reason is Stop.LOST


def test_the_message_stays_hidden_for_two_leases_renewed_every_quarter_lease():
    message = Message()
    beat, _, clock = heartbeat(message=message)
    beat.__enter__()  # hides it at once, before the first tick
    beat.__exit__()
    run(beat, clock, clock.now + 31)
    assert message.hidden == [120, 120, 120]


def test_a_lambda_worker_hands_the_encode_on_when_its_eta_passes_the_deadline():
    for long_jobs, handed in ((True, True), (False, False)):
        beat, _, clock = heartbeat(long_jobs=long_jobs, deadline=1000.0 + 300)
        beat.stage(JobStage.TRANSCODING, duration_seconds=1000)
        start = clock.now
        run(beat, clock, start + 60, each=lambda now, s=start, b=beat: b.transcoded((now - s) / 1000))
        assert beat.stopped.is_set() is handed  # 6 % in 60 s: 940 s left, and 240 s to the deadline
        assert beat.reason is (Stop.HAND_OFF if handed else None)


def test_a_shutdown_gives_the_job_back():
    shutdown = threading.Event()
    beat, _, clock = heartbeat(shutdown=shutdown)
    shutdown.set()
    run(beat, clock, clock.now + 0.25)
    assert beat.reason is Stop.SHUTDOWN


def test_past_the_attempts_time_limit_the_heartbeat_stops_renewing_and_stops_the_job():
    message = Message()
    beat, jobs, clock = heartbeat(deadline=1030.0, message=message)
    beat.stage(JobStage.PROBING)  # a probe or a transfer that hangs: nothing reports progress
    run(beat, clock, 1029.0)
    assert not beat.stopped.is_set()
    writes, hides = len(jobs.writes), len(message.hidden)
    run(beat, clock, 1100.0)
    assert (beat.stopped.is_set(), beat.reason) == (True, Stop.DEADLINE)
    assert (len(jobs.writes), len(message.hidden)) == (writes, hides)  # neither the lease nor the message renewed
    with pytest.raises(Interrupted):  # a transfer that still trickles is cut at its next chunk
        beat.transferred(1024)


class CrashingJobs:
    """A worker that dies right at its claim, before any heartbeat: what its message does then matters."""

    def claim(self, job_id, worker_id, lease):
        raise SystemExit("killed")


def test_the_message_is_hidden_for_two_leases_before_the_claim():
    # The queue's own visibility is the deployed one (90 min for the jobs queue): a worker dying before its first
    # heartbeat must not leave its job waiting that long.
    message = Message()
    deps = WorkerDeps(WorkerSettings.from_env(ENV), CrashingJobs(), None, "w1")  # type: ignore[arg-type]
    with pytest.raises(SystemExit):
        process_job("job_1", deps, Attempt(10_000.0, message))
    assert message.hidden == [2 * deps.settings.lease_seconds]
