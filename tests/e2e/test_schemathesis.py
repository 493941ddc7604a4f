"""schemathesis over openapi.json against the running local stack: generated requests (valid and invalid) to every
operation, with real identifiers mixed in so that each one goes past 404/422. No 5xx, every answer conforms to the
document, every error body has the ``{"error": {"code", "message"}}`` shape, and every operation reaches a success."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import ROOT, RunningStack, submit, upload, wait_for
from tests.e2e.test_tenant_limits import admin

pytestmark = pytest.mark.e2e

# Small and fixed: the same requests in every run (derandomized), in about a minute on two idle cores.
EXAMPLES_PER_OPERATION = 12
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: a failure is reported as found (with its curl command), and the run stays bounded.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schemathesis.check
def error_body_shape(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Every 4xx/5xx answer is ``{"error": {"code": str, "message": str}}`` and nothing else."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {response.text[:200]!r}") from None
    detail = body.get("error") if isinstance(body, dict) else None
    assert (
        isinstance(body, dict)
        and set(body) == {"error"}
        and isinstance(detail, dict)
        and isinstance(detail.get("code"), str)
        and isinstance(detail.get("message"), str)
        and detail["code"]
        and detail["message"]
    ), f'error body is not {{"error": {{"code", "message"}}}}: {response.text[:200]}'
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_body_shape,
]


@dataclass
class RealIds:
    """Identifiers that exist for the fuzzing tenant, made through the API before the fuzz starts."""

    media_upload: str  # a real clip, completed
    junk_upload: str  # bytes that are not media: a job on it fails at once, so fuzzed submits cost little
    completed_job: str  # HLS, with a webhook: it has a playback token and a delivery
    delivery: str
    playback_token: str
    playlist: str
    completed_multipart: str  # completing it again answers 200
    completed_parts: list[dict[str, Any]]
    open_multiparts: list[str]  # in progress, none of their parts sent: DELETE answers 204 once each
    fresh_job: Callable[[], str]  # a just-submitted job, still cancellable
    queued_job: Callable[[], str]  # a job kept queued (the tenant's one active slot is taken): PATCH answers 200
    endpoint: str  # a webhook endpoint made before the job: it has a delivery of the job's events
    endpoint_delivery: str
    fresh_endpoint: Callable[[], str]  # a new webhook endpoint (room is made among the fuzzed ones)
    webhook_receiver: str


@pytest.fixture(scope="module")
def fuzz_tenant(small_parts_stack: RunningStack) -> tuple[RunningStack, str]:
    """Its own tenant (rotating its webhook secret disturbs no other test), on the stack whose multipart
    threshold is 8 MiB so that a multipart upload can be completed with 8 MiB of data."""
    return small_parts_stack, small_parts_stack.create_key("schemathesis")


@pytest.fixture(scope="module")
def real_ids(fuzz_tenant: tuple[RunningStack, str], clip: Path, webhook_receiver: str) -> RealIds:
    stack, key = fuzz_tenant
    with stack.client(key) as api:
        created = api.post("/webhook-endpoints", json={"url": webhook_receiver})
        assert created.status_code == 201, created.text
        endpoint = created.json()["id"]
        media = upload(api, clip)
        junk = clip.with_name("not-media.mp4")
        junk.write_bytes(b"not media at all\n" * 64)
        junk_upload = upload(api, junk)

        job = {"input": {"upload_id": media}, "outputs": [{"type": "hls", "heights": [144]}]}
        submitted = api.post("/jobs", json=job | {"webhook_url": webhook_receiver})
        assert submitted.status_code == 202, submitted.text
        finished = wait_for(api, submitted.json()["id"])
        assert finished["status"] == "completed", finished
        token, playlist = re.fullmatch(r".*/playback/([^/]+)/([^/]+)", finished["outputs"][0]["url"]).groups()
        deliveries = _eventually(lambda: api.get(f"/jobs/{finished['id']}/deliveries").json()["deliveries"])
        ledger = _eventually(lambda: api.get(f"/webhook-endpoints/{endpoint}/deliveries").json()["deliveries"])

        multipart_id, parts = _completed_multipart(api)
        declared = {"filename": "big.mp4", "content_type": "video/mp4", "size_bytes": 9 * 1024**2}
        open_multiparts = [api.post("/uploads", json=declared).json()["upload_id"] for _ in range(3)]

    def fresh_job() -> str:
        with stack.client(key) as client:
            response = submit(client, media)
            assert response.status_code == 202, response.text
            return response.json()["id"]

    def queued_job() -> str:
        # The fuzzing tenant gets one active slot from here on, and a job of its own takes it: the next one
        # stays queued (a PATCH needs a queued job of the caller's). Later fuzzed jobs run one at a time.
        limited = admin(stack, "set-limits", "--tenant", "schemathesis", "--max-active-jobs", "1")
        assert limited.returncode == 0, limited.stderr
        with stack.client(key) as client:
            holder = submit(client, media).json()["id"]
            _eventually(lambda: client.get(f"/jobs/{holder}").json()["status"] != "queued")
            response = submit(client, junk_upload)
            assert response.status_code == 202, response.text
            return response.json()["id"]

    def fresh_endpoint() -> str:
        with stack.client(key) as client:
            listed = [e["id"] for e in client.get("/webhook-endpoints").json()["endpoints"] if e["id"] != endpoint]
            if len(listed) >= 19:  # the fuzz may have made the tenant's 20
                client.delete(f"/webhook-endpoints/{listed[-1]}")
            response = client.post("/webhook-endpoints", json={"url": webhook_receiver})
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

    return RealIds(
        media_upload=media,
        junk_upload=junk_upload,
        completed_job=finished["id"],
        delivery=deliveries[0]["id"],
        playback_token=token,
        playlist=playlist,
        completed_multipart=multipart_id,
        completed_parts=parts,
        open_multiparts=open_multiparts,
        fresh_job=fresh_job,
        queued_job=queued_job,
        endpoint=endpoint,
        endpoint_delivery=ledger[0]["id"],
        fresh_endpoint=fresh_endpoint,
        webhook_receiver=webhook_receiver,
    )


def _completed_multipart(api: httpx.Client) -> tuple[str, list[dict[str, Any]]]:
    """A two-part upload (8 MiB and 1 byte), sent and completed."""
    size = 8 * 1024**2 + 1
    started = api.post("/uploads", json={"filename": "big.mp4", "content_type": "video/mp4", "size_bytes": size})
    assert started.status_code == 201 and "parts" in started.json(), started.text
    plan = started.json()
    data = b"\0" * size
    parts = []
    for part in plan["parts"]:
        offset = (part["part_number"] - 1) * plan["part_size"]
        put = httpx.put(part["url"], content=data[offset : offset + plan["part_size"]], timeout=60)
        assert put.is_success, put.text
        parts.append({"part_number": part["part_number"], "etag": put.headers["ETag"]})
    completed = api.post(f"/uploads/{plan['upload_id']}/complete", json={"parts": parts})
    assert completed.status_code == 200, completed.text
    return plan["upload_id"], parts


def _eventually(probe: Callable[[], Any], patience_seconds: float = 60) -> Any:
    import time

    deadline = time.monotonic() + patience_seconds  # a hang guard, not a measure
    while not (found := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"nothing within {patience_seconds} s")
        time.sleep(0.1)
    return found


@dataclass
class Run:
    """Sends cases to the stack, validates each answer with the checks, and remembers what every operation
    answered and what failed (all failures of the run are reported together)."""

    base_url: str
    api_key: str
    session: requests.Session = field(default_factory=requests.Session)
    statuses: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    failures: dict[str, str] = field(default_factory=dict)

    def send(self, case: schemathesis.Case) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        response = case.call(base_url=self.base_url, session=self.session, headers=headers, timeout=60)
        self.statuses[case.operation.label].add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                self.failures.setdefault(f"{case.operation.label}: {failure.title}", str(group))


def _known_good_cases(schema: Any, ids: RealIds) -> dict[str, Callable[[], dict[str, Any]]]:
    """Per operation, the arguments of one request that must succeed (built lazily: some make a resource)."""
    job = {"id": ids.completed_job}
    endpoint = {"id": ids.endpoint}
    return {
        "GET /health": lambda: {},
        "POST /uploads": lambda: {
            "body": {"filename": "a.mp4", "content_type": "video/mp4", "size_bytes": 1000},
        },
        "POST /uploads/{id}/complete": lambda: {
            "path_parameters": {"id": ids.completed_multipart},
            "body": {"parts": ids.completed_parts},
        },
        "POST /uploads/{id}/parts": lambda: {
            "path_parameters": {"id": ids.open_multiparts[-1]},
            "body": {"part_numbers": [1]},
        },
        "DELETE /uploads/{id}": lambda: {"path_parameters": {"id": ids.open_multiparts[0]}},
        "POST /jobs": lambda: {
            "body": {"input": {"upload_id": ids.junk_upload}, "outputs": [{"type": "mp4", "height": 144}]},
        },
        "GET /jobs": lambda: {},
        "GET /jobs/{id}": lambda: {"path_parameters": job},
        "POST /jobs/{id}/cancel": lambda: {"path_parameters": {"id": ids.fresh_job()}},
        "PATCH /jobs/{id}": lambda: {"path_parameters": {"id": ids.queued_job()}, "body": {"priority": "high"}},
        "GET /playback/{token}/{name}": lambda: {
            "path_parameters": {"token": ids.playback_token, "name": ids.playlist},
        },
        "GET /jobs/{id}/events": lambda: {"path_parameters": job},
        "POST /jobs/{id}/ws-ticket": lambda: {"path_parameters": job},
        "GET /jobs/{id}/deliveries": lambda: {"path_parameters": job},
        "POST /jobs/{id}/deliveries/{delivery_id}/redeliver": lambda: {
            "path_parameters": {**job, "delivery_id": ids.delivery},
        },
        "GET /account/usage": lambda: {"query": {"from": "2026-11-01", "to": "2026-11-30"}},
        "GET /account/webhook-secret": lambda: {},
        "POST /account/webhook-secret/rotate": lambda: {},
        "POST /webhook-endpoints": lambda: {"body": {"url": ids.webhook_receiver, "events": ["job.failed"]}},
        "GET /webhook-endpoints": lambda: {},
        "GET /webhook-endpoints/{id}": lambda: {"path_parameters": endpoint},
        "PATCH /webhook-endpoints/{id}": lambda: {"path_parameters": endpoint, "body": {"description": "fuzzed"}},
        "DELETE /webhook-endpoints/{id}": lambda: {"path_parameters": {"id": ids.fresh_endpoint()}},
        "GET /webhook-endpoints/{id}/secret": lambda: {"path_parameters": endpoint},
        "POST /webhook-endpoints/{id}/secret/rotate": lambda: {"path_parameters": endpoint},
        "GET /webhook-endpoints/{id}/deliveries": lambda: {"path_parameters": endpoint},
        "POST /webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver": lambda: {
            "path_parameters": {**endpoint, "delivery_id": ids.endpoint_delivery},
        },
        "POST /webhook-endpoints/{id}/replay": lambda: {
            "path_parameters": {"id": ids.fresh_endpoint()},
            "body": {"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
        },
    }


def _real_path_parameters(ids: RealIds) -> dict[str, dict[str, list[str]]]:
    """Per operation, real values to draw path parameters from (besides generated ones, which mostly miss)."""
    jobs = [ids.completed_job]  # terminal: its event stream ends at once, cancelling it is a documented 409
    return {
        "POST /uploads/{id}/complete": {"id": [ids.completed_multipart, *ids.open_multiparts]},
        "POST /uploads/{id}/parts": {"id": ids.open_multiparts},
        "DELETE /uploads/{id}": {"id": ids.open_multiparts},
        "GET /jobs/{id}": {"id": jobs},
        "POST /jobs/{id}/cancel": {"id": jobs},
        "PATCH /jobs/{id}": {"id": jobs},
        "GET /playback/{token}/{name}": {"token": [ids.playback_token], "name": [ids.playlist, "144p.m3u8"]},
        "GET /jobs/{id}/events": {"id": jobs},
        "POST /jobs/{id}/ws-ticket": {"id": jobs},
        "GET /jobs/{id}/deliveries": {"id": jobs},
        "POST /jobs/{id}/deliveries/{delivery_id}/redeliver": {"id": jobs, "delivery_id": [ids.delivery]},
        # Not DELETE: the fuzz would delete the endpoint the other operations use.
        **{
            f"{method} /webhook-endpoints/{{id}}{path}": {"id": [ids.endpoint]}
            for method, path in [
                ("GET", ""),
                ("PATCH", ""),
                ("GET", "/secret"),
                ("POST", "/secret/rotate"),
                ("GET", "/deliveries"),
                ("POST", "/replay"),
            ]
        },
        "POST /webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver": {
            "id": [ids.endpoint],
            "delivery_id": [ids.endpoint_delivery],
        },
    }


def _strategy(operation: Any, real: dict[str, list[str]], ids: RealIds) -> st.SearchStrategy:
    generated = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )
    if operation.label == "POST /jobs":
        # Valid bodies name an upload that exists (the junk one: the job fails at probe, cheaply).
        return st.one_of(generated, operation.as_strategy(GenerationMode.POSITIVE).map(_with_upload(ids.junk_upload)))
    if not real:
        return generated
    with_real_ids = st.fixed_dictionaries({name: st.sampled_from(values) for name, values in real.items()}).flatmap(
        lambda path_parameters: st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=path_parameters),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=path_parameters),
        )
    )
    return st.one_of(generated, with_real_ids)


def _with_upload(upload_id: str) -> Callable[[schemathesis.Case], schemathesis.Case]:
    def replace(case: schemathesis.Case) -> schemathesis.Case:
        if isinstance(case.body, dict) and isinstance(case.body.get("input"), dict):
            case.body["input"]["upload_id"] = upload_id
        return case

    return replace


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    fuzz_tenant: tuple[RunningStack, str], real_ids: RealIds
):
    stack, key = fuzz_tenant
    schema = schemathesis.openapi.from_path(ROOT / "openapi.json")
    operations = {result.ok().label: result.ok() for result in schema.get_all_operations()}
    known_good = _known_good_cases(schema, real_ids)
    real = _real_path_parameters(real_ids)
    assert set(known_good) == set(operations), "a known-good request for every documented operation"

    run = Run(stack.url, key)
    for label, operation in operations.items():
        run.send(operation.Case(**known_good[label]()))

        @FUZZ_SETTINGS
        @given(case=_strategy(operation, real.get(label, {}), real_ids))
        def fuzz(case: schemathesis.Case) -> None:
            run.send(case)

        fuzz()

    report = "\n".join(f"{label}: {sorted(statuses)}" for label, statuses in sorted(run.statuses.items()))
    print("statuses seen per operation:\n" + report)
    assert not run.failures, "\n\n".join(run.failures.values())
    never_succeeded = [label for label in operations if not any(200 <= s < 300 for s in run.statuses[label])]
    assert not never_succeeded, report


@pytest.mark.parametrize(
    ("status", "body", "passes"),
    [
        (404, b'{"error": {"code": "not_found", "message": "no such job"}}', True),
        (404, b'{"message": "no such job"}', False),
        (422, b'{"error": {"code": "validation_error"}}', False),
        (422, b'{"error": {"code": "validation_error", "message": "bad"}, "detail": 1}', False),
        (500, b"Internal Server Error", False),
        (200, b"{}", True),
    ],
)
def test_the_error_shape_check_refuses_other_error_bodies(status: int, body: bytes, passes: bool):
    answer = requests.Response()
    answer.status_code, answer._content = status, body
    answer.headers["Content-Type"] = "application/json"
    answer.request = requests.Request("GET", "http://127.0.0.1/jobs").prepare()
    case = schemathesis.openapi.from_path(ROOT / "openapi.json")["/jobs"]["GET"].Case()
    if passes:
        error_body_shape(None, schemathesis.Response.from_any(answer), case)
    else:
        with pytest.raises(AssertionError):
            error_body_shape(None, schemathesis.Response.from_any(answer), case)
