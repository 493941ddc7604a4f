"""The local stack serves what openapi.json documents (every route, with the documented success status and body),
and the docs themselves."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.e2e.conftest import ROOT, RunningStack, submit, upload, wait_for
from tests.e2e.test_tenant_limits import admin

pytestmark = pytest.mark.e2e

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def test_every_documented_operation_is_routed_by_the_gateway(stack: RunningStack):
    document = json.loads((ROOT / "openapi.json").read_text())
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        for method in set(item) & HTTP_METHODS:
            response = httpx.request(method.upper(), stack.url + concrete, timeout=30)
            if item[method]["security"]:  # without a key: 401 from the gateway, which knows the route
                assert response.status_code == 401, (method, path, response.text)
            else:  # the handler's own answer, whatever it is, and not the gateway's "no such route"
                missed = response.status_code == 405 or (
                    response.status_code == 404 and response.json()["error"]["message"] == "route not found"
                )
                assert not missed, (method, path, response.text)


def test_the_stack_serves_the_page_the_docs_and_the_document(stack: RunningStack):
    page = httpx.get(stack.url + "/")
    docs = httpx.get(stack.url + "/docs")
    document = httpx.get(stack.url + "/openapi.json")
    assert page.status_code == docs.status_code == document.status_code == 200
    assert '<script src="app.js"' in page.text and "swagger-ui-bundle.js" in docs.text
    assert document.json() == json.loads((ROOT / "openapi.json").read_text())
    # The page's configuration carries the dev key, so that it works as soon as it opens.
    assert httpx.get(stack.url + "/config.json").json() == {"api_key": stack.api_key}


# --- every operation answers what the document says -------------------------------------------------------------


@dataclass
class Answered:
    """What the routes answered, keyed by the documented operation (method and path as ``openapi.json`` spells
    them), checked against the document as they come."""

    document: dict[str, Any]
    seen: set[tuple[str, str, int]] = field(default_factory=set)
    mismatches: list[str] = field(default_factory=list)

    def check(self, method: str, path: str, response: httpx.Response) -> httpx.Response:
        self.seen.add((method, path, response.status_code))
        operation = self.document["paths"][path][method.lower()]
        documented = {int(status): answer for status, answer in operation["responses"].items() if int(status) < 400}
        if response.status_code not in documented:
            self.mismatches.append(
                f"{method} {path}: answered {response.status_code}, documented {sorted(documented)}: {response.text}"
            )
            return response
        content = documented[response.status_code].get("content", {})
        if not content:
            if response.content:
                self.mismatches.append(f"{method} {path}: documented no body, answered {response.text[:200]}")
            return response
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if media_type not in content:
            self.mismatches.append(f"{method} {path}: answered {media_type}, documented {sorted(content)}")
            return response
        schema = content[media_type]["schema"]
        body = response.json() if media_type == "application/json" else response.text
        # The document's own component schemas resolve the references (OpenAPI 3.1 schemas are JSON Schema).
        validator = Draft202012Validator({**schema, "components": self.document["components"]})
        # An event stream's schema describes each event (OpenAPI before 3.2's itemSchema).
        values = _server_sent_events(body) if media_type == "text/event-stream" else [body]
        for value in values:
            self.mismatches += [f"{method} {path}: {error.message}" for error in validator.iter_errors(value)]
        return response


def _server_sent_events(text: str) -> list[dict[str, Any]]:
    """The events of a ``text/event-stream`` body that carry data, as ``{"id", "event", "data", "retry"}``."""
    events = []
    for block in re.split(r"\r?\n\r?\n", text):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(":")
            if name in ("id", "event", "data"):
                fields[name] = value.removeprefix(" ")
            elif name == "retry":
                fields[name] = int(value)
        if "data" in fields:
            events.append(fields)
    return events


def _documented_successes(document: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {
        (method.upper(), path, int(status))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
        for status in operation["responses"]
        if int(status) < 400
    }


def _patch_queued_job(stack: RunningStack, clip: Path) -> httpx.Response:
    """PATCH of a job kept queued: its tenant's one active slot is taken by the job before it."""
    limited = admin(stack, "set-limits", "--tenant", "openapi-patch", "--max-active-jobs", "1")
    assert limited.returncode == 0, limited.stderr
    with stack.client(stack.create_key("openapi-patch")) as api:
        upload_id = upload(api, clip)
        holder = submit(api, upload_id).json()["id"]
        _eventually(lambda: api.get(f"/jobs/{holder}").json()["status"] != "queued", "the first job started")
        waiting = submit(api, upload_id).json()["id"]
        return api.patch(f"/jobs/{waiting}", json={"priority": "low"})


