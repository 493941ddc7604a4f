"""Notifications on the local stack, seen by independent clients: a webhook receiver (a real HTTP server that
verifies signatures with the ``standardwebhooks`` package), an SSE client and a WebSocket client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.conftest import RunningStack, function_errors, submit, upload, wait_for
from tests.media import make_clip
from videojobs import settings, webhooks

pytestmark = pytest.mark.e2e

TERMINAL = {"job.completed", "job.failed", "job.cancelled"}
PATIENCE_SECONDS = 90  # a hang guard, not a measure


# --- a webhook receiver -------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    fail_first: dict[str, int] = field(default_factory=dict)
    """Path -> how many attempts of each message (``webhook-id``) to answer 503 before answering 200."""

    def on(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with lock:
                earlier = [r for r in state.on(self.path) if r.headers["webhook-id"] == self.headers["webhook-id"]]
                status = 503 if len(earlier) < state.fail_first.get(self.path, 0) else 200
                state.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, status)
                )
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


@pytest.fixture(scope="module")
def verifier(api: httpx.Client) -> Webhook:
    response = api.get("/account/webhook-secret")
    assert response.status_code == 200, response.text
    secret = response.json()["secret"]
    assert secret.startswith("whsec_")
    assert api.get("/account/webhook-secret").json()["secret"] == secret  # stable until rotated
    return Webhook(secret)


def eventually(probe, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.1)
    pytest.fail(f"no {what} within {PATIENCE_SECONDS} s")


# --- SSE and WebSocket clients --------------------------------------------------------------------------------


def parse_sse(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append(fields)
    return events


def sse_client(api: httpx.Client, job_id: str, seen: list[dict[str, Any]], last_id: str | None = None) -> None:
    """What an EventSource does: read a response, reconnect with Last-Event-ID, stop on 204."""
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        response = api.get(f"/jobs/{job_id}/events", headers=headers, timeout=40)
        if response.status_code == 204:
            return
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "retry: " in response.text
        for frame in parse_sse(response.text):
            event = json.loads(frame["data"])
            assert (frame["id"], frame["event"]) == (str(event["data"]["version"]), event["type"])
            seen.append(event)
            last_id = frame["id"]


@dataclass
class SocketLog:
    backlog: list[dict[str, Any]] = field(default_factory=list)
    pushed: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None


def websocket_client(api: httpx.Client, job_id: str, log: SocketLog) -> None:
    ticket = api.post(f"/jobs/{job_id}/ws-ticket")
    assert ticket.status_code == 201, ticket.text
    with connect(ticket.json()["url"], open_timeout=10) as socket:
        socket.send(json.dumps({"action": "subscribe", "job_id": job_id, "since_version": 0}))
        try:
            while True:
                message = json.loads(socket.recv(timeout=PATIENCE_SECONDS))
                if message.get("type") == "subscribed":
                    log.backlog = message["events"]
                else:
                    log.pushed.append(message)
        except ConnectionClosed as closed:
            log.close_code = closed.rcvd.code if closed.rcvd else None


# --- the tests ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # About a second to make and four to encode at 720p (nothing is scaled up): the worker writes progress at
    # most once a second, so the encode must last a few.
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", seconds=15, width=1280, height=720)


def bus_to_queue(stack: RunningStack, name: str) -> str:
    """A rule on the stack's event bus sending every videojobs event to a new queue, as an integrator routes it."""
    sqs, events = stack.aws("sqs"), stack.aws("events")
    queue_url: str = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.env[settings.EVENT_BUS_NAME]
    events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps({"source": ["videojobs"]}))
    events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return queue_url


def bus_events(stack: RunningStack, queue_url: str, job_id: str) -> list[dict[str, Any]]:
    """The job's events as the queue behind ``bus_to_queue`` received them, up to its terminal event."""
    sqs, entries = stack.aws("sqs"), []

    def read() -> bool:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            entry = json.loads(message["Body"])
            if entry["detail"]["data"]["id"] == job_id:
                entries.append(entry)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return any(entry["detail-type"] == "job.completed" for entry in entries)

    eventually(read, "job.completed on the bus")
    return entries


