"""Usage and cost over real HTTP on the local stack: each finished job's ``usage``, the account's daily report
adding up to its jobs, and dry runs that create nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningStack, submit, upload, wait_for

pytestmark = pytest.mark.e2e

USAGE_FIELDS = ("processing_seconds", "gb_seconds", "input_bytes", "output_bytes", "estimated_cost_usd")


def test_account_usage_adds_up_the_tenants_jobs(stack: RunningStack, clip: Path, tmp_path: Path):
    with stack.client(stack.create_key("usage-ledger")) as api:
        upload_id = upload(api, clip)
        garbage = tmp_path / "notes.mp4"
        garbage.write_text("not a video\n" * 100)
        ids = [submit(api, upload_id, [{"type": "mp4", "height": 144}]).json()["id"] for _ in range(2)]
        ids.append(submit(api, upload(api, garbage)).json()["id"])
        finished = [wait_for(api, job_id) for job_id in ids]
        assert [job["status"] for job in finished] == ["completed", "completed", "failed"]
        for job in finished:
            assert set(job["usage"]) == set(USAGE_FIELDS), job
            assert job["usage"]["processing_seconds"] > 0 and job["usage"]["estimated_cost_usd"] > 0
        assert finished[0]["usage"]["input_bytes"] == clip.stat().st_size
        assert finished[0]["usage"]["output_bytes"] == finished[0]["outputs"][0]["size_bytes"]

        day = datetime.now(UTC).date()
        response = api.get("/account/usage", params={"from": (day - timedelta(days=1)).isoformat(), "to": day})
        assert response.status_code == 200, response.text
        report = response.json()
        assert [entry["date"] for entry in report["days"]] == [(day - timedelta(days=1)).isoformat(), day.isoformat()]
        totals = report["totals"]
        assert (totals["jobs_submitted"], totals["jobs_completed"], totals["jobs_failed"]) == (3, 2, 1)
        assert totals["bytes_uploaded"] == sum(job["usage"]["input_bytes"] for job in finished)
        assert totals["bytes_output"] == sum(job["usage"]["output_bytes"] for job in finished)
        for name in ("processing_seconds", "gb_seconds", "estimated_cost_usd"):
            assert totals[name] == pytest.approx(sum(job["usage"][name] for job in finished), abs=1e-6), name
        current = report["current"]
        assert set(current) == {"pending_jobs", "active_jobs", "open_streams", "upload_bytes_today"}
        assert all(isinstance(value, int) for value in current.values()), current  # every counter is kept
        assert current["upload_bytes_today"] >= clip.stat().st_size + garbage.stat().st_size  # what was declared
        assert set(report["limits"]) == {
            "max_active_jobs", "max_pending_jobs", "max_upload_bytes_per_day", "requests_per_second", "burst",
            "max_open_streams",
        }  # fmt: skip


def test_account_usage_refuses_more_than_92_days_and_bad_dates(api):
    too_long = api.get("/account/usage", params={"from": "2026-01-01", "to": "2026-04-03"})
    not_a_date = api.get("/account/usage", params={"from": "2026-02-30", "to": "2026-03-01"})
    not_iso = api.get("/account/usage", params={"from": "1/2/2026", "to": "2026-03-01"})
    missing = api.get("/account/usage", params={"from": "2026-03-01"})
    for response in (too_long, not_a_date, not_iso, missing):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "validation_error"


def test_a_dry_run_answers_an_estimate_and_creates_nothing(stack: RunningStack, clip: Path):
    with stack.client(stack.create_key("dry-runner")) as api:
        upload_id = upload(api, clip)
        request = {"input": {"upload_id": upload_id}, "outputs": [{"type": "mp4", "height": 144}], "dry_run": True}
        response = api.post("/jobs", json=request, headers={"Idempotency-Key": "dry-1"})
        assert response.status_code == 200, response.text
        estimate = response.json()["estimate"]
        assert estimate["route"] == "lambda" and estimate["processing_seconds"] > 0
        assert estimate["estimated_cost_usd"] > 0

        assert api.get("/jobs").json()["jobs"] == []
        jobs_table = stack.env["JOBS_TABLE"]
        scan = stack.aws("dynamodb").scan(
            TableName=jobs_table,
            FilterExpression="tenant_id = :t",
            ExpressionAttributeValues={":t": {"S": "dry-runner"}},
        )
        assert scan["Count"] == 0
        day = datetime.now(UTC).date().isoformat()
        assert api.get("/account/usage", params={"from": day, "to": day}).json()["totals"]["jobs_submitted"] == 0

        # The key was not used: the same key now creates the job.
        request["dry_run"] = False
        created = api.post("/jobs", json=request, headers={"Idempotency-Key": "dry-1"})
        assert created.status_code == 202, created.text

        missing = api.post("/jobs", json={**request, "dry_run": True, "input": {"upload_id": "upl_" + "0" * 32}})
        assert missing.status_code == 422 and missing.json()["error"]["code"] == "upload_not_found"