def test_every_operation_answers_its_documented_status_and_body(
    stack: RunningStack, small_parts_stack: RunningStack, clip: Path, webhook_receiver: str
):
    document = json.loads((ROOT / "openapi.json").read_text())
    answered = Answered(document)
    check = answered.check
    with stack.client(stack.create_key("openapi-contract")) as api:  # its own tenant: rotating its secret is safe
        check("GET", "/health", httpx.get(stack.url + "/health", timeout=30))

        size = clip.stat().st_size
        created = check("POST", "/uploads", api.post("/uploads", json=_upload_request(clip.name, size))).json()
        with clip.open("rb") as file:
            sent = httpx.post(
                created["url"], data=created["fields"], files={"file": (clip.name, file, "video/mp4")}, timeout=30
            )
        assert sent.is_success, sent.text

        # An endpoint made before the job, so the job's events reach its ledger.
        endpoint = check("POST", "/webhook-endpoints", api.post("/webhook-endpoints", json={"url": webhook_receiver}))
        endpoint_path = f"/webhook-endpoints/{endpoint.json()['id']}"

        job = {"input": {"upload_id": created["upload_id"]}, "outputs": [{"type": "hls", "heights": [144]}]}
        check("POST", "/jobs", api.post("/jobs", json=job | {"dry_run": True}))
        submitted = check("POST", "/jobs", api.post("/jobs", json=job | {"webhook_url": webhook_receiver})).json()
        job_id = submitted["id"]
        other = api.post("/jobs", json={**job, "outputs": [{"type": "mp4", "height": 144}]}).json()["id"]
        check("POST", "/jobs/{id}/cancel", api.post(f"/jobs/{other}/cancel"))
        check("PATCH", "/jobs/{id}", _patch_queued_job(stack, clip))
        check("GET", "/jobs", api.get("/jobs"))
        finished = wait_for(api, job_id)
        assert finished["status"] == "completed", finished
        check("GET", "/jobs/{id}", api.get(f"/jobs/{job_id}"))

        [hls] = finished["outputs"]
        check("GET", "/playback/{token}/{name}", httpx.get(hls["url"], timeout=30))  # the link is the credential

        # As an EventSource does: reconnect after the last id until 204 (notify may log the last events late).
        last_id = "0"
        while (events := api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": last_id})).status_code == 200:
            check("GET", "/jobs/{id}/events", events)
            ids = [line.removeprefix("id: ") for line in events.text.splitlines() if line.startswith("id: ")]
            last_id = ids[-1] if ids else last_id
        check("GET", "/jobs/{id}/events", events)

        check("POST", "/jobs/{id}/ws-ticket", api.post(f"/jobs/{job_id}/ws-ticket"))
        deliveries = _eventually(lambda: api.get(f"/jobs/{job_id}/deliveries").json()["deliveries"], "a delivery")
        check("GET", "/jobs/{id}/deliveries", api.get(f"/jobs/{job_id}/deliveries"))
        redeliver = f"/jobs/{job_id}/deliveries/{deliveries[0]['id']}/redeliver"
        check("POST", "/jobs/{id}/deliveries/{delivery_id}/redeliver", api.post(redeliver))

        check("GET", "/webhook-endpoints", api.get("/webhook-endpoints"))
        check("GET", "/webhook-endpoints/{id}", api.get(endpoint_path))
        check("PATCH", "/webhook-endpoints/{id}", api.patch(endpoint_path, json={"description": "contract"}))
        check("GET", "/webhook-endpoints/{id}/secret", api.get(f"{endpoint_path}/secret"))
        check("POST", "/webhook-endpoints/{id}/secret/rotate", api.post(f"{endpoint_path}/secret/rotate"))
        ledger = _eventually(
            lambda: api.get(f"{endpoint_path}/deliveries").json()["deliveries"], "an endpoint delivery"
        )
        check("GET", "/webhook-endpoints/{id}/deliveries", api.get(f"{endpoint_path}/deliveries"))
        again = f"{endpoint_path}/deliveries/{ledger[0]['id']}/redeliver"
        check("POST", "/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver", api.post(again))
        since = submitted["created_at"]
        check("POST", "/webhook-endpoints/{id}/replay", api.post(f"{endpoint_path}/replay", json={"since": since}))
        check("DELETE", "/webhook-endpoints/{id}", api.delete(endpoint_path))

        day = finished["completed_at"][:10]
        check("GET", "/account/usage", api.get("/account/usage", params={"from": day, "to": day}))
        check("GET", "/account/webhook-secret", api.get("/account/webhook-secret"))
        check("POST", "/account/webhook-secret/rotate", api.post("/account/webhook-secret/rotate"))

    # Multipart uploads, on the stack whose threshold is 8 MiB: two parts of random bytes (no job is made).
    with small_parts_stack.client() as api:
        size = 9 * 1024**2
        started = check("POST", "/uploads", api.post("/uploads", json=_upload_request("big.mp4", size))).json()
        data = os.urandom(size)
        part_size = started["part_size"]
        refresh = f"/uploads/{started['upload_id']}/parts"
        fresh = check("POST", "/uploads/{id}/parts", api.post(refresh, json={"part_numbers": [2]})).json()
        parts = []
        for part in [started["parts"][0], *fresh["parts"]]:
            offset = (part["part_number"] - 1) * part_size
            put = httpx.put(part["url"], content=data[offset : offset + part_size], timeout=30)
            assert put.is_success, put.text
            parts.append({"part_number": part["part_number"], "etag": put.headers["ETag"]})
        complete = f"/uploads/{started['upload_id']}/complete"
        check("POST", "/uploads/{id}/complete", api.post(complete, json={"parts": parts}))
        abandoned = api.post("/uploads", json=_upload_request("big.mp4", size)).json()
        check("DELETE", "/uploads/{id}", api.delete(f"/uploads/{abandoned['upload_id']}"))

    assert not answered.mismatches, "\n".join(answered.mismatches)
    assert answered.seen == _documented_successes(document), "drive every documented success once"


def _upload_request(filename: str, size: int) -> dict[str, Any]:
    return {"filename": filename, "content_type": "video/mp4", "size_bytes": size}


def _eventually(probe: Callable[[], Any], what: str, patience_seconds: float = 60) -> Any:
    deadline = time.monotonic() + patience_seconds  # a hang guard, not a measure
    while not (found := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {patience_seconds} s")
        time.sleep(0.1)
    return found
