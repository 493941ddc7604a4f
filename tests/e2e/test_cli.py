"""The ``videojobs`` command against the local stack, run as a user runs it: a subprocess with its environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import standardwebhooks

from tests.e2e.conftest import ROOT, RunningStack

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def videojobs(*args: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "videojobs.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


@pytest.fixture
def env(stack: RunningStack, tmp_path: Path) -> dict[str, str]:
    """A user's shell: the API in the environment, a home without config, no AWS settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIDEOJOBS_"))}
    return clean | {"HOME": str(tmp_path), "VIDEOJOBS_URL": stack.url, "VIDEOJOBS_API_KEY": stack.api_key}


def test_submit_wait_shows_progress_and_prints_the_output_url(env: dict[str, str], clip: Path):
    result = videojobs("submit", str(clip), "--output", "mp4:360", "--wait", env=env)
    assert result.returncode == 0, result.stderr
    job_id, url = result.stdout.split()
    assert job_id.startswith("job_") and url.startswith("http")
    # Not a terminal here, so progress comes as plain lines: the bytes, then the job to 100 %.
    assert re.search(r"upload .* \(100%\)", result.stderr)
    assert f"{job_id} 100% completed" in result.stderr
    assert httpx.get(url).raise_for_status().content[4:8] == b"ftyp"  # an MP4


def test_a_failed_job_exits_1_with_its_error_code(env: dict[str, str], tmp_path: Path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    result = videojobs("submit", str(text), "-o", "mp4:144", "--wait", "--json", env=env)
    assert result.returncode == 1
    job = json.loads(result.stdout)
    assert job["status"] == "failed"
    assert f"failed: {job['error']['code']}" in result.stderr
    assert job["error"]["code"] in ("invalid_media", "unsupported_format")


def test_status_list_and_download_in_json(env: dict[str, str], clip: Path, tmp_path: Path):
    submitted = videojobs("submit", str(clip), "-o", "mp4:144", "--json", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    watched = videojobs("watch", job_id, "--json", env=env)
    assert watched.returncode == 0 and json.loads(watched.stdout)["status"] == "completed"

    status = json.loads(videojobs("status", job_id, "--json", env=env).stdout)
    listed = json.loads(videojobs("list", "--json", "--limit", "50", env=env).stdout)
    downloaded = videojobs("download", job_id, "--dir", str(tmp_path / "out"), "--json", env=env)
    assert status["id"] == job_id and status["outputs"][0]["url"]
    assert job_id in [job["id"] for job in listed]
    [path] = json.loads(downloaded.stdout)
    assert Path(path).stat().st_size == status["outputs"][0]["size_bytes"]


def test_api_errors_exit_3_with_the_code(env: dict[str, str]):
    result = videojobs("status", "job_" + "0" * 32, env=env)
    assert result.returncode == 3
    assert "not_found" in result.stderr
    refused = videojobs("status", "job_x", "--json", env=env | {"VIDEOJOBS_API_KEY": "vj_wrong"})
    assert refused.returncode == 3 and json.loads(refused.stdout)["error"]["code"] == "unauthorized"


def test_cancelling_a_finished_job_exits_3_with_job_finished(env: dict[str, str], clip: Path):
    job_id = videojobs("submit", str(clip), "-o", "mp4:144", "--wait", env=env).stdout.split()[0]
    result = videojobs("cancel", job_id, "--json", env=env)
    assert result.returncode == 3 and json.loads(result.stdout)["error"]["code"] == "job_finished"


def test_configuration_comes_from_a_config_file_and_missing_keys_are_a_usage_error(
    env: dict[str, str], stack: RunningStack, tmp_path: Path
):
    bare = {k: v for k, v in env.items() if not k.startswith("VIDEOJOBS_")}
    missing = videojobs("list", env=bare, cwd=tmp_path)  # no flag, variable, file or local stack
    assert missing.returncode == 2 and "no API key" in missing.stderr

    config = tmp_path / ".config" / "videojobs" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{stack.url}"\napi_key = "{stack.api_key}"\n')
    assert videojobs("list", "--json", env=bare, cwd=tmp_path).returncode == 0
    # A flag beats the file.
    assert videojobs("list", "--api-key", "vj_wrong", env=bare, cwd=tmp_path).returncode == 3


def test_webhooks_listen_prints_verified_events_and_refuses_forged_ones(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIDEOJOBS_"))}
    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "videojobs.cli",
            "webhooks",
            "listen",
            "--port",
            "0",
            "--secret",
            SECRET,
            "--count",
            "1",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert listener.stderr is not None
        address = re.search(r"on (http://\S+)", listener.stderr.readline()).group(1)
        stderr_lines: list[str] = []
        reader = threading.Thread(target=lambda: stderr_lines.extend(listener.stderr), daemon=True)
        reader.start()
        body = json.dumps(
            {
                "type": "job.completed",
                "timestamp": "2026-11-28T14:00:00.000Z",
                "data": {"id": "job_1", "status": "completed", "progress": 100, "version": 4},
            }
        )
        moment = datetime.now(UTC)
        headers = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": standardwebhooks.Webhook(SECRET).sign("msg_1", moment, body),
        }
        forged = httpx.post(address, content=body.replace("completed", "failed"), headers=headers)
        genuine = httpx.post(address, content=body, headers=headers)
        listener.wait(timeout=10)  # --count 1: it stops after the genuine event
        reader.join(5)
        stdout = listener.stdout.read()
    finally:
        listener.kill()
    assert (forged.status_code, genuine.status_code, listener.returncode) == (401, 204, 0)
    [line] = stdout.splitlines()
    printed = json.loads(line)
    assert (printed["webhook_id"], printed["event"]["type"], printed["event"]["data"]["version"]) == (
        "msg_1",
        "job.completed",
        4,
    )
    assert any("rejected" in line for line in stderr_lines)


def test_webhooks_listen_receives_the_stacks_signed_webhook_for_a_job(env: dict[str, str], clip: Path):
    # No --secret: the listener asks the API for this tenant's, as a developer would use it.
    listener = subprocess.Popen(
        [sys.executable, "-m", "videojobs.cli", "webhooks", "listen", "--port", "0", "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert listener.stderr is not None and listener.stdout is not None
        address = re.search(r"on (http://\S+)", listener.stderr.readline()).group(1)
        submitted = videojobs("submit", str(clip), "-o", "mp4:144", "--webhook", address + "hook", "--wait", env=env)
        assert submitted.returncode == 0, submitted.stderr
        listener.wait(timeout=60)
        printed = listener.stdout.read()
    finally:
        listener.kill()
    job_id = submitted.stdout.split()[0]
    assert printed.startswith(f"job.completed {job_id} ") and " completed 100%" in printed
