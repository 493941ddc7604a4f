"""The Python SDK against the local stack: uploads (one POST, or parts), submit, wait, list, download, errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import httpx
import pytest

from tests.e2e.conftest import RunningStack
from tests.media import make_clip, pad_media
from videojobs import settings
from videojobs.sdk import ApiError, Client

pytestmark = pytest.mark.e2e

MIB = 1024**2
BIG_FILE_BYTES = 300_000_000


def test_the_sdk_uploads_submits_follows_and_downloads_a_job(stack: RunningStack, clip: Path, tmp_path: Path):
    sent: list[int] = []
    updates = []
    with Client(stack.url, stack.api_key) as client:
        upload = client.upload(clip, on_progress=lambda done, total: sent.append(done))
        job = client.submit(upload, ["mp4:144"], metadata={"by": "sdk"})
        done = client.wait(job.id, on_update=updates.append, timeout=120)
        listed = {listed.id for listed in itertools.islice(client.list(page_size=1), 30)}  # one job per page
        files = client.download(done, tmp_path / "out")
        followed_events = client._events_available

    assert upload.method == "POST" and sent[-1] == clip.stat().st_size
    assert done.status == "completed", done
    assert done.metadata == {"by": "sdk"}
    versions = [update.version for update in updates]
    assert versions == sorted(set(versions)) and versions[-1] == done.version
    assert followed_events  # the events stream (SSE); tests/unit/test_client.py covers the fallback to polling
    assert job.id in listed
    [saved] = files
    with av.open(str(saved)) as result:
        assert (result.streams.video[0].codec_context.name, result.streams.video[0].height) == ("h264", 144)


def test_api_errors_carry_their_code(stack: RunningStack):
    with Client(stack.url, stack.api_key) as client:
        with pytest.raises(ApiError) as missing:
            client.submit("upl_" + "0" * 32, ["mp4:144"])
        with pytest.raises(ApiError) as unknown:
            client.get("job_unknown")
    with Client(stack.url, "vj_not_a_key") as stranger, pytest.raises(ApiError) as refused:
        stranger.get("job_unknown")
    assert (missing.value.status, missing.value.code) == (422, "upload_not_found")
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")


def test_a_300_mb_file_goes_up_in_parallel_parts_and_its_job_completes(small_parts_stack: RunningStack, tmp_path: Path):
    big = pad_media(make_clip(tmp_path / "big.mp4", seconds=2), BIG_FILE_BYTES)
    progress: list[int] = []
    with Client(small_parts_stack.url, small_parts_stack.api_key, part_concurrency=4) as client:
        upload = client.upload(big, on_progress=lambda done, total: progress.append(done))
        big.unlink()  # the parts are in storage now; free the disk for the worker's copy
        job = client.submit(upload, ["mp4:144"])
        done = client.wait(job.id, timeout=240)
    assert upload.method == "MULTIPART" and upload.size_bytes == BIG_FILE_BYTES
    assert max(progress) == progress[-1] == BIG_FILE_BYTES
    assert done.status == "completed", done
    assert done.input["metadata"]["size_bytes"] == BIG_FILE_BYTES
    assert done.input["metadata"]["duration_seconds"] == pytest.approx(2, abs=0.1)


def test_an_unfinished_multipart_upload_cannot_be_submitted_and_can_be_aborted(small_parts_stack: RunningStack):
    with small_parts_stack.client() as api:
        started = api.post(
            "/uploads", json={"filename": "a.mp4", "content_type": "video/mp4", "size_bytes": 20 * MIB}
        ).json()
        assert (started["method"], len(started["parts"]), started["part_size"]) == ("MULTIPART", 3, 8 * MIB)
        # One part sent straight to storage, as a client would, and then the client stops.
        assert httpx.put(started["parts"][0]["url"], content=bytes(8 * MIB)).status_code == 200
        body = {"input": {"upload_id": started["upload_id"]}, "outputs": [{"type": "mp4", "height": 144}]}
        incomplete = api.post("/jobs", json=body)
        aborted = api.delete(f"/uploads/{started['upload_id']}")
        again = api.delete(f"/uploads/{started['upload_id']}")
        gone = api.post("/jobs", json=body)
    assert (incomplete.status_code, incomplete.json()["error"]["code"]) == (422, "upload_incomplete")
    assert aborted.status_code == 204
    assert (again.status_code, again.json()["error"]["code"]) == (404, "not_found")
    assert (gone.status_code, gone.json()["error"]["code"]) == (422, "upload_not_found")


def test_follow_gets_every_event_over_the_websocket_even_when_the_connection_is_closed_midway(
    stack: RunningStack, clip: Path
):
    """``Client.follow`` on the real WebSocket API: its first connection is closed by the gateway after the first
    event (as API Gateway does at 2 hours or after 10 idle minutes); it reopens with a new ticket and catches up
    from the last version, so the job's events arrive once each, in order, up to the terminal one."""
    with Client(stack.url, stack.api_key) as client:
        job = client.submit(client.upload(clip), ["mp4:144"])
        events = client.follow(job.id)
        iterator = iter(events)
        first = next(iterator)
        for connection_id in _connections_of(stack, job.id):
            httpx.delete(f"{stack.url}/ws/@connections/{connection_id}")  # the management API's close
        rest = list(iterator)
        done = client.get(job.id)
    versions = [first.data.version] + [event.data.version for event in rest]
    assert versions == sorted(set(versions))
    assert rest[-1].type == "job.completed" and versions[-1] == done.version


def _connections_of(stack: RunningStack, job_id: str) -> list[str]:
    table = stack.env[settings.WS_CONNECTIONS_TABLE]
    items = stack.aws("dynamodb").query(
        TableName=table,
        KeyConditionExpression="job_id = :job",
        ExpressionAttributeValues={":job": {"S": job_id}},
        ConsistentRead=True,
    )["Items"]
    return [item["connection_id"]["S"] for item in items]
