"""The media worker: a job's wall time against bare ffmpeg doing the same work on the same clip, and the worker's
peak memory for a small input and a ten times larger one.

    .venv/bin/python -m bench.worker [--seconds 10] [--rounds 2]

Moto runs in this process; each job runs in a child process (the worker as the Lambda runs it: download, probe,
one ffmpeg, upload, with the heartbeat), so the child's peak RSS is the worker's own and not moto's. The baseline
is the very ffmpeg command the worker builds, run by itself on the local file (no S3, no progress, no DynamoDB).
Each figure is the best of the rounds (job and baseline interleaved). Targets: job / bare ffmpeg <= 1.15; the
worker's peak RSS flat from the small input to the large one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

# One job of each kind of work: a ladder, an MP4, thumbnails and audio from one decode.
OUTPUTS = [
    {"type": "hls", "heights": [240, 144]},
    {"type": "mp4", "height": 240},
    {"type": "thumbnails", "count": 5, "width": 160},
    {"type": "audio", "format": "aac"},
]
# Noise at a high bitrate makes a big file of a small, short clip (about 2 MB a second): the input's size is
# what the worker's memory must not follow, and both inputs take the multipart download path.
INPUT_BITRATE = "16M"
RATIO_TARGET = 1.15
TENANT = "bench"


def make_input(path: Path, seconds: int) -> Path:
    from videojobs.media import ffmpeg_exe

    subprocess.run(
        [
            ffmpeg_exe(),
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=320x240:rate=25:duration={seconds},noise=alls=60:allf=t",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            INPUT_BITRATE,
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


def run_job(job_id: str) -> dict[str, Any]:
    """In the child: one job through the worker's service code, as the Lambda handler calls it."""
    from functions.process.handler import get_deps
    from videojobs.service.processing import Attempt, process_job

    deps = get_deps()
    started = time.perf_counter()
    outcome = process_job(job_id, deps, Attempt(deadline=time.monotonic() + 3600))
    seconds = time.perf_counter() - started
    assert outcome.job is not None and outcome.job.status == "completed", outcome
    return {"seconds": seconds, "worker_peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not ``getrusage``: Linux carries a parent's peak over fork and
    exec into the child's ``ru_maxrss``, so a child of this (moto-holding) process would report moto's memory."""
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def bare_ffmpeg(source: Path, scratch: Path) -> float:
    """The worker's own command for this input, run on the local file with nothing around it."""
    from videojobs import media
    from videojobs.models import StoredOutput
    from videojobs.outputs import plan_encode

    probed = media.probe(source)
    with tempfile.TemporaryDirectory(dir=scratch) as directory:
        plan = plan_encode([StoredOutput(spec=spec) for spec in OUTPUTS], probed, Path(directory), 60e6)
        command = [
            media.ffmpeg_exe(),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-protocol_whitelist",
            "file",
            "-f",
            probed.demuxer,
            "-i",
            str(source),
            *plan.arguments,
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True)
        return time.perf_counter() - started


def main(seconds: int = 10, rounds: int = 3) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    from infra.local.atomic_dynamodb import make_dynamodb_atomic
    from infra.local.resources import create_resources
    from infra.local.stack import FAKE_CREDENTIALS
    from videojobs.ids import new_job_id, new_upload_id
    from videojobs.job_store import JobStore
    from videojobs.models import Job, StoredOutput, utcnow
    from videojobs.object_store import upload_key

    make_dynamodb_atomic()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    environment = {
        **os.environ,
        **FAKE_CREDENTIALS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=environment["AWS_ENDPOINT_URL"])

    try:
        resources = create_resources(client, "us-east-1")
        environment |= resources.environment()
        jobs = JobStore(client("dynamodb"), resources.tables["jobs"])
        result: dict[str, Any] = {"outputs": OUTPUTS, "rounds": rounds, "ratio_target": RATIO_TARGET}
        with tempfile.TemporaryDirectory() as directory:
            work = Path(directory)
            for label, length in (("small", seconds), ("large", seconds * 10)):
                source = make_input(work / f"{label}.mp4", length)
                job_runs, bare_runs = [], []
                for _ in range(rounds):  # interleaved, so that machine noise hits both alike
                    upload_id = new_upload_id()
                    key = upload_key(TENANT, upload_id)
                    client("s3").upload_file(str(source), resources.buckets["uploads"], key)
                    now = utcnow()
                    job = jobs.create(
                        Job(
                            id=new_job_id(),
                            tenant_id=TENANT,
                            created_at=now,
                            updated_at=now,
                            upload_id=upload_id,
                            input_key=key,
                            outputs=[StoredOutput(spec=spec) for spec in OUTPUTS],
                        )
                    )
                    child = subprocess.run(
                        [sys.executable, "-m", "bench.worker", "--run-job", job.id],
                        env=environment | {"SCRATCH_DIR": str(work)},
                        check=True,
                        capture_output=True,
                        text=True,
                    )
                    job_runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
                    bare_runs.append(bare_ffmpeg(source, work))
                # The best of the rounds: the work is deterministic, so the slower runs measure the machine's noise.
                job_seconds = min(run["seconds"] for run in job_runs)
                bare_seconds = min(bare_runs)
                result[label] = {
                    "input_seconds": length,
                    "input_mb": round(source.stat().st_size / 1024**2, 1),
                    "job_seconds": round(job_seconds, 2),
                    "bare_ffmpeg_seconds": round(bare_seconds, 2),
                    "job_over_bare_ffmpeg": round(job_seconds / bare_seconds, 3),
                    "samples": {
                        "job": [round(run["seconds"], 2) for run in job_runs],
                        "bare_ffmpeg": [round(seconds, 2) for seconds in bare_runs],
                    },
                    "worker_peak_rss_mb": round(max(run["worker_peak_rss_mb"] for run in job_runs), 1),
                }
                source.unlink()
        result["worker_rss_large_over_small"] = round(
            result["large"]["worker_peak_rss_mb"] / result["small"]["worker_peak_rss_mb"], 3
        )
        write_result("worker", result)
        return result
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of the small input (the large: 10x)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-job", metavar="JOB_ID", help=argparse.SUPPRESS)  # the child's side
    arguments = parser.parse_args()
    if arguments.run_job:
        print(json.dumps(run_job(arguments.run_job)))
    else:
        print(json.dumps(main(arguments.seconds, arguments.rounds), indent=2))
