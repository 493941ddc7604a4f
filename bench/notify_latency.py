"""Local latency of job events: from a status change written to DynamoDB to its arrival on SSE, WebSocket and
webhook, through the real local stack (stream poller -> notify -> event log / management API / delivery queue
-> deliver). Prints p50/p95 per channel.

    .venv/bin/python bench/notify_latency.py [--jobs 10] [--progress 4]

The jobs are written straight to the table (no ffmpeg, so that only the notification path is measured): each
job is created (job.queued), claimed (job.processing), moved ``--progress`` times (job.progress) and completed.
The clock is this process's, which every client shares; a change is timed from just before its write.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from infra.local import LocalStack  # noqa: E402
from infra.local.stack import DEV_TENANT  # noqa: E402
from videojobs.ids import new_job_id  # noqa: E402
from videojobs.job_store import JobStore  # noqa: E402
from videojobs.models import Job, JobEventType, StoredOutput, utcnow  # noqa: E402

LEASE = timedelta(seconds=60)
PATIENCE_SECONDS = 30

Arrivals = dict[tuple[str, int], float]
"""(job id, version) -> when it arrived."""


def webhook_receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            event = json.loads(self.rfile.read(int(self.headers["content-length"])))
            arrivals.setdefault((event["data"]["id"], event["data"]["version"]), time.time())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sse_client(api: httpx.Client, job_id: str, arrivals: Arrivals) -> None:
    last = None
    while True:
        response = api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": last} if last else {}, timeout=40)
        if response.status_code == 204:
            return
        now = time.time()
        for line in response.text.splitlines():
            if line.startswith("id: "):
                last = line[4:]
                arrivals.setdefault((job_id, int(last)), now)


def websocket_client(api: httpx.Client, job_id: str, arrivals: Arrivals, ready: threading.Event) -> None:
    url = api.post(f"/jobs/{job_id}/ws-ticket").json()["url"]
    with connect(url) as socket:
        ready.set()
        try:
            while True:
                event = json.loads(socket.recv(timeout=PATIENCE_SECONDS))
                arrivals.setdefault((job_id, event["data"]["version"]), time.time())
        except Exception:
            return  # closed by the server after the terminal event


def run_job(
    jobs: JobStore, api: httpx.Client, hook: str, progress_steps: int, channels: dict[str, Arrivals], changes: Arrivals
) -> None:
    job_id, now = new_job_id(), utcnow()
    job = Job(
        id=job_id,
        tenant_id=DEV_TENANT,
        created_at=now,
        updated_at=now,
        upload_id="upl_bench",
        input_key="bench",
        outputs=[StoredOutput(spec={"type": "mp4", "height": 144})],
        webhook_url=hook,
        webhook_events=[event.value for event in JobEventType],
    )
    changes[(job_id, 1)] = time.time()
    jobs.create(job)
    ready = threading.Event()
    clients = [
        threading.Thread(target=sse_client, args=(api, job_id, channels["sse"]), daemon=True),
        threading.Thread(target=websocket_client, args=(api, job_id, channels["websocket"], ready), daemon=True),
    ]
    for client in clients:
        client.start()
    ready.wait(PATIENCE_SECONDS)
    time.sleep(0.5)  # let the connection settle, so each change below is timed while every channel listens

    def change(write: Any) -> None:
        started = time.time()
        updated = write()
        assert updated is not None
        changes[(job_id, updated.version)] = started
        time.sleep(0.3)

    change(lambda: jobs.claim(job_id, "bench", LEASE))
    for step in range(1, progress_steps + 1):
        change(lambda step=step: jobs.record_progress(job_id, "bench", step * 100 // (progress_steps + 1), LEASE))
    change(lambda: jobs.complete(job_id, "bench", []))
    for client in clients:
        client.join(PATIENCE_SECONDS)


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurement, print the table and return it (``{channel: {"n", "p50_ms", "p95_ms"}}``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--progress", type=int, default=4, help="progress changes per job")
    args = parser.parse_args(argv or [])

    channels: dict[str, Arrivals] = defaultdict(dict)
    changes: Arrivals = {}
    receiver = webhook_receiver(channels["webhook"])
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    with (
        LocalStack(port=0) as stack,
        httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30) as api,
    ):
        jobs = JobStore(stack.client("dynamodb"), stack.resources.tables["jobs"])
        for _ in range(args.jobs):
            run_job(jobs, api, hook, args.progress, channels, changes)
        deadline = time.monotonic() + PATIENCE_SECONDS
        while len(channels["webhook"]) < len(changes) and time.monotonic() < deadline:
            time.sleep(0.1)
    receiver.shutdown()

    print(f"{len(changes)} status changes over {args.jobs} jobs; latency from the write to arrival (ms)")
    print(f"{'channel':<10} {'n':>4} {'p50':>8} {'p95':>8}")
    summary: dict[str, Any] = {}
    for name in ("sse", "websocket", "webhook"):
        arrivals = channels[name]
        # A socket that connects after a job's first changes hears only what follows (SSE replays the rest).
        samples = [(arrivals[key] - changes[key]) * 1000 for key in changes if key in arrivals]
        if name == "websocket":
            samples = [(arrivals[key] - changes[key]) * 1000 for key in changes if key in arrivals and key[1] > 1]
        p50, p95 = percentiles(samples) if samples else (float("nan"), float("nan"))
        print(f"{name:<10} {len(samples):>4} {p50:>8.0f} {p95:>8.0f}")
        summary[name] = {"n": len(samples), "p50_ms": round(p50), "p95_ms": round(p95)}
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
