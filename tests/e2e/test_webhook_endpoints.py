"""Webhook endpoints and the event bus on the local stack, seen by independent clients: receivers that verify
signatures with the ``standardwebhooks`` package against each endpoint's own secret, and an SQS queue that an
EventBridge rule on the stack's bus feeds.

The stack is this module's own: its endpoints are disabled after 2 s of failures (the default is 5 days), and
its tenants see no other test's jobs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.e2e.conftest import RunningStack, function_errors, running_stack, submit, upload, wait_for
from videojobs import settings

pytestmark = pytest.mark.e2e

PATIENCE_SECONDS = 90  # a hang guard, not a measure
DISABLE_AFTER_SECONDS = 2


@pytest.fixture(scope="module")
def hooks_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    short_window = {settings.ENDPOINT_DISABLE_AFTER_SECONDS: str(DISABLE_AFTER_SECONDS)}
    with running_stack(tmp_path_factory.mktemp("hooks") / "stack.json", short_window) as running:
        yield running


@pytest.fixture(scope="module")
def api(hooks_stack: RunningStack) -> Iterator[httpx.Client]:
    with hooks_stack.client() as client:
        yield client


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receivers:
    """One HTTP server; each endpoint has its own path. Paths in ``failing`` answer 500."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)

    def on(self, path: str) -> list[Received]:
        return [request for request in list(self.requests) if request.path == path]


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    state = Receivers()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(500 if self.path in state.failing else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


def eventually(probe: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.1)
    pytest.fail(f"no {what} within {PATIENCE_SECONDS} s")


def create_endpoint(api: httpx.Client, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = api.post("/webhook-endpoints", json={"url": url, "events": events, "description": "e2e"})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def verified(received: Received, secret: str) -> dict[str, Any]:
    return Webhook(secret).verify(received.body, received.headers)  # type: ignore[no-any-return]


def run_job(api: httpx.Client, clip: Path) -> str:
    response = submit(api, upload(api, clip))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    assert wait_for(api, job_id)["status"] == "completed"
    return job_id


def test_two_endpoints_get_exactly_the_events_of_their_filters_signed_with_their_own_secrets(
    hooks_stack: RunningStack, api: httpx.Client, receivers: Receivers, clip: Path
) -> None:
    finished = create_endpoint(api, f"{receivers.url}/finished", ["job.completed", "job.failed"])
    started = create_endpoint(api, f"{receivers.url}/started", ["job.queued", "job.processing"])
    assert finished["secret"].startswith("whsec_") and finished["secret"] != started["secret"]
    assert (finished["disabled"], finished["disabled_reason"]) == (False, None)
    listed = api.get("/webhook-endpoints").json()["endpoints"]
    assert {endpoint["id"] for endpoint in listed} >= {finished["id"], started["id"]}
    assert all("secret" not in endpoint for endpoint in listed)

    # The bus, routed as an integrator would: a rule on the stack's bus to a queue.
    sqs, events = hooks_stack.aws("sqs"), hooks_stack.aws("events")
    queue_url = sqs.create_queue(QueueName="bus-e2e")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = hooks_stack.env[settings.EVENT_BUS_NAME]
    events.put_rule(Name="all-jobs", EventBusName=bus, EventPattern=json.dumps({"source": ["videojobs"]}))
    events.put_targets(Rule="all-jobs", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])

    job_id = run_job(api, clip)
    eventually(lambda: receivers.on("/finished") and len(receivers.on("/started")) >= 2, "webhooks")
    time.sleep(1)  # anything extra would arrive within the retry delay of a second
    [completed] = receivers.on("/finished")
    body = verified(completed, finished["secret"])
    assert (body["type"], body["data"]["id"]) == ("job.completed", job_id)
    with pytest.raises(WebhookVerificationError):
        verified(completed, started["secret"])
    starts = [verified(request, started["secret"]) for request in receivers.on("/started")]
    assert [event["type"] for event in starts] == ["job.queued", "job.processing"]

    entries: list[dict[str, Any]] = []

    def read_bus() -> bool:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            entries.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return any(entry["detail-type"] == "job.completed" for entry in entries)

    eventually(read_bus, "job.completed on the bus")
    versions = [entry["detail"]["data"]["version"] for entry in entries]
    assert versions == sorted(set(versions))  # in order, each once
    assert entries[0]["detail-type"] == "job.queued" and entries[-1]["detail-type"] == "job.completed"
    assert {entry["source"] for entry in entries} == {"videojobs"}
    assert len({entry["detail"]["tenant_id"] for entry in entries}) == 1
    assert json.loads(completed.body) == {k: v for k, v in entries[-1]["detail"].items() if k != "tenant_id"}

    # The endpoint's own ledger, newest first, by status, page by page.
    page = api.get(f"/webhook-endpoints/{started['id']}/deliveries", params={"status": "delivered", "limit": 1})
    assert page.status_code == 200, page.text
    [newest] = page.json()["deliveries"]
    processing_id = receivers.on("/started")[1].headers["webhook-id"]
    assert (newest["event_type"], newest["job_id"], newest["id"]) == ("job.processing", job_id, processing_id)
    cursor = page.json()["next_cursor"]
    rest = api.get(f"/webhook-endpoints/{started['id']}/deliveries", params={"limit": 5, "cursor": cursor}).json()
    assert [delivery["event_type"] for delivery in rest["deliveries"]] == ["job.queued"]
    assert rest["next_cursor"] is None
    assert function_errors(hooks_stack) == []


def test_after_a_rotation_deliveries_verify_with_the_old_and_the_new_secret(
    api: httpx.Client, receivers: Receivers, clip: Path
) -> None:
    endpoint = create_endpoint(api, f"{receivers.url}/rotated", ["job.completed"])
    rotated = api.post(f"/webhook-endpoints/{endpoint['id']}/secret/rotate")
    assert rotated.status_code == 200, rotated.text
    new_secret, expires = rotated.json()["secret"], rotated.json()["previous_expires_at"]
    assert new_secret != endpoint["secret"]
    overlap = datetime.fromisoformat(expires) - datetime.now(UTC)
    assert timedelta(hours=23) < overlap <= timedelta(hours=24)
    shown = api.get(f"/webhook-endpoints/{endpoint['id']}/secret").json()
    assert shown == {"secret": new_secret, "previous_expires_at": expires}

    run_job(api, clip)
    [delivered] = eventually(lambda: receivers.on("/rotated"), "the webhook")
    assert len(delivered.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new_secret):  # a receiver with either one accepts it
        verified(delivered, secret)


def test_replay_resends_the_window_with_the_original_webhook_ids(
    api: httpx.Client, receivers: Receivers, clip: Path
) -> None:
    since = datetime.now(UTC)  # after the earlier tests' jobs ended: only this job's events are in the window
    endpoint = create_endpoint(api, f"{receivers.url}/replayed", ["job.queued", "job.completed"])
    job_id = run_job(api, clip)
    originals = eventually(lambda: len(receivers.on("/replayed")) >= 2 and receivers.on("/replayed"), "webhooks")
    mine = {r.headers["webhook-id"] for r in originals if json.loads(r.body)["data"]["id"] == job_id}
    assert len(mine) == 2

    replay = api.post(f"/webhook-endpoints/{endpoint['id']}/replay", json={"since": since.isoformat()})
    assert replay.status_code == 202, replay.text
    assert replay.json() == {"replayed": 2}  # the job's queued and completed: the only events in the window
    again = eventually(lambda: len(receivers.on("/replayed")) >= 4 and receivers.on("/replayed"), "replays")
    resent = [r.headers["webhook-id"] for r in again[len(originals) :]]
    assert sorted(resent) == sorted(mine)
    assert [r.body for r in again[len(originals) :]] == [r.body for r in originals]  # the same bodies, in order
    for request in again:
        verified(request, endpoint["secret"])

    too_old = api.post(
        f"/webhook-endpoints/{endpoint['id']}/replay",
        json={"since": (datetime.now(UTC) - timedelta(days=8)).isoformat()},
    )
    assert too_old.status_code == 422, too_old.text
    error = too_old.json()["error"]
    assert error["code"] == "validation_error" and "oldest available is " in error["message"]


def test_an_endpoint_failing_past_the_window_is_disabled_and_announced_then_reenabled(
    api: httpx.Client, receivers: Receivers, clip: Path
) -> None:
    receivers.failing.add("/down")
    down = create_endpoint(api, f"{receivers.url}/down", ["job.queued", "job.processing", "job.completed"])
    watcher = create_endpoint(api, f"{receivers.url}/watcher", ["endpoint.disabled"])
    run_job(api, clip)

    [announcement] = eventually(lambda: receivers.on("/watcher"), "endpoint.disabled")
    event = verified(announcement, watcher["secret"])
    assert (event["type"], event["data"]["id"], event["data"]["disabled_reason"]) == (
        "endpoint.disabled",
        down["id"],
        "failing",
    )
    shown = api.get(f"/webhook-endpoints/{down['id']}").json()
    assert (shown["disabled"], shown["disabled_reason"]) == (True, "failing")
    failed_at = [datetime.fromtimestamp(int(r.headers["webhook-timestamp"]), UTC) for r in receivers.on("/down")]
    assert max(failed_at) - min(failed_at) >= timedelta(seconds=DISABLE_AFTER_SECONDS - 1)

    enabled = api.patch(f"/webhook-endpoints/{down['id']}", json={"disabled": False})
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["disabled"], enabled.json()["disabled_reason"]) == (False, None)


