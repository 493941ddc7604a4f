"""Per-tenant limits through the admin CLI, as an operator runs it, and their 429s on the local stack."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.e2e.conftest import ROOT, RunningStack, _clean_env, submit, upload, wait_for
from videojobs.ids import hash_api_key, new_api_key

pytestmark = pytest.mark.e2e

LIMIT_KEYS = {
    "max_active_jobs",
    "max_pending_jobs",
    "max_upload_bytes_per_day",
    "requests_per_second",
    "burst",
    "max_open_streams",
}


def admin(stack: RunningStack, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "videojobs.cli", "admin", *arguments, "--local-state", str(stack.state_file)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_clean_env())


def show_limits(stack: RunningStack, tenant: str) -> dict[str, float]:
    shown = admin(stack, "show-limits", "--tenant", tenant)
    assert shown.returncode == 0, shown.stderr
    limits: dict[str, float] = json.loads(shown.stdout)
    return limits


def test_show_limits_prints_exactly_the_six_limits_defaults_included(stack: RunningStack) -> None:
    limits = show_limits(stack, "limits-fresh")
    assert set(limits) == LIMIT_KEYS
    assert limits["max_pending_jobs"] == int(stack.env.get("TENANT_MAX_PENDING_JOBS", 1000))


def test_set_limits_overrides_some_and_keeps_the_rest(stack: RunningStack) -> None:
    before = show_limits(stack, "limits-set")
    changed = admin(stack, "set-limits", "--tenant", "limits-set", "--max-pending-jobs", "3", "--burst", "7")
    assert changed.returncode == 0, changed.stderr
    assert (
        json.loads(changed.stdout) == show_limits(stack, "limits-set") == before | {"max_pending_jobs": 3, "burst": 7}
    )
    assert show_limits(stack, "limits-other") == before


def test_set_limits_refuses_bad_values_and_bad_tenant_names(stack: RunningStack) -> None:
    refused = admin(stack, "set-limits", "--tenant", "limits-bad", "--max-open-streams", "0")
    assert refused.returncode == 2 and "--max-open-streams" in refused.stderr
    assert admin(stack, "set-limits", "--tenant", "Not A Name", "--burst", "1").returncode == 2
    assert (
        show_limits(stack, "limits-bad")["max_open_streams"] == show_limits(stack, "limits-fresh")["max_open_streams"]
    )


# --- the 429s ---------------------------------------------------------------------------------------------------


def tenant_client(stack: RunningStack, tenant: str, *limits: str) -> httpx.Client:
    key = stack.create_key(tenant)
    if limits:
        changed = admin(stack, "set-limits", "--tenant", tenant, *limits)
        assert changed.returncode == 0, changed.stderr
    return stack.client(key)


def assert_429(response: httpx.Response, code: str) -> dict[str, str]:
    assert response.status_code == 429, response.text
    error: dict[str, str] = response.json()["error"]
    assert error["code"] == code
    assert int(response.headers["Retry-After"]) >= 1
    return error


def test_over_its_request_rate_a_tenant_gets_rate_limited_before_any_function_runs(stack: RunningStack) -> None:
    with tenant_client(stack, "limits-rate", "--requests-per-second", "0.01", "--burst", "2") as api:
        assert [api.get("/jobs").status_code for _ in range(2)] == [200, 200]
        refused = api.get("/jobs")
        error = assert_429(refused, "rate_limited")
        assert "requests_per_second" in error["message"]
        with stack.client() as other:  # another tenant's bucket is its own
            assert other.get("/jobs").status_code == 200
        # A change holds from the tenant's next request.
        assert admin(stack, "set-limits", "--tenant", "limits-rate", "--requests-per-second", "50").returncode == 0
        assert api.get("/jobs").status_code == 200


def test_over_max_pending_jobs_a_submit_is_refused_until_a_job_ends(stack: RunningStack, clip: Path) -> None:
    with tenant_client(stack, "limits-pending", "--max-pending-jobs", "1") as api:
        upload_id = upload(api, clip)
        first = submit(api, upload_id)
        assert first.status_code == 202, first.text
        error = assert_429(submit(api, upload_id), "quota_exceeded")
        assert (
            "max_pending_jobs of 1" in error["message"] and "you have 1 jobs queued or processing" in error["message"]
        )
        # A replay of the accepted request is not a new job: it is answered, at the limit too.
        assert submit(api, upload_id).status_code == 429
        wait_for(api, first.json()["id"])
        # The job ended: its slot is free (notify takes it back from the jobs table's stream).
        deadline = time.monotonic() + 30
        while (again := submit(api, upload_id)).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert again.status_code == 202, again.text
        assert_429(submit(api, upload_id), "quota_exceeded")
        assert admin(stack, "set-limits", "--tenant", "limits-pending", "--max-pending-jobs", "3").returncode == 0
        assert submit(api, upload_id).status_code == 202  # the next request sees the new limit


def test_over_the_days_upload_bytes_an_upload_is_refused_until_midnight_utc(stack: RunningStack) -> None:
    with tenant_client(stack, "limits-bytes", "--max-upload-bytes-per-day", "1000") as api:
        body = {"filename": "a.mp4", "content_type": "video/mp4", "size_bytes": 600}
        assert api.post("/uploads", json=body).status_code == 201
        refused = api.post("/uploads", json=body)
        error = assert_429(refused, "quota_exceeded")
        assert "max_upload_bytes_per_day of 1000" in error["message"] and "600 bytes declared" in error["message"]
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        assert 0 < int(refused.headers["Retry-After"]) <= math.ceil((midnight - now).total_seconds()) + 1
        assert api.post("/uploads", json=body | {"size_bytes": 400}).status_code == 201


def test_over_max_open_streams_a_stream_is_refused_and_a_closed_one_frees_its_slot(
    stack: RunningStack, clip: Path
) -> None:
    with tenant_client(stack, "limits-streams", "--max-open-streams", "1") as api:
        job_id = submit(api, upload(api, clip)).json()["id"]
        wait_for(api, job_id)
        # Once notify has logged the terminal event it has no more to push: it will not close a WebSocket of it.
        deadline = time.monotonic() + 30
        while "job.completed" not in api.get(f"/jobs/{job_id}/events").text and time.monotonic() < deadline:
            time.sleep(0.2)
        ticket = api.post(f"/jobs/{job_id}/ws-ticket").json()
        with connect(ticket["url"], open_timeout=10):
            error = assert_429(api.get(f"/jobs/{job_id}/events"), "too_many_streams")
            assert "max_open_streams of 1" in error["message"]
            second = api.post(f"/jobs/{job_id}/ws-ticket").json()
            with pytest.raises(Exception, match=r"HTTP 429"):
                connect(second["url"], open_timeout=10)
        # The closed socket's $disconnect gave its slot back.
        deadline = time.monotonic() + 30
        while (events := api.get(f"/jobs/{job_id}/events")).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert events.status_code == 200, events.text


def test_a_key_from_before_usage_plans_is_refused_until_sync_rates_puts_it_in_a_plan(stack: RunningStack) -> None:
    # As an upgrade finds it: the tenant's key is in the api_keys table, its API Gateway key in no usage plan.
    key = new_api_key()
    stack.aws("dynamodb").put_item(
        TableName=stack.env["API_KEYS_TABLE"],
        Item={"key_hash": {"S": hash_api_key(key)}, "tenant_id": {"S": "limits-upgraded"}},
    )
    with stack.client(key) as api:
        assert api.get("/jobs").status_code == 403
        synced = admin(stack, "sync-rates")
        assert synced.returncode == 0, synced.stderr
        assert "limits-upgraded" in synced.stderr
        assert api.get("/jobs").status_code == 200
