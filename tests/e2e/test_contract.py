"""Bad input gets its status and stable code; tenants are isolated; idempotency holds under concurrency."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningStack, submit, upload, wait_for

pytestmark = pytest.mark.e2e


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


@pytest.fixture(scope="module")
def upload_id(api: httpx.Client, clip: Path) -> str:
    return upload(api, clip)


def test_missing_or_unknown_key_is_401(stack: RunningStack):
    assert_error(httpx.get(f"{stack.url}/jobs"), 401, "unauthorized")
    assert_error(httpx.get(f"{stack.url}/jobs", headers={"Authorization": "Bearer vj_nope"}), 401, "unauthorized")
    assert_error(httpx.get(f"{stack.url}/jobs", headers={"Authorization": "Basic abc"}), 401, "unauthorized")


def test_body_that_is_not_json_is_400_invalid_json(api: httpx.Client):
    response = api.post("/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize(
    "body",
    [
        {"outputs": [{"type": "mp4", "height": 360}]},
        {"input": {"upload_id": "upl_" + "0" * 32}, "outputs": []},
        {"input": {"upload_id": "upl_" + "0" * 32}, "outputs": [{"type": "gif", "height": 360}]},
        {"input": {"upload_id": "upl_" + "0" * 32}, "outputs": [{"type": "mp4", "height": 100}]},
        {"input": {"upload_id": "upl_" + "0" * 32}, "outputs": [{"type": "mp4", "height": 5000}]},
        {
            "input": {"upload_id": "upl_" + "0" * 32},
            "outputs": [{"type": "mp4", "height": 360}],
            "metadata": {"blob": "x" * 3000},
        },
        {"input": {"upload_id": "upl_" + "0" * 32}, "outputs": [{"type": "mp4", "height": 360}], "webhook_url": "nope"},
        {"input": {"upload_id": "../../etc/passwd"}, "outputs": [{"type": "mp4", "height": 360}]},
        [],
    ],
    ids=[
        "no-input",
        "no-outputs",
        "unknown-type",
        "height-low",
        "height-high",
        "metadata-2kb",
        "bad-webhook",
        "bad-upload-id",
        "array",
    ],
)
def test_schema_violations_are_422_validation_error(api: httpx.Client, body):
    assert_error(api.post("/jobs", json=body), 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.txt", "content_type": "text/plain", "size_bytes": 10},
        {"filename": "a.mp4", "content_type": "video/mp4", "size_bytes": 0},
        {"filename": "a.mp4", "content_type": "video/mp4", "size_bytes": 5 * 1024**4 + 1},  # over S3's object limit
        {"filename": "", "content_type": "video/mp4", "size_bytes": 10},
    ],
)
def test_bad_upload_requests_are_422_validation_error(api: httpx.Client, body):
    assert_error(api.post("/uploads", json=body), 422, "validation_error")


def test_unknown_upload_is_422_upload_not_found(api: httpx.Client):
    assert_error(submit(api, "upl_" + "f" * 32), 422, "upload_not_found")


def test_body_over_64_kb_is_413(api: httpx.Client, upload_id: str):
    body = json.dumps(
        {
            "input": {"upload_id": upload_id},
            "outputs": [{"type": "mp4", "height": 360}],
            "metadata": {"pad": "x" * 70_000},
        }
    )
    assert_error(
        api.post("/jobs", content=body, headers={"Content-Type": "application/json"}), 413, "payload_too_large"
    )


def test_unknown_job_and_unknown_route_are_404(api: httpx.Client):
    assert_error(api.get("/jobs/job_" + "0" * 32), 404, "not_found")
    assert_error(api.get("/nothing-here"), 404, "not_found")


def test_bad_query_parameters_are_422(api: httpx.Client):
    assert_error(api.get("/jobs", params={"limit": 0}), 422, "validation_error")
    assert_error(api.get("/jobs", params={"status": "exploded"}), 422, "validation_error")
    assert_error(api.get("/jobs", params={"cursor": "!!!"}), 422, "validation_error")


def test_tenants_never_see_each_other(stack: RunningStack, api: httpx.Client, upload_id: str):
    job = submit(api, upload_id).json()
    with stack.client(stack.create_key("other-tenant")) as other:
        # Another tenant's job is indistinguishable from a missing one.
        assert_error(other.get(f"/jobs/{job['id']}"), 404, "not_found")
        assert other.get("/jobs").json() == {"jobs": [], "next_cursor": None}
        # Nor can it use the first tenant's upload.
        assert_error(submit(other, upload_id), 422, "upload_not_found")
    assert job["id"] in [listed["id"] for listed in api.get("/jobs", params={"limit": 100}).json()["jobs"]]


def test_list_is_newest_first_and_paginates_without_repeats(stack: RunningStack, clip: Path):
    with stack.client(stack.create_key("pager")) as api:
        upload_id = upload(api, clip)
        submitted = [submit(api, upload_id).json()["id"] for _ in range(5)]
        seen, cursor = [], None
        while True:
            page = api.get("/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            assert len(page["jobs"]) <= 2
            seen += [job["id"] for job in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(submitted))


def test_status_filter_returns_only_that_status(stack: RunningStack, clip: Path):
    with stack.client(stack.create_key("filter")) as api:
        text = clip.with_name("bad.mp4")
        text.write_text("not media")
        failed = submit(api, upload(api, text)).json()["id"]
        wait_for(api, failed)
        page = api.get("/jobs", params={"status": "failed"}).json()
        assert [job["id"] for job in page["jobs"]] == [failed]
        assert api.get("/jobs", params={"status": "processing"}).json()["jobs"] == []


def test_same_idempotency_key_and_body_gives_one_job_even_when_racing(api: httpx.Client, upload_id: str):
    body = {"input": {"upload_id": upload_id}, "outputs": [{"type": "mp4", "height": 144}]}
    headers = {"Idempotency-Key": "race-1"}
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda _: api.post("/jobs", json=body, headers=headers), range(16)))
    assert {response.status_code for response in responses} == {202}
    assert len({response.json()["id"] for response in responses}) == 1
    # The same body spelled differently is still the same request.
    reordered = json.dumps({"outputs": [{"height": 144, "type": "mp4"}], "input": {"upload_id": upload_id}})
    again = api.post("/jobs", content=reordered, headers={**headers, "Content-Type": "application/json"})
    assert (again.status_code, again.json()["id"]) == (202, responses[0].json()["id"])


def test_same_idempotency_key_with_another_body_is_409(api: httpx.Client, upload_id: str):
    headers = {"Idempotency-Key": "conflict-1"}
    first = api.post(
        "/jobs", json={"input": {"upload_id": upload_id}, "outputs": [{"type": "mp4", "height": 144}]}, headers=headers
    )
    assert first.status_code == 202
    second = api.post(
        "/jobs", json={"input": {"upload_id": upload_id}, "outputs": [{"type": "mp4", "height": 240}]}, headers=headers
    )
    assert_error(second, 409, "idempotency_conflict")


def test_idempotency_keys_belong_to_one_tenant(stack: RunningStack, api: httpx.Client, clip: Path):
    headers = {"Idempotency-Key": "shared-name"}
    body = {"input": {"upload_id": upload(api, clip)}, "outputs": [{"type": "mp4", "height": 144}]}
    mine = api.post("/jobs", json=body, headers=headers).json()
    with stack.client(stack.create_key("key-sharer")) as other:
        other_upload = upload(other, clip)
        body = {"input": {"upload_id": other_upload}, "outputs": [{"type": "mp4", "height": 144}]}
        theirs = other.post("/jobs", json=body, headers=headers)
        assert theirs.status_code == 202 and theirs.json()["id"] != mine["id"]