def test_another_tenants_endpoint_is_not_found_on_every_route(
    hooks_stack: RunningStack, api: httpx.Client, receivers: Receivers
) -> None:
    endpoint = create_endpoint(api, f"{receivers.url}/private")
    with hooks_stack.client(hooks_stack.create_key("intruder")) as other:
        base = f"/webhook-endpoints/{endpoint['id']}"
        answers = [
            other.get(base),
            other.patch(base, json={"description": "mine now"}),
            other.delete(base),
            other.get(f"{base}/secret"),
            other.post(f"{base}/secret/rotate"),
            other.get(f"{base}/deliveries"),
            other.post(f"{base}/deliveries/msg_x_1/redeliver"),
            other.post(f"{base}/replay", json={"since": datetime.now(UTC).isoformat()}),
        ]
        assert [answer.status_code for answer in answers] == [404] * len(answers)
        assert {answer.json()["error"]["code"] for answer in answers} == {"not_found"}
        assert endpoint["id"] not in {e["id"] for e in other.get("/webhook-endpoints").json()["endpoints"]}
    assert api.get(base).json()["description"] == "e2e"  # untouched
    assert api.delete(base).status_code == 204
    assert api.get(base).status_code == 404


@pytest.mark.parametrize("url", ["http://93.184.215.14/hook", "https://10.0.0.1/hook", "https://169.254.169.254/"])
def test_endpoint_urls_into_private_networks_are_refused(api: httpx.Client, url: str) -> None:
    response = api.post("/webhook-endpoints", json={"url": url})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_webhook_url"


