"""Split and stitch: a chunked encode against a single encode of the same request, with the same cores per
worker, and a projection of what the chunk path would do on AWS from the rates measured here.

    .venv/bin/python -m bench.chunked [--seconds 210] [--height 720]

Moto runs in this process (as in the integration tests). The single encode is one worker on one core; the
chunked encode is two chunk workers, each on a core of its own (``sched_setaffinity``: ffmpeg inherits it), with
the coordinator (audio, stitch) sharing the first. Each is timed from the job's claim to its completion. The
chunking overhead is what the chunked run spent beyond the chunks' own encodes (per worker): planning, queueing,
each chunk's download and probe of the input, the pieces' transfers, the concatenation and the stitch.

The projection for AWS is a model, not a measurement: see ``project`` for its assumptions.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import write_result

TENANT = "bench"
CHUNK_SECONDS = 30


def request(height: int) -> list[dict[str, Any]]:
    """An MP4 at the input's height and a 3-rung HLS ladder."""
    rungs = {720: [720, 480, 360], 1080: [1080, 720, 480]}.get(height, [height, height * 2 // 3 // 2 * 2, 144])
    return [{"type": "mp4", "height": height}, {"type": "hls", "heights": rungs}]


def make_input(path: Path, seconds: int, height: int) -> Path:
    from videojobs.media import ffmpeg_exe

    width = height * 16 // 9 // 2 * 2
    subprocess.run(
        [
            *(ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-g", "250", "-pix_fmt", "yuv420p"),
            *("-c:a", "aac", "-shortest", str(path)),
        ],
        check=True,
    )
    return path


def _pinned(core: int) -> None:
    os.sched_setaffinity(0, {core})  # this thread; the ffmpeg it starts inherits it


def measure(seconds: int, height: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-chunked-") as scratch:  # the input, the jobs' scratch folders
        return _measure_in(Path(scratch), seconds, height)


def _measure_in(scratch: Path, seconds: int, height: int) -> dict[str, Any]:
    from moto import mock_aws

    from infra.local.resources import create_resources
    from videojobs import media
    from videojobs.aws import client, reset_clients
    from videojobs.chunk_store import ChunkStore
    from videojobs.ids import new_job_id, new_upload_id
    from videojobs.job_store import JobStore
    from videojobs.models import ChunkMessage, Job, StoredOutput, utcnow
    from videojobs.object_store import ObjectStore, upload_key
    from videojobs.queues import ChunkQueue, ReceivedMessage
    from videojobs.service import chunking, processing
    from videojobs.service.chunking import ChunkAttempt, ChunkDeps, process_chunk
    from videojobs.service.processing import Attempt, WorkerDeps, process_job
    from videojobs.settings import ChunkWorkerSettings, WorkerSettings

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        os.environ[name] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    reset_clients()
    source = make_input(scratch / "source.mp4", seconds, height)
    timers: dict[str, float] = {}
    real_run, real_download = media.run_ffmpeg, chunking._download_pieces

    def timed_run(source_path: Path, *args: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        real_run(source_path, *args, **kwargs)
        if source_path.parent.name == "pieces":
            timers["stitch_seconds"] = time.perf_counter() - started

    def timed_download(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        found = real_download(*args, **kwargs)
        timers["pieces_download_and_concat_seconds"] = time.perf_counter() - started
        return found

    real_playable = processing.Heartbeat.output_playable
    marks: dict[str, float] = {}

    def timed_playable(self: processing.Heartbeat, index: int, output: StoredOutput) -> None:
        real_playable(self, index, output)
        marks.setdefault("playable", time.perf_counter())

    processing.Heartbeat.output_playable = timed_playable  # type: ignore[method-assign]
    media.run_ffmpeg = timed_run  # type: ignore[assignment]
    chunking._download_pieces = timed_download  # type: ignore[assignment]
    with mock_aws():
        resources = create_resources(client, "us-east-1")
        environment = {
            **resources.environment(),
            "SCRATCH_DIR": str(scratch),
            "CHUNK_SECONDS": str(CHUNK_SECONDS),
            "JOB_TIME_LIMIT_SECONDS": "7200",
        }
        settings = WorkerSettings.from_env(environment)
        jobs, objects = JobStore(client("dynamodb"), settings.jobs_table), ObjectStore(client("s3"))
        chunks = ChunkStore(client("dynamodb"), settings.chunks_table)
        deps = WorkerDeps(
            settings,
            jobs,
            objects,
            "bench",
            chunks=chunks,
            chunk_queue=ChunkQueue(client("sqs"), settings.chunks_queue_url),
        )
        chunk_settings = ChunkWorkerSettings.from_env(environment)

        def new_job(parallel: str) -> Job:
            upload_id = new_upload_id()
            key = upload_key(TENANT, upload_id)
            client("s3").upload_file(str(source), settings.uploads_bucket, key)
            now = utcnow()
            job = Job(
                id=new_job_id(),
                tenant_id=TENANT,
                created_at=now,
                updated_at=now,
                upload_id=upload_id,
                input_key=key,
                outputs=[StoredOutput(spec=spec) for spec in request(height)],
                parallel=parallel,  # type: ignore[arg-type]
            )
            return jobs.create(job)

        def timed_job(job: Job) -> tuple[float, Job]:
            started = time.perf_counter()
            done = process_job(job.id, deps, Attempt(deadline=time.monotonic() + 7200)).job
            assert done is not None and done.status == "completed", done
            return time.perf_counter() - started, done

        _pinned(0)
        single_seconds, single = timed_job(new_job("off"))

        stop = threading.Event()
        url = resources.queues["chunks"].url

        def chunk_worker(core: int) -> None:
            _pinned(core)
            worker = ChunkDeps(chunk_settings, jobs, chunks, objects, f"chunk-{core}")
            sqs = client("sqs")
            while not stop.is_set():
                found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
                for message in found.get("Messages", []):
                    inflight = ReceivedMessage(sqs, url, message["ReceiptHandle"], time.monotonic())
                    attempt = ChunkAttempt(deadline=time.monotonic() + 3600, message=inflight)
                    outcome = process_chunk(ChunkMessage.model_validate_json(message["Body"]), worker, attempt)
                    if outcome.retry_in_seconds is None:
                        inflight.delete()

        workers = [threading.Thread(target=chunk_worker, args=(core,), daemon=True) for core in (0, 1)]
        for thread in workers:
            thread.start()
        chunked_started = time.perf_counter()
        chunked_seconds, chunked = timed_job(new_job("auto"))
        # The HLS output's EVENT playlists are published as chunks finish in order (job.playable): a player
        # can start that long after the claim, where a single encode gives nothing before its completion.
        playable_seconds = marks["playable"] - chunked_started
        stop.set()
        for thread in workers:
            thread.join()
        done_chunks = chunks.of_job(chunked.id)
        single_bytes = sum(output.size_bytes or 0 for output in single.outputs)
        chunked_bytes = sum(output.size_bytes or 0 for output in chunked.outputs)
    media.run_ffmpeg, chunking._download_pieces = real_run, real_download  # type: ignore[assignment]
    processing.Heartbeat.output_playable = real_playable  # type: ignore[method-assign]

    encode_seconds = [chunk.encode_seconds or 0 for chunk in done_chunks]
    encode_per_worker = sum(encode_seconds) / 2
    overhead = max(chunked_seconds - encode_per_worker, 0)
    media_seconds = [
        (chunk.end_seconds if chunk.end_seconds is not None else seconds) - chunk.start_seconds for chunk in done_chunks
    ]
    return {
        "input": {"seconds": seconds, "height": height, "size_bytes": source.stat().st_size},
        "request": request(height),
        "chunk_seconds": CHUNK_SECONDS,
        "single": {"workers": 1, "wall_seconds": round(single_seconds, 2), "output_bytes": single_bytes},
        "chunked": {
            "workers": 2,
            "chunks": len(done_chunks),
            "wall_seconds": round(chunked_seconds, 2),
            "output_bytes": chunked_bytes,
            "time_to_playable_seconds": round(playable_seconds, 2),
            "playable_share_of_wall": round(playable_seconds / chunked_seconds, 3),
            "chunk_encode_seconds": [round(value, 2) for value in encode_seconds],
            "chunk_media_seconds": [round(value, 2) for value in media_seconds],
            **{name: round(value, 2) for name, value in timers.items()},
        },
        "speedup": round(single_seconds / chunked_seconds, 3),
        "overhead_seconds": round(overhead, 2),
        "overhead_share": round(overhead / chunked_seconds, 3),
        # One core's rate at this ladder: media seconds encoded per second (all renditions of the chunk).
        "chunk_media_per_core_second": round(sum(media_seconds) / sum(encode_seconds), 4),
        "single_media_per_core_second": round(seconds / single_seconds, 4),
        "output_bytes_per_media_second": round(chunked_bytes / seconds),
    }


# -- the projection ---------------------------------------------------------------------------------------

# Assumptions, stated (each is a parameter of the model):
LAMBDA_MB = 3008
VCPU_PER_MB = 1 / 1769  # Lambda gives one vCPU per 1,769 MB
LAMBDA_PRICE_GB_SECOND = 0.0000166667  # x86, us-east-1
LAMBDA_REQUEST_PRICE = 0.20 / 1e6
COLD_START_SECONDS = 2.0  # a container-image Lambda whose image is cached
S3_MB_PER_SECOND = 90.0  # one Lambda's GET/PUT throughput
SOURCE_MBIT_PER_SECOND = 8.0  # the 1080p source
FARGATE_VCPU, FARGATE_GB = 2, 8  # the long-jobs task (wiring.SERVICES)
FARGATE_PRICE = 0.04048 * FARGATE_VCPU + 0.004445 * FARGATE_GB  # per hour, us-east-1
FARGATE_START_SECONDS = 60.0
PROJECTED_SECONDS, PROJECTED_HEIGHT = 3600, 1080


def ladder_pixels(height: int) -> float:
    """Pixels decoded and encoded per media second for ``request(height)`` at 25 fps: the work model of
    ``videojobs.outputs`` (decode plus each rendition)."""
    width = height * 16 / 9
    heights = [spec["height"] for spec in request(height) if spec["type"] == "mp4"]
    heights += [h for spec in request(height) if spec["type"] == "hls" for h in spec["heights"]]
    return 25 * (width * height + sum(width * h / height * h for h in heights))


def project(measured: dict[str, Any], workers: int, whole_input_per_chunk: bool = True) -> dict[str, float]:
    """Wall time and cost of a 60-minute 1080p ladder on ``workers`` chunk workers (3,008 MB Lambdas), from the
    per-core rate measured here scaled by pixels, with S3 transfers at ``S3_MB_PER_SECOND`` and every chunk
    worker downloading the whole input (as this implementation does)."""
    scale = ladder_pixels(measured["input"]["height"]) / ladder_pixels(PROJECTED_HEIGHT)
    per_core = measured["chunk_media_per_core_second"] * scale  # media seconds per core second at 1080p
    vcpus = LAMBDA_MB * VCPU_PER_MB
    source_mb = SOURCE_MBIT_PER_SECOND / 8 * PROJECTED_SECONDS
    output_mb = measured["output_bytes_per_media_second"] * scale * PROJECTED_SECONDS / 1e6
    chunks = PROJECTED_SECONDS // CHUNK_SECONDS
    chunk_seconds = (
        COLD_START_SECONDS
        + (source_mb if whole_input_per_chunk else source_mb / chunks) / S3_MB_PER_SECOND
        + CHUNK_SECONDS / (per_core * vcpus)
        + output_mb / chunks / S3_MB_PER_SECOND
    )
    waves = math.ceil(chunks / workers)
    # The stitch: every piece in, every output out, and a stream copy (measured: bytes per second locally).
    stitch_rate_mb = (
        measured["output_bytes_per_media_second"]
        * measured["input"]["seconds"]
        / 1e6
        / max(measured["chunked"].get("stitch_seconds", 1), 0.1)
    )
    stitch_seconds = 2 * output_mb / S3_MB_PER_SECOND + output_mb / stitch_rate_mb
    coordinator_start = COLD_START_SECONDS + source_mb / S3_MB_PER_SECOND
    wall = coordinator_start + waves * chunk_seconds + stitch_seconds
    gb = LAMBDA_MB / 1024
    cost = (chunks * chunk_seconds + wall) * gb * LAMBDA_PRICE_GB_SECOND + (chunks + 1) * LAMBDA_REQUEST_PRICE
    return {"workers": workers, "wall_seconds": round(wall, 1), "cost_usd": round(cost, 4)}


def project_single(measured: dict[str, Any]) -> dict[str, Any]:
    scale = ladder_pixels(measured["input"]["height"]) / ladder_pixels(PROJECTED_HEIGHT)
    per_core = measured["single_media_per_core_second"] * scale
    source_mb = SOURCE_MBIT_PER_SECOND / 8 * PROJECTED_SECONDS
    output_mb = measured["output_bytes_per_media_second"] * scale * PROJECTED_SECONDS / 1e6
    transfers = (source_mb + output_mb) / S3_MB_PER_SECOND
    lambda_wall = COLD_START_SECONDS + transfers + PROJECTED_SECONDS / (per_core * 10240 * VCPU_PER_MB)
    fargate_wall = FARGATE_START_SECONDS + transfers + PROJECTED_SECONDS / (per_core * FARGATE_VCPU)
    return {
        "lambda_10240mb": {
            "wall_seconds": round(lambda_wall, 1),
            "fits_15_minutes": lambda_wall <= 900,
            "cost_usd": round(lambda_wall * 10 * LAMBDA_PRICE_GB_SECOND, 4),
        },
        "fargate_2vcpu": {
            "wall_seconds": round(fargate_wall, 1),
            "cost_usd": round(fargate_wall / 3600 * FARGATE_PRICE, 4),
        },
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--height", type=int, default=720)
    arguments = parser.parse_args()
    measured = measure(arguments.seconds, arguments.height)
    single = project_single(measured)
    projection = [project(measured, workers) for workers in (1, 20, 60, 120)]
    # What reading only the chunk's byte range (not implemented) would give: the whole input per chunk is the
    # largest cost above.
    ranged = [project(measured, workers, whole_input_per_chunk=False) for workers in (1, 20, 60, 120)]
    cheapest_single = min(single["lambda_10240mb"]["cost_usd"], single["fargate_2vcpu"]["cost_usd"])
    at_120 = projection[-1]
    result = {
        **measured,
        "projection": {
            "label": "PROJECTION (a model from the rates measured here, not a measurement on AWS)",
            "input": f"{PROJECTED_SECONDS // 60} min {PROJECTED_HEIGHT}p, {request(PROJECTED_HEIGHT)}",
            "assumptions": {
                "lambda_mb": LAMBDA_MB,
                "vcpus_per_lambda": round(LAMBDA_MB * VCPU_PER_MB, 2),
                "cold_start_seconds": COLD_START_SECONDS,
                "s3_mb_per_second_per_worker": S3_MB_PER_SECOND,
                "source_mbit_per_second": SOURCE_MBIT_PER_SECOND,
                "encode_rate": "per-core rate measured here, scaled by pixels decoded+encoded, linear in vCPUs",
                "each_chunk_downloads_the_whole_input": True,
                "fargate": f"{FARGATE_VCPU} vCPU / {FARGATE_GB} GB, {FARGATE_START_SECONDS:.0f} s to start",
            },
            "chunked": projection,
            "chunked_if_chunks_read_only_their_range": ranged,
            "single": single,
            "anchors": {"mux_median_60min_plus_seconds": 93.5, "transloadit_turbo_claim": "up to 20x"},
            "goal_wall_seconds_at_120": 120,
            "goal_met_wall": at_120["wall_seconds"] <= 120,
            "cost_ratio_at_120_vs_cheapest_single": round(at_120["cost_usd"] / cheapest_single, 2),
            "goal_met_cost": at_120["cost_usd"] <= 1.3 * cheapest_single,
        },
    }
    write_result("chunked", result)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
