"""Chunk workers under trouble, end to end: one SIGKILLed mid-chunk (its chunk reclaimed once its lease runs out,
as a job is), chunk messages delivered more than once, and a cancel while the chunks encode.

The stack runs the chunk worker's execution environments as child processes (``--sandbox chunk``,
``infra/local/sandbox.py``), so killing the process group of the one encoding a chunk ends its Python and its
ffmpeg at once, with no chance to clean up, as a Lambda sandbox dies on a timeout or out of memory. Short chunks
(12 s from a 20 s input on), a 3 s lease and inputs read at 2x real time: a 24 s clip makes two chunks of about
6 s of encode each, long enough to kill one halfway.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningStack, function_errors, running_stack, submit, upload, wait_for
from tests.integration.chunk_workers import SMALL_CHUNKS
from tests.integration.test_chunking import make_source
from tests.quality import frame_psnr, timeline
from tests.reliability.test_worker_reliability import output_keys, stored
from videojobs.chunk_store import Chunk, ChunkStatus, ChunkStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECONDS, RATE = 24, 25
PATIENCE_SECONDS = 180  # hang guards only


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    settings = SMALL_CHUNKS | {
        "INPUT_READ_RATE": "2",
        "LEASE_SECONDS": "3",
        "SCRATCH_DIR": str(tmp_path_factory.mktemp("scratch")),
    }
    state = tmp_path_factory.mktemp("chunk-kill") / "stack.json"
    with running_stack(state, env=settings, options=["--sandbox", "chunk"]) as running:
        yield running


def chunks_of(stack: RunningStack, job_id: str) -> list[Chunk]:
    return ChunkStore(stack.aws("dynamodb"), stack.env["CHUNKS_TABLE"]).of_job(job_id)


def a_chunk_mid_encode(stack: RunningStack, job_id: str) -> Chunk:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        running = [c for c in chunks_of(stack, job_id) if c.status is ChunkStatus.RUNNING and c.progress >= 0.1]
        if running:
            return running[0]
        time.sleep(0.1)
    pytest.fail(f"no chunk of job {job_id} got into its encode")


def chunk_processes(job_id: str, index: int) -> dict[int, int]:
    """pid -> the pid of the worker that runs it, for every process at work on the chunk: the chunk worker names
    its scratch folder ``<job>-pid<worker pid>-c<index>-…``, and ffmpeg reads its input from there."""
    pattern = re.compile(rf"{job_id}-pid(\d+)-c{index}-".encode())
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            named = pattern.search(cmdline.read_bytes())
        except OSError:
            continue
        if named:
            found[int(cmdline.parent.name)] = int(named.group(1))
    return found


def test_a_chunk_worker_killed_mid_chunk_is_reclaimed_and_the_job_completes(stack: RunningStack, tmp_path: Path):
    source = make_source(tmp_path / "source.mp4", seconds=SECONDS)
    with stack.client() as api:
        job_id = submit(api, upload(api, source), [{"type": "mp4", "height": 144}]).json()["id"]
        victim = a_chunk_mid_encode(stack, job_id)
        at_work = chunk_processes(job_id, victim.index)
        [worker] = set(at_work.values())  # ffmpeg, started by the one environment running the chunk
        assert worker != stack.process.pid  # a sandbox of its own, not a thread of the stack
        os.killpg(worker, signal.SIGKILL)  # the sandbox dies: Python and ffmpeg, nothing cleaned up

        done = wait_for(api, job_id, patience_seconds=PATIENCE_SECONDS)

    assert done["status"] == "completed", done
    assert done["parallelism"] == {"chunks": 2, "completed_chunks": 2}
    assert stored(stack, job_id)["attempts"] == 1  # the job's own worker was not touched
    chunks = {chunk.index: chunk for chunk in chunks_of(stack, job_id)}
    killed, other = chunks[victim.index], chunks[1 - victim.index]
    assert (killed.status, killed.attempts, other.attempts) == (ChunkStatus.DONE, 2, 1)  # reclaimed: a new attempt
    assert all(f"/{victim.index}/a2/" in file.key for file in killed.files)  # one result: the second attempt's
    assert not any(pid in at_work for pid in chunk_processes(job_id, victim.index))  # the killed ffmpeg is gone
    [killed_invocation] = function_errors(stack)  # the dead sandbox is the only function error
    assert "videojobs-chunk Runtime.ExitError" in killed_invocation and "signal: killed" in killed_invocation
    [key] = output_keys(stack, job_id)  # the pieces were removed after the stitch; the killed attempt wrote none
    assert key.endswith(".mp4")

    made = tmp_path / "out.mp4"
    made.write_bytes(httpx.get(done["outputs"][0]["url"]).raise_for_status().content)
    played = timeline(made)
    assert played.video_times == pytest.approx([n / RATE for n in range(SECONDS * RATE)], abs=1e-3)
    assert abs(played.drift) <= played.frame_seconds
    assert min(frame_psnr(made, source)) > 32  # no frame out of place (here: 37 dB; one frame off: 25-27 dB)


def queue_drained(stack: RunningStack, queue_url: str) -> None:
    sqs, deadline = stack.aws("sqs"), time.monotonic() + PATIENCE_SECONDS
    while True:
        counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        if int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"]) == 0:
            return
        assert time.monotonic() < deadline, counts
        time.sleep(0.5)


def test_chunk_messages_delivered_again_produce_one_result_each(stack: RunningStack, tmp_path: Path):
    errors_before = len(function_errors(stack))
    source = make_source(tmp_path / "source.mp4", seconds=SECONDS)
    sqs, queue_url = stack.aws("sqs"), stack.env["CHUNKS_QUEUE_URL"]
    with stack.client() as api:
        job_id = submit(api, upload(api, source), [{"type": "mp4", "height": 144}]).json()["id"]
        a_chunk_mid_encode(stack, job_id)
        for index in (0, 1, 0, 1):  # SQS may deliver a message more than once, even while the first copy runs
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"job_id": job_id, "index": index}))
        done = wait_for(api, job_id, patience_seconds=PATIENCE_SECONDS)
    assert done["status"] == "completed", done
    queue_drained(stack, queue_url)  # every copy was consumed: after the chunk was done, it changed nothing

    chunks = chunks_of(stack, job_id)
    assert [(chunk.status, chunk.attempts) for chunk in chunks] == [(ChunkStatus.DONE, 1)] * 2
    assert all(f"/{chunk.index}/a1/" in file.key for chunk in chunks for file in chunk.files)
    assert stored(stack, job_id)["attempts"] == 1
    [key] = output_keys(stack, job_id)
    assert key.endswith(".mp4")
    assert len(function_errors(stack)) == errors_before


def test_a_cancel_mid_chunk_stops_every_chunk_and_leaves_no_outputs(stack: RunningStack, tmp_path: Path):
    errors_before = len(function_errors(stack))
    source = make_source(tmp_path / "source.mp4", seconds=SECONDS)
    with stack.client() as api:
        job_id = submit(api, upload(api, source), [{"type": "mp4", "height": 144}]).json()["id"]
        victim = a_chunk_mid_encode(stack, job_id)
        assert chunk_processes(job_id, victim.index)  # ffmpeg at work on the chunk
        response = api.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 202, response.text
        done = wait_for(api, job_id, patience_seconds=PATIENCE_SECONDS)
        assert (done["status"], done["error"]) == ("cancelled", None)
        assert all(output["url"] is None for output in done["outputs"])

        deadline = time.monotonic() + PATIENCE_SECONDS
        while any(chunk_processes(job_id, index) for index in (0, 1)):  # every chunk's ffmpeg stops
            assert time.monotonic() < deadline, "a chunk's ffmpeg outlived the cancel"
            time.sleep(0.1)
        queue_drained(stack, stack.env["CHUNKS_QUEUE_URL"])
    assert output_keys(stack, job_id) == []  # no output, no chunk piece left behind
    assert len(function_errors(stack)) == errors_before  # a cancelled chunk is not a function error
