"""Fairness: how long a quiet tenant's jobs wait behind a noisy tenant's backlog.

    .venv/bin/python -m bench.fairness [--backlog 100] [--newcomer 5]

Tenant A submits ``--backlog`` tiny jobs (1 s 160x120 clip -> MP4 144p), then tenant B submits ``--newcomer``.
B's dwell time is each job's ``started_at - created_at`` (submit -> ``processing``, both stamped by the
service). Three runs, each on a fresh in-process local stack (two concurrent worker batches, as ``make run``):

- **idle**: B alone, on an idle stack (its 5 jobs still queue behind each other on two workers);
- **fair**: A's backlog then B, with SQS fair queues emulated (the default; ``infra/local/fair_sqs.py``);
- **unfair**: the same with the emulation off (arrival order, as moto alone or a queue without message groups).

Goal (issue 13): B's p50 under fairness at most 2x its idle p50, and at least 10x better than without fairness.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile, write_result
from bench.load import CLIP, OUTPUTS, client, make_clip, submit_many, upload
from bench.submit_overhead import quiet_handlers
from infra.local.stack import LocalStack

PATIENCE_SECONDS = 900  # hang guard only
SUBMIT_CONCURRENCY = 8


def tenant_client(stack: LocalStack, tenant: str) -> httpx.Client:
    # Imported late: the service's logger takes its level from the environment quiet_handlers() sets.
    from videojobs.ids import hash_api_key, key_prefix, new_api_key
    from videojobs.job_store import ApiKeyStore

    key = new_api_key()
    ApiKeyStore(stack.client("dynamodb"), stack.env["API_KEYS_TABLE"]).add(hash_api_key(key), tenant, key_prefix(key))
    http = client(stack, SUBMIT_CONCURRENCY)
    http.headers["Authorization"] = f"Bearer {key}"
    return http


def upload_retrying(http: httpx.Client, clip: Path) -> str:
    """``bench.load.upload``, retried as a client would on a 5xx (a cold authorizer on a busy machine can time out)."""
    for _ in range(4):
        try:
            return upload(http, clip)
        except httpx.HTTPStatusError as error:
            if error.response.status_code < 500:
                raise
            time.sleep(1)
    return upload(http, clip)


def wait_started(http: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    """Each job once it has started (or ended), read as the client reads it."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    jobs: dict[str, dict[str, Any]] = {}
    while len(jobs) < len(ids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(ids) - len(jobs)} jobs never started")
        for job_id in ids:
            if job_id not in jobs:
                job = http.get(f"/jobs/{job_id}").json()
                if job.get("started_at"):
                    jobs[job_id] = job
        time.sleep(0.1)
    return [jobs[job_id] for job_id in ids]


def dwell_seconds(job: dict[str, Any]) -> float:
    return (datetime.fromisoformat(job["started_at"]) - datetime.fromisoformat(job["created_at"])).total_seconds()


def run(clip: Path, *, backlog: int, newcomer: int, fair: bool) -> dict[str, Any]:
    with (
        LocalStack(port=0, visibility_timeout_seconds=60, fair_queues=fair) as stack,
        tenant_client(stack, "tenant-a") as noisy,
        tenant_client(stack, "tenant-b") as quiet,
    ):
        started = time.perf_counter()
        errors = 0
        if backlog:
            submitted = submit_many(noisy, upload_retrying(noisy, clip), backlog, SUBMIT_CONCURRENCY)
            errors += submitted["errors"]
        upload_id = upload_retrying(quiet, clip)
        newcomers = submit_many(quiet, upload_id, newcomer, 1)
        errors += newcomers["errors"]
        ids = newcomers["ids"]
        jobs = wait_started(quiet, ids)
        seconds = time.perf_counter() - started
    dwell = [dwell_seconds(job) for job in jobs]
    return {
        "backlog": backlog,
        "submit_errors": errors,
        "fair_queues": fair,
        "dwell_s": [round(value, 3) for value in dwell],
        "p50_s": round(percentile(dwell, 0.5), 3),
        "max_s": round(max(dwell), 3),
        "mean_s": round(statistics.fmean(dwell), 3),
        "wall_s": round(seconds, 1),
    }


def main(backlog: int = 100, newcomer: int = 5) -> dict[str, Any]:
    quiet_handlers()
    from videojobs.observability import logger

    logger.setLevel("WARNING")  # created at import, before quiet_handlers(): a line per job event otherwise
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        clip = make_clip(Path(scratch) / "tiny.mp4")
        for name, jobs_before, fair in (("idle", 0, True), ("fair", backlog, True), ("unfair", backlog, False)):
            runs[name] = run(clip, backlog=jobs_before, newcomer=newcomer, fair=fair)
            print(f"   {name}: B's dwell p50 {runs[name]['p50_s']} s, max {runs[name]['max_s']} s", flush=True)
    idle, fair, unfair = (runs[name]["p50_s"] for name in ("idle", "fair", "unfair"))
    result = {
        "what": f"tenant A submits {backlog} jobs, then tenant B {newcomer}: B's dwell (submit -> processing)",
        "clip": CLIP,
        "outputs": OUTPUTS,
        "runs": runs,
        "fair_p50_over_idle_p50": round(fair / idle, 2),
        "unfair_p50_over_fair_p50": round(unfair / fair, 1),
        "goal_fair_within_2x_idle": fair <= 2 * idle,
        "goal_10x_better_than_unfair": unfair >= 10 * fair,
    }
    write_result("fairness", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100)
    parser.add_argument("--newcomer", type=int, default=5)
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.backlog, arguments.newcomer), indent=2))
