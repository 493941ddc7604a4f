"""Tenant isolation and idempotency under pressure, on the running local stack over real HTTP.

The sweep is built from ``videojobs.wiring.ROUTES``, so a route added there is covered (or makes the sweep
fail until its id is known here).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningStack, submit, upload
from tests.media import make_clip
from videojobs import wiring

pytestmark = pytest.mark.e2e

# Public routes check no tenant: their ids are capabilities (a signed playback token) or there are none.
PUBLIC = {route.path for route in wiring.ROUTES if not route.authorized}
PARAMETER = re.compile(r"\{(\w+)\}")
# Bodies that pass validation, so a 404 comes from the ownership check and not from a 422 before it.
BODIES = {
    ("POST", "/uploads/{id}/complete"): {"parts": [{"part_number": 1, "etag": "etag"}]},
    ("POST", "/uploads/{id}/parts"): {"part_numbers": [1]},
    ("PATCH", "/jobs/{id}"): {"priority": "high"},
    ("PATCH", "/webhook-endpoints/{id}"): {"description": "tenant B was here"},
    ("POST", "/webhook-endpoints/{id}/replay"): {"since": "2026-01-01T00:00:00Z"},
}
KINDS = {"/uploads/": "upload", "/webhook-endpoints/": "endpoint"}
# A delivery id of tenant B's own kind: the route's job is tenant A's, which must be enough for the 404.
FOREIGN_DELIVERY = "dlv_" + "0" * 32


@pytest.fixture(scope="module")
def tenants(stack: RunningStack) -> Iterator[dict[str, httpx.Client]]:
    clients = {name: stack.client(stack.create_key(name)) for name in ("iso-a", "iso-b")}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def owned(tenants: dict[str, httpx.Client], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Real ids of tenant A: an upload (not yet used by a job), a job and a webhook endpoint (disabled: its
    public address is never called)."""
    a = tenants["iso-a"]
    clip = make_clip(tmp_path_factory.mktemp("iso") / "clip.mp4", seconds=1, width=160, height=120)
    job = submit(a, upload(a, clip))
    assert job.status_code == 202, job.text
    endpoint = a.post("/webhook-endpoints", json={"url": "https://93.184.215.14/hook", "events": ["job.failed"]})
    assert endpoint.status_code == 201, endpoint.text
    disabled = a.patch(f"/webhook-endpoints/{endpoint.json()['id']}", json={"disabled": True})
    assert disabled.status_code == 200, disabled.text
    return {"upload": upload(a, clip), "job": job.json()["id"], "endpoint": endpoint.json()["id"]}


def concrete(path: str, owned: dict[str, str]) -> str:
    """The route's path with tenant A's ids in its parameters."""
    kind = next((kind for prefix, kind in KINDS.items() if path.startswith(prefix)), "job")

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "id":
            return owned[kind]
        if name == "delivery_id":
            return FOREIGN_DELIVERY
        pytest.fail(f"{path}: no id of tenant A for parameter {{{name}}}: add it to test_isolation.py")

    return PARAMETER.sub(value, path)


SWEPT = [route for route in wiring.ROUTES if PARAMETER.search(route.path) and route.path not in PUBLIC]


@pytest.mark.parametrize("route", SWEPT, ids=[f"{route.method} {route.path}" for route in SWEPT])
def test_another_tenants_ids_are_not_found(route: wiring.Route, tenants, owned):
    """Every authorized route with an id answers tenant B with 404 ``not_found`` for tenant A's real ids: B can
    neither read, change nor learn the existence of A's uploads, jobs or deliveries."""
    body = BODIES.get((route.method, route.path))
    response = tenants["iso-b"].request(route.method, concrete(route.path, owned), json=body, timeout=10)
    assert response.status_code == 404, (response.status_code, response.text)
    assert response.json()["error"]["code"] == "not_found", response.text


def test_sweep_covers_the_id_routes():
    """The sweep is not empty and skips only the public routes (whose ids are capabilities, not tenant data)."""
    swept = {route.path for route in SWEPT}
    assert {"/jobs/{id}", "/jobs/{id}/cancel", "/uploads/{id}"} <= swept
    assert {"/health", "/playback/{token}/{name}"} == PUBLIC


def test_tenant_a_still_owns_its_job_and_upload(tenants, owned):
    """Runs after the sweep: B's cancel and delete did nothing, and the ids were real (A sees them)."""
    a = tenants["iso-a"]
    job = a.get(f"/jobs/{owned['job']}")
    assert job.status_code == 200 and job.json()["status"] != "cancelled", job.text
    used = submit(a, owned["upload"])
    assert used.status_code == 202, used.text


def test_keys_never_list_another_tenants_jobs(tenants, owned):
    """Each tenant's list has only its own jobs, with and without a status filter."""
    a_ids = {job["id"] for job in tenants["iso-a"].get("/jobs", params={"limit": 100}).json()["jobs"]}
    assert owned["job"] in a_ids
    for params in ({"limit": 100}, {"status": "queued"}, {"status": "completed"}, {"status": "processing"}):
        listed = tenants["iso-b"].get("/jobs", params=params)
        assert listed.status_code == 200, listed.text
        assert not a_ids & {job["id"] for job in listed.json()["jobs"]}, params


def test_idempotency_storm_makes_one_job(stack: RunningStack, tmp_path: Path):
    """50 concurrent identical submits with one Idempotency-Key: all accepted, one job id, and the tenant's
    list holds exactly one job."""
    with stack.client(stack.create_key("storm")) as api:
        upload_id = upload(api, make_clip(tmp_path / "clip.mp4", seconds=1, width=160, height=120))
        body = {"input": {"upload_id": upload_id}, "outputs": [{"type": "mp4", "height": 144}]}
        with ThreadPoolExecutor(max_workers=50) as pool:
            responses = list(
                pool.map(lambda _: api.post("/jobs", json=body, headers={"Idempotency-Key": "storm"}), range(50))
            )
        assert [response.status_code for response in responses] == [202] * 50
        assert len({response.json()["id"] for response in responses}) == 1
        assert len(api.get("/jobs", params={"limit": 100}).json()["jobs"]) == 1
