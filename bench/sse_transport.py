"""SSE streamed vs long poll, side by side: requests per job and status change -> client latency.

    .venv/bin/python -m bench.sse_transport [--jobs 5] [--rounds 2] [--progress 4]

Two local stacks in turn (``rounds`` times each, so that both see the same machine): one streams
``GET /jobs/{id}/events`` (the default deployment, API Gateway response streaming), one serves it as long polls
(the CDK prop ``sse_transport="long_poll"``). In each, the jobs are written straight to the table as a worker
would (created, claimed, ``--progress`` progress writes, the output ready, completed, 0.3 s apart; no ffmpeg)
while the SDK's ``Client.events`` follows each job as an integrator would. Requests are counted at the client's
transport; a change is timed from just before its write to the event's arrival at the client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from bench.common import write_result
from infra.local import LocalStack
from infra.local.stack import DEV_TENANT
from videojobs import wiring
from videojobs.ids import new_job_id
from videojobs.job_store import JobStore
from videojobs.models import Job, StoredOutput, utcnow
from videojobs.sdk import Client

LEASE = timedelta(seconds=60)
GAP_SECONDS = 0.3
PATIENCE_SECONDS = 60
MODES: dict[str, wiring.ResponseStreaming | None] = {"stream": wiring.RESPONSE_STREAMING, "long_poll": None}


class CountingTransport(httpx.HTTPTransport):
    """Counts the requests to the events route."""

    def __init__(self) -> None:
        super().__init__()
        self.event_requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            self.event_requests += 1
        return super().handle_request(request)


def run_job(stack: LocalStack, jobs: JobStore, progress_steps: int) -> tuple[int, list[float]]:
    """One job followed by a fresh SDK client: (requests it made, each change's latency in ms)."""
    job_id, now = new_job_id(), utcnow()
    job = Job(
        id=job_id,
        tenant_id=DEV_TENANT,
        created_at=now,
        updated_at=now,
        upload_id="upl_bench",
        input_key="bench",
        outputs=[StoredOutput(spec={"type": "mp4", "height": 144})],
    )
    changes: dict[int, float] = {1: time.time()}
    jobs.create(job)
    arrivals: dict[int, float] = {}
    transport = CountingTransport()
    client = Client(stack.url, stack.api_key, transport=transport)

    def follow() -> None:
        for event in client.events(job_id):
            arrivals.setdefault(event.version, time.time())

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(GAP_SECONDS)

    def change(write: Callable[[], Job | None]) -> None:
        started = time.time()
        updated = write()
        assert updated is not None
        changes[updated.version] = started
        time.sleep(GAP_SECONDS)

    change(lambda: jobs.claim(job_id, "bench", LEASE))
    for step in range(1, progress_steps + 1):
        change(lambda step=step: jobs.record_progress(job_id, "bench", step * 90 // (progress_steps + 1), LEASE))
    ready = [job.outputs[0].model_copy(update={"key": f"outputs/{DEV_TENANT}/{job_id}/a1/out.mp4"})]
    change(lambda: jobs.record_outputs(job_id, "bench", ready))
    change(lambda: jobs.complete(job_id, "bench", ready))
    follower.join(PATIENCE_SECONDS)
    client.close()
    missing = set(changes) - set(arrivals)
    assert not missing, f"events never arrived: {sorted(missing)}"
    return transport.event_requests, [(arrivals[version] - changes[version]) * 1000 for version in changes]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5, help="jobs per stack and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--progress", type=int, default=4, help="progress changes per job")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    requests: dict[str, list[int]] = {mode: [] for mode in MODES}
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode, limits in MODES.items():
            with LocalStack(port=0, response_streaming=limits) as stack:
                jobs = JobStore(stack.client("dynamodb"), stack.resources.tables["jobs"])
                run_job(stack, jobs, args.progress)  # warm-up: imports and first connections, not counted
                for _ in range(args.jobs):
                    made, latency = run_job(stack, jobs, args.progress)
                    requests[mode].append(made)
                    latencies[mode].extend(latency)

    events_per_job = args.progress + 4  # queued, processing, progress..., output ready, completed
    print(f"{args.rounds * args.jobs} jobs per transport, {events_per_job} events each, {GAP_SECONDS} s apart")
    print(f"{'transport':<10} {'requests/job':>12} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    summary: dict[str, Any] = {"events_per_job": events_per_job, "gap_seconds": GAP_SECONDS}
    for mode in MODES:
        per_job = statistics.mean(requests[mode])
        p50, p95 = statistics.median(latencies[mode]), percentile(latencies[mode], 0.95)
        print(f"{mode:<10} {per_job:>12.1f} {p50:>8.0f} {p95:>8.0f} {max(latencies[mode]):>8.0f}")
        summary[mode] = {
            "jobs": len(requests[mode]),
            "requests_per_job": round(per_job, 2),
            "latency_p50_ms": round(p50),
            "latency_p95_ms": round(p95),
            "latency_max_ms": round(max(latencies[mode])),
        }
    write_result("sse_transport", summary)
    return summary


if __name__ == "__main__":
    main()