def test_every_channel_sees_the_same_ordered_events(
    stack: RunningStack, api: httpx.Client, receiver: Receiver, verifier: Webhook, long_clip: Path
) -> None:
    bus_queue = bus_to_queue(stack, "every-channel")
    response = submit(
        api,
        upload(api, long_clip),
        [{"type": "mp4", "height": 720}],
        webhook_url=f"{receiver.url}/ok",
        webhook_events=["job.output.ready", "job.completed"],
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    sse: list[dict[str, Any]] = []
    socket = SocketLog()
    clients = [
        threading.Thread(target=sse_client, args=(api, job_id, sse), daemon=True),
        threading.Thread(target=websocket_client, args=(api, job_id, socket), daemon=True),
    ]
    for client in clients:
        client.start()
    assert wait_for(api, job_id)["status"] == "completed"
    for client in clients:
        client.join(PATIENCE_SECONDS)
        assert not client.is_alive()

    # SSE: the whole story, each version once, in order, ending with the terminal event.
    versions = [event["data"]["version"] for event in sse]
    assert versions == sorted(set(versions))
    types = [event["type"] for event in sse]
    assert types[0] == "job.queued" and types[-1] == "job.completed"
    assert "job.processing" in types and types.count("job.progress") >= 2, types
    # The output was announced as soon as it was uploaded, before the completion, ready, with its index.
    assert types[-2:] == ["job.output.ready", "job.completed"], types
    ready = sse[-2]
    assert ready["output_index"] == 0 and ready["data"]["outputs"][0]["status"] == "ready"
    assert ready["data"]["status"] == "processing"
    assert all(event["data"]["id"] == job_id for event in sse)
    progress = [event["data"]["progress"] for event in sse if event["type"] == "job.progress"]
    assert progress == sorted(progress)
    assert len({p for p in progress if 0 < p < 100}) >= 2, progress  # the encode itself reported progress

    # WebSocket: pushes arrive in version order; with the subscribe backlog they are the same events as SSE's.
    pushed = [event["data"]["version"] for event in socket.pushed]
    assert pushed == sorted(set(pushed)) and pushed
    merged = {event["data"]["version"]: event for event in socket.backlog + socket.pushed}
    assert sorted(merged) == versions
    assert [merged[version]["type"] for version in versions] == types
    assert [event["type"] for event in socket.pushed[-2:]] == ["job.output.ready", "job.completed"]
    assert socket.close_code == 1000  # the server closed politely after the terminal event

    # Webhook (the events asked for): job.output.ready then job.completed, signed, the same events as everywhere.
    deliveries = eventually(
        lambda: (
            (found := [r for r in receiver.on("/ok") if job_id.encode() in r.body])
            and len({r.headers["webhook-id"] for r in found}) == 2
            and found
        ),
        "webhook",
    )
    payloads = sorted(
        (verifier.verify(request.body, request.headers) for request in deliveries), key=lambda p: p["data"]["version"]
    )
    assert [payload["type"] for payload in payloads] == ["job.output.ready", "job.completed"]
    assert payloads[0]["timestamp"] <= payloads[1]["timestamp"]
    assert payloads[0] == merged[versions[-2]] and payloads[1] == merged[versions[-1]]

    # EventBridge (rule -> queue): the same events in the same order, job.output.ready before job.completed.
    on_bus = bus_events(stack, bus_queue, job_id)
    assert [entry["detail"]["data"]["version"] for entry in on_bus] == versions
    assert [entry["detail-type"] for entry in on_bus] == types
    assert [entry["detail"]["type"] for entry in on_bus] == types

    # SSE resume: Last-Event-ID skips what was seen; after the terminal event there is nothing more (204).
    middle = versions[len(versions) // 2]
    resumed: list[dict[str, Any]] = []
    sse_client(api, job_id, resumed, last_id=str(middle))
    assert [event["data"]["version"] for event in resumed] == [v for v in versions if v > middle]
    assert api.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": str(versions[-1])}).status_code == 204


def test_a_receiver_failing_three_times_gets_the_event_on_the_fourth_attempt(
    stack: RunningStack, api: httpx.Client, receiver: Receiver, verifier: Webhook, clip: Path
) -> None:
    receiver.fail_first["/flaky"] = 3
    response = submit(
        api, upload(api, clip), webhook_url=f"{receiver.url}/flaky", webhook_events=["job.processing", "job.completed"]
    )
    job_id = response.json()["id"]
    assert response.json()["webhook_events"] == ["job.processing", "job.completed"]
    wait_for(api, job_id)

    def completed() -> list[Received]:
        got = [r for r in receiver.on("/flaky") if json.loads(r.body)["type"] == "job.completed"]
        return got if got and got[-1].answered == 200 else []

    attempts = eventually(completed, "successful delivery")
    assert [attempt.answered for attempt in attempts] == [503, 503, 503, 200]
    assert len({attempt.headers["webhook-id"] for attempt in attempts}) == 1
    assert len({attempt.body for attempt in attempts}) == 1  # byte for byte the same body
    for attempt in attempts:
        verifier.verify(attempt.body, attempt.headers)

    ledger = eventually(lambda: _delivered(api, job_id, "job.completed"), "delivered ledger entry")
    assert [attempt["status_code"] for attempt in ledger["attempts"]] == [503, 503, 503, 200]
    assert ledger["id"] == attempts[0].headers["webhook-id"]
    assert all(attempt["latency_ms"] >= 0 and attempt["at"] for attempt in ledger["attempts"])

    # A manual redelivery: 202, the same webhook-id and body once more.
    again = api.post(f"/jobs/{job_id}/deliveries/{ledger['id']}/redeliver")
    assert again.status_code == 202, again.text
    redelivered = eventually(lambda: completed()[4:] if len(completed()) > 4 else [], "redelivery")
    assert redelivered[0].headers["webhook-id"] == ledger["id"] and redelivered[0].body == attempts[0].body
    # Retrying a receiver's 503 is routine: reported to Lambda as a batch item failure, never a function error.
    assert [line for line in function_errors(stack) if "videojobs-deliver" in line] == []

    # Once per interval per delivery: a second redelivery at once is refused, and says when to come back.
    too_soon = api.post(f"/jobs/{job_id}/deliveries/{ledger['id']}/redeliver")
    assert too_soon.status_code == 429 and too_soon.json()["error"]["code"] == "rate_limited", too_soon.text
    assert 1 <= int(too_soon.headers["Retry-After"]) <= webhooks.REDELIVER_INTERVAL_SECONDS


def _delivered(api: httpx.Client, job_id: str, event_type: str) -> dict[str, Any] | None:
    response = api.get(f"/jobs/{job_id}/deliveries")
    assert response.status_code == 200, response.text
    found = [d for d in response.json()["deliveries"] if d["event_type"] == event_type and d["status"] == "delivered"]
    return found[0] if found else None


def test_notification_routes_hide_other_tenants_jobs(stack: RunningStack, api: httpx.Client, clip: Path) -> None:
    job_id = submit(api, upload(api, clip)).json()["id"]
    with stack.client(stack.create_key("notifications-intruder")) as intruder:
        for method, path in [
            ("GET", f"/jobs/{job_id}/events"),
            ("GET", f"/jobs/{job_id}/deliveries"),
            ("POST", f"/jobs/{job_id}/ws-ticket"),
            ("POST", f"/jobs/{job_id}/deliveries/msg_x_1/redeliver"),
        ]:
            response = intruder.request(method, path)
            assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), path
        # Each tenant has its own signing secret.
        assert (
            intruder.get("/account/webhook-secret").json()["secret"]
            != api.get("/account/webhook-secret").json()["secret"]
        )


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "https://user:pw@example.com/hook",
        "https://[::ffff:127.0.0.1]/hook",
    ],
)
def test_webhook_urls_into_private_networks_are_refused_at_submit(api: httpx.Client, clip: Path, url: str) -> None:
    response = submit(api, "upl_" + "0" * 32, webhook_url=url)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("invalid_webhook_url", "validation_error")


def test_a_websocket_needs_a_fresh_single_use_ticket(api: httpx.Client, clip: Path) -> None:
    job_id = submit(api, upload(api, clip)).json()["id"]
    ticket = api.post(f"/jobs/{job_id}/ws-ticket").json()
    assert ticket["ticket"] in ticket["url"] and ticket["expires_at"]
    with connect(ticket["url"], open_timeout=10):
        pass
    for url in (ticket["url"], ticket["url"].replace(ticket["ticket"], "wst_forged")):
        with pytest.raises(Exception, match=r"HTTP 40[13]"):
            connect(url, open_timeout=10)
