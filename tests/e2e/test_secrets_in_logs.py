"""No secret in anything the local stack logs: after a flow that handles every kind of secret (the webhook
secret, a signed webhook, a WebSocket ticket, SSE, HLS playback tokens, presigned uploads and downloads, a
multipart upload), none of them, nor anything shaped like one, is in the stack's output.

The stack prints its dev key in its start-up banner, on purpose (README): the scan starts after the banner.
(X-Ray is not emulated: tests/infra/test_traces.py checks that the tracer captures no response or error.)
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e.conftest import RunningStack, submit, upload, wait_for
from tests.media import make_clip, pad_media
from videojobs.sdk import Client

pytestmark = pytest.mark.e2e

SHAPES = [
    re.compile(r"whsec_"),
    re.compile(r"vj_[A-Za-z0-9_-]{8}"),
    re.compile(r"wst_"),
    re.compile(r"X-Amz-Signature|Signature=", re.IGNORECASE),
    re.compile(r"job_[0-9a-f]{32}\.\d+\.\d+\.[A-Za-z0-9_-]{43}"),  # a playback token
]


def logged_after_banner(stack: RunningStack) -> list[str]:
    lines = list(stack.output)
    banner_end = next(i for i, line in enumerate(lines) if line.startswith("try: curl"))
    return lines[banner_end + 1 :]


def leaks(lines: list[str], values: list[str]) -> list[str]:
    return [line for line in lines if any(s.search(line) for s in SHAPES) or any(v in line for v in values)]


def test_a_full_flow_leaves_no_secret_in_the_logs(stack: RunningStack, clip: Path) -> None:
    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen: list[str] = [stack.api_key]
    try:
        with stack.client() as api:
            secret = api.get("/account/webhook-secret").json()["secret"]
            seen.append(secret)
            webhook = f"http://127.0.0.1:{server.server_address[1]}/hook"
            outputs = [{"type": "hls", "heights": [144]}, {"type": "mp4", "height": 144}]
            job_id = submit(api, upload(api, clip), outputs, webhook_url=webhook).json()["id"]
            ticket = api.post(f"/jobs/{job_id}/ws-ticket").json()
            seen.append(ticket["ticket"])
            with connect(ticket["url"], open_timeout=10) as socket:
                socket.send(json.dumps({"action": "subscribe", "job_id": job_id, "since_version": 0}))
                socket.recv(timeout=30)
                done = wait_for(api, job_id)
            assert done["status"] == "completed", done
            assert api.get(f"/jobs/{job_id}/events", timeout=40).status_code == 200
            hls, mp4 = done["outputs"]
            seen += [hls["url"].split("/")[-2], mp4["url"].split("?", 1)[1]]
            variant = next(line for line in httpx.get(hls["url"]).text.splitlines() if line and line[0] != "#")
            assert httpx.get(urljoin(hls["url"], variant)).status_code == 200
            assert httpx.get(mp4["url"]).status_code == 200
            deliveries = api.get(f"/jobs/{job_id}/webhooks").json()
            assert deliveries
    finally:
        server.shutdown()
    assert received  # the signed webhook went out
    assert leaks(logged_after_banner(stack), seen) == []


def test_a_multipart_upload_leaves_no_secret_in_the_logs(small_parts_stack: RunningStack, tmp_path: Path) -> None:
    big = pad_media(make_clip(tmp_path / "big.mp4", seconds=1), 9 * 1024**2)
    with Client(small_parts_stack.url, small_parts_stack.api_key) as client:
        uploaded = client.upload(big)
        done = client.wait(client.submit(uploaded, ["mp4:144"]).id, timeout=240)
    assert uploaded.method == "MULTIPART" and done.status == "completed"
    assert leaks(logged_after_banner(small_parts_stack), [small_parts_stack.api_key]) == []
