"""Load: many small jobs through the local HTTP gateway at a fixed concurrency: submission throughput and
latency distribution, errors, every job accounted for, and how the drain time (first submit -> last job
``completed``) grows with the batch size.

    .venv/bin/python -m bench.load [--submissions 1000] [--concurrency 32] [--sizes 50,100,250]

Two phases, each on its own in-process local stack:

1. Submissions: ``--submissions`` POST /jobs with no job consumer, so the figure is the API's and not ffmpeg's
   competing for the cores (the jobs stay queued; they are counted in the table, not run).
2. Drain: for each of ``--sizes``, that many submissions, then wait until every one is ``completed`` (1 s
   160x120 clip -> mp4 144p, the stack's default two concurrent worker batches). The default sizes stop at 250
   because the stack drains about 3.5 jobs a second on 2 cores: 1,000 jobs alone take ~5 minutes, beyond the
   benchmark's time box. ``--sizes 250,500,1000`` gives the full curve (~9 minutes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import summary_ms, write_result
from bench.submit_overhead import quiet_handlers
from infra.local.stack import LocalStack

CLIP = {"seconds": 1, "width": 160, "height": 120}
OUTPUTS = [{"type": "mp4", "height": 144}]
DRAIN_PATIENCE_SECONDS = 900  # hang guard only
FINISHED = {"completed", "failed", "cancelled"}


def make_clip(path: Path) -> Path:
    from tests.media import make_clip as generate

    return generate(path, **CLIP)


def upload(http: httpx.Client, clip: Path) -> str:
    """One upload, reused by every job of the run (as a client re-encoding one source would)."""
    size = clip.stat().st_size
    answer = http.post("/uploads", json={"filename": clip.name, "content_type": "video/mp4", "size_bytes": size})
    answer.raise_for_status()
    presigned = answer.json()
    with clip.open("rb") as file:
        httpx.post(presigned["url"], data=presigned["fields"], files={"file": (clip.name, file)}).raise_for_status()
    return presigned["upload_id"]


def submit_many(http: httpx.Client, upload_id: str, count: int, concurrency: int) -> dict[str, Any]:
    """``count`` POST /jobs from ``concurrency`` threads: latencies, errors and the accepted job ids."""
    body = json.dumps({"input": {"upload_id": upload_id}, "outputs": OUTPUTS})

    def one(_: int) -> tuple[float, int, str | None]:
        started = time.perf_counter()
        response = http.post("/jobs", content=body)
        elapsed = time.perf_counter() - started
        return elapsed, response.status_code, response.json().get("id") if response.status_code == 202 else None

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    return {
        "latencies": [latency for latency, _, _ in results],
        "errors": sum(status != 202 for _, status, _ in results),
        "ids": [job_id for _, _, job_id in results if job_id],
        "wall_seconds": wall,
    }


def statuses(stack: LocalStack, ids: list[str]) -> dict[str, str]:
    """The stored status of each of ``ids`` (a scan: the benchmark's tenant has only these jobs)."""
    wanted = set(ids)
    found: dict[str, str] = {}
    pages = (
        stack.client("dynamodb")
        .get_paginator("scan")
        .paginate(
            TableName=stack.env["JOBS_TABLE"],
            ProjectionExpression="id, #s",
            ExpressionAttributeNames={"#s": "status"},
            ConsistentRead=True,
        )
    )
    for page in pages:
        for item in page["Items"]:
            if item["id"]["S"] in wanted:
                found[item["id"]["S"]] = item["status"]["S"]
    return found


def count(values: dict[str, str]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for status in values.values():
        tally[status] = tally.get(status, 0) + 1
    return tally


def client(stack: LocalStack, concurrency: int) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
        limits=httpx.Limits(max_connections=concurrency),
        timeout=60,
    )


def submissions(clip: Path, total: int, concurrency: int) -> tuple[dict[str, Any], list[float]]:
    no_consumer = LocalStack(port=0, visibility_timeout_seconds=60, queue_concurrency={"jobs": 0})
    with no_consumer as stack, client(stack, concurrency) as http:
        upload_id = upload(http, clip)
        run = submit_many(http, upload_id, total, concurrency)
        stored = statuses(stack, run["ids"])
    result = {
        "submissions": total,
        "concurrency": concurrency,
        "errors": run["errors"],
        "accepted": len(run["ids"]),
        "distinct_jobs_stored": len(stored),
        "stored_statuses": count(stored),
        "throughput_per_s": round(total / run["wall_seconds"], 1),
        "latency": summary_ms(run["latencies"]),
    }
    return result, run["latencies"]


def drain(clip: Path, sizes: list[int], concurrency: int) -> list[dict[str, Any]]:
    points = []
    with LocalStack(port=0, visibility_timeout_seconds=60) as stack, client(stack, concurrency) as http:
        upload_id = upload(http, clip)
        for size in sizes:
            started = time.perf_counter()
            run = submit_many(http, upload_id, size, concurrency)
            deadline = time.monotonic() + DRAIN_PATIENCE_SECONDS
            while True:
                stored = statuses(stack, run["ids"])
                if len(stored) == len(run["ids"]) and set(stored.values()) <= FINISHED:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{size} jobs not drained: {count(stored)}")
                time.sleep(0.5)
            seconds = time.perf_counter() - started
            points.append(
                {
                    "jobs": size,
                    "errors": run["errors"],
                    "statuses": count(stored),
                    "drain_seconds": round(seconds, 1),
                    "jobs_per_s": round(size / seconds, 2),
                }
            )
            print(f"   drained {size} jobs in {seconds:.1f} s: {count(stored)}", flush=True)
    return points


def main(submissions_count: int = 1000, concurrency: int = 32, sizes: tuple[int, ...] = (50, 100, 250)) -> dict:
    quiet_handlers()
    with tempfile.TemporaryDirectory() as scratch:
        clip = make_clip(Path(scratch) / "tiny.mp4")
        submitted, latencies = submissions(clip, submissions_count, concurrency)
        points = drain(clip, list(sizes), concurrency)
    result = {
        "what": "POST /jobs through the local gateway at fixed concurrency; drain = first submit -> all completed",
        "clip": CLIP,
        "outputs": OUTPUTS,
        **submitted,
        "drain": points,
        "all_completed": all(point["statuses"] == {"completed": point["jobs"]} for point in points),
    }
    write_result("load", result)
    write_result("load_latencies", {"submit_latencies_s": latencies})
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sizes", default="50,100,250", help="comma-separated batch sizes for the drain curve")
    arguments = parser.parse_args()
    sizes = tuple(int(size) for size in arguments.sizes.split(","))
    print(json.dumps(main(arguments.submissions, arguments.concurrency, sizes), indent=2))