def test_the_sdk_manages_endpoints(hooks_stack: RunningStack, receivers: Receivers, clip: Path) -> None:
    from videojobs.sdk import ApiError, Client

    with Client(hooks_stack.url, hooks_stack.api_key) as client:
        since = datetime.now(UTC)
        endpoint = client.webhook_endpoints.create(f"{receivers.url}/sdk", events=["job.completed"], description="sdk")
        assert endpoint.secret and endpoint.events == ["job.completed"]
        assert endpoint.id in {listed.id for listed in client.webhook_endpoints.list()}
        assert client.webhook_endpoints.secret(endpoint.id) == endpoint.secret
        paused = client.webhook_endpoints.update(endpoint.id, disabled=True, events=["job.failed", "job.completed"])
        assert (paused.disabled, paused.disabled_reason, paused.events) == (
            True,
            "manual",
            ["job.failed", "job.completed"],
        )
        assert not client.webhook_endpoints.update(endpoint.id, disabled=False).disabled
        job = client.wait(client.submit(client.upload(clip), ["mp4:144"]).id)
        assert job.status == "completed"
        eventually(lambda: receivers.on("/sdk"), "the webhook")
        assert client.webhook_endpoints.replay(endpoint.id, since) == 1
        eventually(lambda: len(receivers.on("/sdk")) == 2, "the replay")
        deliveries = list(client.webhook_endpoints.deliveries(endpoint.id, page_size=1))
        assert [d["event_type"] for d in deliveries] == ["job.completed"]
        client.webhook_endpoints.delete(endpoint.id)
        with pytest.raises(ApiError) as gone:
            client.webhook_endpoints.get(endpoint.id)
        assert gone.value.status == 404


def test_the_cli_creates_lists_and_replays_endpoints(hooks_stack: RunningStack, receivers: Receivers) -> None:
    import os
    import subprocess
    import sys

    from tests.e2e.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIDEOJOBS_"))}
    env |= {"VIDEOJOBS_URL": hooks_stack.url, "VIDEOJOBS_API_KEY": hooks_stack.api_key}

    def videojobs(*args: str) -> Any:
        command = [sys.executable, "-m", "videojobs.cli", "webhooks", *args, "--json"]
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    created = videojobs("create", f"{receivers.url}/cli", "--events", "job.completed,job.failed")
    assert created["events"] == ["job.completed", "job.failed"] and created["secret"].startswith("whsec_")
    listed = videojobs("list")
    assert created["id"] in {endpoint["id"] for endpoint in listed}
    assert all("secret" not in endpoint for endpoint in listed)
    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    assert videojobs("replay", created["id"], "--since", since)["replayed"] >= 1  # this module's earlier jobs
