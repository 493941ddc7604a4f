"""HLS playable early on the local stack, with chunks small enough for a short clip (12 s chunks from 20 s on):
``job.playable`` comes before ``job.completed`` on every channel (SSE, WebSocket, the webhook, EventBridge), and the
link it announces plays on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.e2e.conftest import RunningStack, running_stack, submit, upload, wait_for
from tests.e2e.test_notifications import (
    PATIENCE_SECONDS,
    Receiver,
    SocketLog,
    bus_events,
    bus_to_queue,
    eventually,
    receiver,
    sse_client,
    verifier,
    websocket_client,
)
from tests.integration.test_chunking import make_source
from videojobs import settings

pytestmark = pytest.mark.e2e
__all__ = ["receiver", "verifier"]  # the webhook fixtures, used here too


@pytest.fixture(scope="module")
def small_chunks_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    lowered = {settings.CHUNK_SECONDS: "12", settings.CHUNKED_MIN_SECONDS: "20"}
    with running_stack(tmp_path_factory.mktemp("chunks") / "stack.json", lowered) as running:
        yield running


@pytest.fixture(scope="module")
def api(small_chunks_stack: RunningStack) -> Iterator[httpx.Client]:
    with small_chunks_stack.client() as client:
        yield client


def test_job_playable_precedes_job_completed_and_its_link_plays(
    small_chunks_stack: RunningStack, api: httpx.Client, receiver: Receiver, verifier: Webhook, tmp_path: Path
) -> None:
    bus_queue = bus_to_queue(small_chunks_stack, "playable-early")
    source = make_source(tmp_path / "source.mp4", seconds=36)
    response = submit(
        api,
        upload(api, source),
        [{"type": "hls", "heights": [180, 144]}],
        webhook_url=f"{receiver.url}/playable",
        webhook_events=["job.playable", "job.completed"],
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    sse: list[dict[str, Any]] = []
    socket = SocketLog()
    clients = [
        threading.Thread(target=sse_client, args=(api, job_id, sse), daemon=True),
        threading.Thread(target=websocket_client, args=(api, job_id, socket), daemon=True),
    ]
    for client in clients:
        client.start()
    done = wait_for(api, job_id, patience_seconds=300)
    for client in clients:
        client.join(PATIENCE_SECONDS)
        assert not client.is_alive()
    assert done["status"] == "completed", done

    types = [event["type"] for event in sse]
    assert types.count("job.playable") == 1 and types[-1] == "job.completed", types
    playable = sse[types.index("job.playable")]
    assert playable["output_index"] == 0 and playable["data"]["status"] == "processing"
    assert playable["data"]["outputs"][0]["status"] == "pending"
    assert types.index("job.playable") < types.index("job.output.ready") < types.index("job.completed")

    # The WebSocket (subscribe backlog + pushes) and the bus carry the same events in the same order.
    pushed = {event["data"]["version"]: event["type"] for event in socket.backlog + socket.pushed}
    assert [pushed[version] for version in sorted(pushed)] == types
    assert [entry["detail-type"] for entry in bus_events(small_chunks_stack, bus_queue, job_id)] == types

    deliveries = eventually(
        lambda: (
            (found := [r for r in receiver.on("/playable") if job_id.encode() in r.body]) and len(found) >= 2 and found
        ),
        "webhooks",
    )
    payloads = sorted((verifier.verify(r.body, r.headers) for r in deliveries), key=lambda p: p["data"]["version"])
    assert [payload["type"] for payload in payloads] == ["job.playable", "job.completed"]

    # The job shows the early link; once completed it is the final output's master, VOD to the end.
    output = done["outputs"][0]
    assert output["status"] == "ready" and output["playable_url"].endswith("/master.m3u8")
    master = httpx.get(output["playable_url"])
    assert master.status_code == 200 and "144p.m3u8" in master.text
    variant = httpx.get(httpx.URL(output["playable_url"]).join("144p.m3u8"))
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in variant.text and "#EXT-X-ENDLIST" in variant.text
