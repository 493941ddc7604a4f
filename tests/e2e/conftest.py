"""End-to-end fixtures: the local stack exactly as ``make run`` starts it, in its own process, over real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from infra.local.functions import FUNCTION_ERROR_LOG
from videojobs import settings

ROOT = Path(__file__).resolve().parents[2]
READY = "videojobs local stack ready: "
KEY = "dev API key: "


@dataclass
class RunningStack:
    url: str
    api_key: str
    state_file: Path
    process: subprocess.Popen[str]
    output: list[str]

    def client(self, api_key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {api_key or self.api_key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def aws(self, service: str) -> Any:
        """A boto3 client of the stack's moto server: for checks no API client could make (what is in S3)."""
        state = json.loads(self.state_file.read_text())
        return boto3.client(
            service,
            endpoint_url=state["moto_endpoint"],
            region_name=state["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    @property
    def env(self) -> dict[str, str]:
        """The stack's resource names and settings, as its functions see them."""
        return json.loads(self.state_file.read_text())["env"]

    def create_key(self, tenant: str) -> str:
        """A new key through the admin CLI, exactly as the README tells an operator."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "videojobs.cli",
                "admin",
                "create-key",
                "--tenant",
                tenant,
                "--local-state",
                str(self.state_file),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=_clean_env(),
        )
        return result.stdout.splitlines()[0]


def _clean_env() -> dict[str, str]:
    """The environment of a developer's shell: no AWS settings leaking in from the test process."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("stack") / "stack.json") as running:
        yield running


@pytest.fixture(scope="session")
def small_parts_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A second stack whose multipart threshold and part size are 8 MiB (the defaults: 100 and 64 MiB)."""
    lowered = {settings.MULTIPART_THRESHOLD_BYTES: str(8 * 1024**2), settings.MULTIPART_PART_BYTES: str(8 * 1024**2)}
    with running_stack(tmp_path_factory.mktemp("multipart") / "stack.json", lowered) as running:
        yield running


@contextmanager
def running_stack(
    state_file: Path, env: dict[str, str] | None = None, options: list[str] | None = None
) -> Iterator[RunningStack]:
    """``python -m infra.local`` in its own process until the block ends; ``env`` adds settings to its
    environment (e.g. a lower multipart threshold), ``options`` command-line options (e.g. ``--custom-domain``)."""
    process = subprocess.Popen(
        # The deployed visibility timeouts: work comes back through heartbeats and explicit retries, as in AWS.
        [
            sys.executable,
            "-m",
            "infra.local",
            "--port",
            "0",
            "--state-file",
            str(state_file),
            # Webhook retries at test speed (the deployed schedule waits 5 s, then 5 min, ...).
            "--webhook-retry-delays",
            "1,1,1,1",
            *(options or []),
        ],
        cwd=ROOT,
        env=_clean_env() | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    url = api_key = None
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if line.startswith(READY):
            url = line[len(READY) :].strip()
        elif line.startswith(KEY):
            api_key = line[len(KEY) :].strip()
        if url and api_key:
            break
    if not (url and api_key):
        process.kill()
        pytest.fail("the local stack did not start:\n" + "".join(output[-50:]))

    # Keep draining its output so the pipe never fills up and blocks the stack.
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()
    running = RunningStack(url, api_key, state_file, process, output)
    yield running
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the local stack did not stop on Ctrl-C")


def function_errors(stack: RunningStack) -> list[str]:
    """The Lambda function errors the stack logged so far (its ``Errors`` metric in AWS)."""
    return [line.strip() for line in list(stack.output) if FUNCTION_ERROR_LOG in line]


@pytest.fixture(scope="session")
def api(stack: RunningStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


def upload(api: httpx.Client, path: Path, content_type: str = "video/mp4") -> str:
    """The client's side of an upload: ask for a presigned POST, send the file straight to S3."""
    response = api.post(
        "/uploads",
        json={
            "filename": path.name,
            "content_type": content_type,
            "size_bytes": path.stat().st_size,
        },
    )
    assert response.status_code == 201, response.text
    presigned = response.json()
    with path.open("rb") as file:
        sent = httpx.post(presigned["url"], data=presigned["fields"], files={"file": (path.name, file, content_type)})
    assert sent.status_code in (200, 201, 204), sent.text
    return presigned["upload_id"]


def submit(api: httpx.Client, upload_id: str, outputs: list[dict] | None = None, **extra) -> httpx.Response:
    body = {"input": {"upload_id": upload_id}, "outputs": outputs or [{"type": "mp4", "height": 144}], **extra}
    return api.post("/jobs", content=json.dumps(body), headers={"Content-Type": "application/json"})


def wait_for(api: httpx.Client, job_id: str, *, patience_seconds: float = 120) -> dict:
    """Poll like a client should (honouring Retry-After, capped for test speed) until the job is finished."""
    deadline = time.monotonic() + patience_seconds
    while True:
        response = api.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in ("completed", "failed", "cancelled"):
            assert "Retry-After" not in response.headers
            return job
        assert int(response.headers["Retry-After"]) >= 1
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['status']} after {patience_seconds} s: {job}")
        time.sleep(0.25)


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[str]:
    """A webhook endpoint on loopback that accepts every delivery (204)."""

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
