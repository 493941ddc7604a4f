"""The worker under trouble, on a local stack of its own: duplicate deliveries, a worker SIGKILLed mid-encode,
a cancel mid-encode, and a job too long for the Lambda worker, which the long-jobs consumer (a subprocess, as a
Fargate task would be) runs instead.

The stack reads inputs at 4x real time, so a 40 s clip takes about 10 s to encode (long enough to kill or cancel
it halfway), and gives the Lambda worker a 2 s budget, so that clip is routed to the long-jobs consumer.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import av
import httpx
import pytest

from tests.e2e.conftest import RunningStack, running_stack, submit, upload, wait_for
from tests.media import make_clip
from videojobs.job_store import from_item

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

READ_RATE = 4
PATIENCE_SECONDS = 120  # hang guards only


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, scratch: Path) -> Iterator[RunningStack]:
    settings = {
        "INPUT_READ_RATE": str(READ_RATE),
        "LAMBDA_TIME_BUDGET_SECONDS": "2",
        "LEASE_SECONDS": "3",
        "SCRATCH_DIR": str(scratch),
    }
    with running_stack(tmp_path_factory.mktemp("reliability") / "stack.json", env=settings) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: RunningStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", seconds=40)


def stored(stack: RunningStack, job_id: str) -> dict:
    """The job as stored, with what the API does not show (attempts, lease, routing)."""
    item = stack.aws("dynamodb").get_item(
        TableName=stack.env["JOBS_TABLE"], Key={"id": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    return from_item(item)


def output_keys(stack: RunningStack, job_id: str) -> list[str]:
    listed = stack.aws("s3").list_objects_v2(Bucket=stack.env["OUTPUTS_BUCKET"], Prefix=f"outputs/dev/{job_id}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def wait_until_transcoding(api: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        if job["stage"] == "transcoding" and job["progress"] >= 5:
            return job
        assert job["status"] in ("queued", "processing"), job
        time.sleep(0.1)
    pytest.fail(f"job {job_id} never got into its encode")


def processes_naming(job_id: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if job_id.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def test_a_job_too_long_for_the_lambda_runs_on_the_long_jobs_consumer_the_same_way(
    stack: RunningStack, api: httpx.Client, tmp_path: Path
):
    clip = make_clip(tmp_path / "twelve.mp4", seconds=12)  # 3 s of work at 4x real time: over the 2 s budget
    outputs = [
        {"type": "hls", "heights": [240, 144]},
        {"type": "thumbnails", "count": 3, "width": 160},
        {"type": "audio", "format": "mp3"},
    ]
    done = wait_for(api, submit(api, upload(api, clip), outputs).json()["id"], patience_seconds=PATIENCE_SECONDS)
    assert done["status"] == "completed", done
    record = stored(stack, done["id"])
    assert (record["long_job"], record["attempts"]) == (True, 1)  # probed by the Lambda, run by the consumer

    hls, thumbnails, mp3 = done["outputs"]
    master_url = hls["url"]
    master = httpx.get(master_url).raise_for_status().text
    variant_url = urljoin(master_url, next(line for line in master.splitlines() if line and line[0] != "#"))
    variant = httpx.get(variant_url).raise_for_status().text
    joined = tmp_path / "240p.ts"
    joined.write_bytes(
        b"".join(
            httpx.get(urljoin(variant_url, line)).raise_for_status().content
            for line in variant.splitlines()
            if line and line[0] != "#"
        )
    )
    with av.open(str(joined)) as played:
        assert played.streams.video[0].codec_context.height == 240
        assert sum(1 for _ in played.decode(video=0)) == pytest.approx(12 * 25, abs=2)
    assert len(thumbnails["urls"]) == 3 and thumbnails["resolution"]["width"] == 160
    assert httpx.get(mp3["url"]).raise_for_status().content[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")


def test_duplicate_deliveries_complete_the_job_once(stack: RunningStack, api: httpx.Client, clip: Path):
    job_id = submit(api, upload(api, clip)).json()["id"]
    sqs, queue_url = stack.aws("sqs"), stack.env["JOBS_QUEUE_URL"]
    for _ in range(2):  # SQS may deliver a message more than once, even at the same time
        sqs.send_message(QueueUrl=queue_url, MessageBody=f'{{"job_id": "{job_id}"}}')
    done = wait_for(api, job_id)
    assert done["status"] == "completed", done

    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:  # the copies that found the job held come back once its lease could have run out, then go
        counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        if int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"]) == 0:
            break
        assert time.monotonic() < deadline, counts
        time.sleep(0.5)
    record = stored(stack, job_id)
    assert (record["status"], record["attempts"], record["version"]) == ("completed", 1, done["version"])
    keys = output_keys(stack, job_id)
    assert len(keys) == 1 and f"/{job_id}/a1/" in keys[0]


def test_a_worker_killed_mid_encode_is_replaced_and_the_job_completes(
    stack: RunningStack, api: httpx.Client, long_clip: Path, tmp_path: Path
):
    job_id = submit(api, upload(api, long_clip)).json()["id"]
    wait_until_transcoding(api, job_id)
    worker = stored(stack, job_id)["lease_owner"]  # the long-jobs consumer: "<host>:<pid>:<id>"
    pid = int(worker.split(":")[1])
    os.killpg(pid, signal.SIGKILL)  # the task's whole process group, ffmpeg too: as a container dies

    done = wait_for(api, job_id, patience_seconds=PATIENCE_SECONDS)
    assert done["status"] == "completed", done
    record = stored(stack, job_id)
    assert record["attempts"] == 2 and record["long_job"]
    [key] = output_keys(stack, job_id)
    assert f"/{job_id}/a2/" in key  # the killed attempt had written nothing
    made = tmp_path / "out.mp4"
    made.write_bytes(httpx.get(done["outputs"][0]["url"]).raise_for_status().content)
    with av.open(str(made)) as result:
        assert result.duration / 1e6 == pytest.approx(40, abs=0.5)


def test_cancel_while_processing_stops_the_worker_and_leaves_no_outputs(
    stack: RunningStack, api: httpx.Client, long_clip: Path, scratch: Path
):
    job_id = submit(
        api,
        upload(api, long_clip),
        [{"type": "mp4", "height": 144}, {"type": "hls", "heights": [144]}, {"type": "thumbnails", "count": 2}],
    ).json()["id"]
    wait_until_transcoding(api, job_id)
    assert processes_naming(job_id)  # ffmpeg, at work in the job's scratch folder

    response = api.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.text
    asked = response.json()
    assert asked["status"] in ("processing", "cancelled") and asked["cancel_requested_at"]
    if asked["status"] == "processing":
        assert response.headers["Retry-After"] == "1"

    done = wait_for(api, job_id)
    assert (done["status"], done["error"]) == ("cancelled", None)
    assert all(output["url"] is None for output in done["outputs"])
    assert output_keys(stack, job_id) == []
    assert processes_naming(job_id) == []  # ffmpeg was killed
    assert not list(scratch.glob(f"{job_id}-*"))  # and its scratch folder removed

    again = api.post(f"/jobs/{job_id}/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "job_finished")
    with stack.client(stack.create_key("another-tenant")) as other:
        assert other.post(f"/jobs/{job_id}/cancel").status_code == 404
