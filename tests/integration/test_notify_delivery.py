"""Webhook delivery on moto: the retry schedule on the SQS message, the ledger, the DLQ, and one real POST to a
local server through the pinned-address client (no redirects, bounded read, timeout)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra.local.resources import Resources
from videojobs import webhooks
from videojobs.aws import client, events_client
from videojobs.event_bus import EventBus
from videojobs.models import isoformat, utcnow
from videojobs.notification_store import DeliveryLedger, DeliveryRecord, EndpointStore, SecretStore
from videojobs.queues import DeliveryQueue, ReceivedMessage
from videojobs.service import webhook_delivery
from videojobs.settings import DeliverSettings
from videojobs.ssrf import Target
from videojobs.webhooks import DeliveryMessage, DeliveryStatus, Response

URL = "https://hooks.example/in"
ROOT = Path(__file__).resolve().parents[2]


class FakeReceiver:
    """Stands in for the network: answers each attempt with the next scripted response."""

    def __init__(self, *responses: Response):
        self.responses = list(responses)
        self.calls: list[tuple[Target, dict[str, str], bytes]] = []

    def __call__(self, target: Target, headers: dict[str, str], body: bytes, timeout: float) -> Response:
        self.calls.append((target, headers, body))
        return self.responses.pop(0)


def deps_for(
    aws: Resources, receiver: FakeReceiver, delays: str = "0,0", resolve: Any = lambda host, port: ["93.184.215.14"]
) -> webhook_delivery.DeliverDeps:
    settings = DeliverSettings.from_env({**aws.environment(), "WEBHOOK_RETRY_DELAYS": delays})
    dynamodb = client("dynamodb")
    return webhook_delivery.DeliverDeps(
        settings=settings,
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        secrets=SecretStore(dynamodb, settings.webhook_secrets_table),
        queue=DeliveryQueue(client("sqs"), settings.deliveries_queue_url, settings.deliveries_dlq_url),
        endpoints=EndpointStore(dynamodb, settings.webhook_endpoints_table),
        endpoint_ledger=DeliveryLedger(dynamodb, settings.endpoint_deliveries_table, by_endpoint=True),
        bus=EventBus(events_client(), settings.event_bus_name),
        resolve=resolve,
        send=receiver,
    )


def pending(deps: webhook_delivery.DeliverDeps, **overrides: Any) -> DeliveryMessage:
    record = DeliveryRecord(
        job_id="job_1",
        delivery_id="msg_1_4",
        tenant_id="t1",
        event_type="job.completed",
        version=4,
        url=overrides.get("url", URL),
        body='{"type":"job.completed"}',
        status=DeliveryStatus.PENDING,
        created_at=isoformat(utcnow()),
        attempts=[],
    )
    deps.ledger.create(record)
    message = DeliveryMessage(job_id="job_1", delivery_id="msg_1_4")
    deps.queue.send(message)
    return message


def receive(url: str) -> list[dict[str, Any]]:
    return client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])


def run_once(deps: webhook_delivery.DeliverDeps, message: DeliveryMessage) -> bool:
    [received] = receive(deps.settings.deliveries_queue_url)
    message_in_flight = ReceivedMessage(
        client("sqs"), deps.settings.deliveries_queue_url, received["ReceiptHandle"], time.monotonic()
    )
    return webhook_delivery.deliver(message, message_in_flight, deps)


def ok() -> Response:
    return Response(200, 5)


def failing(status: int = 500, retry_after: float | None = None) -> Response:
    return Response(status, 5, f"HTTP {status}", retry_after)


def test_a_spent_schedule_marks_the_delivery_failed_and_parks_it_in_the_dlq(aws: Resources) -> None:
    receiver = FakeReceiver(failing(), failing(503), failing())
    deps = deps_for(aws, receiver, delays="0,0")
    message = pending(deps)
    assert run_once(deps, message) is False  # deferred: the message stays, visible again after the delay
    assert run_once(deps, message) is False
    assert run_once(deps, message) is True
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None and record.status is DeliveryStatus.FAILED
    assert [attempt.status_code for attempt in record.attempts] == [500, 503, 500]
    [parked] = receive(aws.queues["deliveries"].dlq_url)
    assert DeliveryMessage.model_validate_json(parked["Body"]) == message
    # Every attempt had the same id and body, freshly signed.
    assert {headers["webhook-id"] for _, headers, _ in receiver.calls} == {"msg_1_4"}
    assert {body for _, _, body in receiver.calls} == {b'{"type":"job.completed"}'}


def test_a_failed_attempt_hides_the_message_until_the_next_one(aws: Resources) -> None:
    deps = deps_for(aws, FakeReceiver(failing()), delays="300")
    message = pending(deps)
    before = utcnow()
    assert run_once(deps, message) is False
    assert receive(deps.settings.deliveries_queue_url) == []  # hidden by ChangeMessageVisibility
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None and record.status is DeliveryStatus.PENDING and record.next_attempt_at
    wait = (datetime.fromisoformat(record.next_attempt_at) - before).total_seconds()
    assert 300 * (1 - webhooks.JITTER) - 1 <= wait <= 300 * (1 + webhooks.JITTER) + 1


def test_gone_stops_and_success_delivers_without_dead_letters(aws: Resources) -> None:
    deps = deps_for(aws, FakeReceiver(failing(410)))
    assert run_once(deps, pending(deps)) is True
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None and record.status is DeliveryStatus.FAILED and len(record.attempts) == 1
    assert receive(aws.queues["deliveries"].dlq_url) == []

    deps = deps_for(aws, FakeReceiver(ok()))
    restarted = deps.ledger.restart(record)  # what POST .../redeliver does, with a message of the new sequence
    again = DeliveryMessage(job_id="job_1", delivery_id="msg_1_4", sequence=restarted.sequence)
    deps.queue.send(again)
    assert run_once(deps, again) is True
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None and record.status is DeliveryStatus.DELIVERED and len(record.attempts) == 2


def test_retry_after_is_honoured_up_to_a_bound(aws: Resources) -> None:
    assert webhooks.retry_delay(1, (5.0,), 120) == 120
    assert webhooks.retry_delay(1, (5.0,), 10**6) == webhooks.MAX_RETRY_AFTER_SECONDS
    assert 4.5 <= (webhooks.retry_delay(1, (5.0,), 1) or 0) <= 5.5  # never sooner than the schedule
    assert webhooks.retry_delay(2, (5.0,)) is None
    assert webhooks.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0
    assert webhooks.parse_retry_after("soon") is None


def test_a_wait_longer_than_sqs_allows_is_taken_in_hops_without_an_attempt(aws: Resources) -> None:
    receiver = FakeReceiver()
    deps = deps_for(aws, receiver)
    message = pending(deps)
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None
    deps.ledger.record_attempt(
        record,
        webhooks.DeliveryAttempt(at="x", status_code=500, latency_ms=1),
        DeliveryStatus.PENDING,
        isoformat(utcnow() + timedelta(hours=20)),
    )
    assert run_once(deps, message) is False
    assert receiver.calls == []  # not due: hidden again (for 12 h, SQS's maximum), no attempt made
    assert receive(deps.settings.deliveries_queue_url) == []


def test_an_old_message_after_a_redelivery_changes_nothing(aws: Resources) -> None:
    receiver = FakeReceiver()
    deps = deps_for(aws, receiver)
    stale = pending(deps)
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None
    deps.ledger.restart(record)
    assert run_once(deps, stale) is True and receiver.calls == []


def test_every_attempt_checks_the_url_again(aws: Resources) -> None:
    receiver = FakeReceiver()
    deps = deps_for(aws, receiver, delays="60", resolve=lambda host, port: ["10.0.0.8"])  # rebound since submit
    assert run_once(deps, pending(deps)) is False
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None and receiver.calls == []
    assert record.attempts[0].error and record.attempts[0].error.startswith("refused: ")


def test_attempts_are_signed_with_the_tenants_secret(aws: Resources) -> None:
    from standardwebhooks import Webhook

    receiver = FakeReceiver(ok())
    deps = deps_for(aws, receiver)
    assert run_once(deps, pending(deps)) is True
    [(target, headers, body)] = receiver.calls
    assert (target.address, target.host) == ("93.184.215.14", "hooks.example")
    Webhook(deps.secrets.get_or_create("t1").secret).verify(body, headers)


# --- the HTTP client ---------------------------------------------------------------------------------------------


traced: list[str] = []
"""The X-Amzn-Trace-Id headers the server received."""


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    traced.clear()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append({"path": self.path, "host": self.headers["host"], "id": self.headers["webhook-id"]})
            traced.extend([self.headers["X-Amzn-Trace-Id"]] if "X-Amzn-Trace-Id" in self.headers else [])
            if self.path == "/slow":
                time.sleep(1.5)
            if self.path.startswith("/trickle"):
                self._trickle(headers_first=self.path == "/trickle-body")
                return
            status, body = {"/redirect": (302, b""), "/big": (200, b"x" * 1_000_000)}.get(self.path, (204, b""))
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client stops reading after a few KB: as it should
                self.wfile.write(body)

        def _trickle(self, *, headers_first: bool) -> None:
            """A byte every 0.1 s, for up to a minute: every socket read is quick, the whole answer is not."""
            head = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n"
            if headers_first:
                self.wfile.write(head)
                self.wfile.flush()
                head = b""
            with contextlib.suppress(OSError):  # until the client hangs up
                for byte in (head + b"x" * 600)[:600]:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.1)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], seen
    httpd.shutdown()


def post(port: int, path: str, timeout: float = 5) -> Response:
    # The name is kept for Host while the connection goes to the address the guard checked.
    target = Target(scheme="http", host="hooks.example", port=port, path=path, address="127.0.0.1")
    headers = webhooks.signed_headers([webhooks.new_secret()], "msg_x", int(time.time()), "{}")
    return webhooks.post(target, headers, b"{}", timeout)


def test_post_dials_the_checked_address_and_sends_the_name_as_host(server: tuple[int, list[dict[str, str]]]) -> None:
    port, seen = server
    response = post(port, "/in")
    assert response.delivered and response.status_code == 204 and response.error is None
    assert seen[-1] == {"path": "/in", "host": f"hooks.example:{port}", "id": "msg_x"}


def test_redirects_are_not_followed(server: tuple[int, list[dict[str, str]]]) -> None:
    port, seen = server
    response = post(port, "/redirect")
    assert not response.delivered and response.status_code == 302 and "302" in (response.error or "")
    assert all(request["path"] != "/elsewhere" for request in seen)


def test_only_a_few_kb_of_the_answer_are_read(server: tuple[int, list[dict[str, str]]]) -> None:
    port, _ = server
    assert post(port, "/big").delivered


def test_a_slow_receiver_times_out(server: tuple[int, list[dict[str, str]]]) -> None:
    port, _ = server
    response = post(port, "/slow", timeout=0.3)
    assert response.status_code is None and (response.error or "").startswith("timeout")


def test_a_webhook_sent_by_a_traced_lambda_carries_no_trace_header(server: tuple[int, list[dict[str, str]]]) -> None:
    """In Lambda, with active tracing: a customer's receiver must not see our X-Ray trace."""
    port, seen = server
    lambda_env = {
        **{name: value for name, value in os.environ.items() if name != "POWERTOOLS_TRACE_DISABLED"},
        "LAMBDA_TASK_ROOT": str(ROOT),  # what makes Powertools and the X-Ray SDK trace
        "AWS_LAMBDA_FUNCTION_NAME": "deliver",
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:9",  # UDP into the void
    }
    script = (
        "from aws_xray_sdk.core import patcher\n"
        "from videojobs.observability import get_tracer\n"
        "from tests.integration.test_notify_delivery import post\n"
        "assert not get_tracer().disabled\n"
        # Any other patched HTTP client (httpx, requests, http.client) would send the header to receivers.
        "assert patcher._PATCHED_MODULES == {'botocore'}, patcher._PATCHED_MODULES\n"
        f"print(post({port}, '/traced').status_code)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=lambda_env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "204", done.stderr
    assert seen[-1]["path"] == "/traced"
    assert traced == []


# Slack over the deadline for a busy machine; the trickle would go on for a minute.
DEADLINE_SLACK_MS = 3000


@pytest.mark.parametrize("path", ["/trickle-headers", "/trickle-body"])
def test_a_trickling_receiver_is_cut_off_at_the_attempt_deadline(
    server: tuple[int, list[dict[str, str]]], path: str
) -> None:
    port, _ = server
    response = post(port, path, timeout=1)
    assert (response.status_code, response.error) == (None, "timeout")
    assert 1000 <= response.latency_ms < 1000 + DEADLINE_SLACK_MS


def test_a_timed_out_attempt_is_recorded_and_retried_on_schedule(
    aws: Resources, server: tuple[int, list[dict[str, str]]]
) -> None:
    port, _ = server
    settings = DeliverSettings.from_env(
        {
            **aws.environment(),
            "WEBHOOK_RETRY_DELAYS": "300",
            "WEBHOOK_TIMEOUT_SECONDS": "1",
            "WEBHOOK_ALLOW_LOOPBACK_HTTP": "true",
        }
    )
    dynamodb = client("dynamodb")
    deps = webhook_delivery.DeliverDeps(
        settings=settings,
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        secrets=SecretStore(dynamodb, settings.webhook_secrets_table),
        queue=DeliveryQueue(client("sqs"), settings.deliveries_queue_url, settings.deliveries_dlq_url),
        endpoints=EndpointStore(dynamodb, settings.webhook_endpoints_table),
        endpoint_ledger=DeliveryLedger(dynamodb, settings.endpoint_deliveries_table, by_endpoint=True),
        bus=EventBus(events_client(), settings.event_bus_name),
    )
    message = pending(deps, url=f"http://127.0.0.1:{port}/trickle-body")
    assert run_once(deps, message) is False  # deferred to the next attempt of the schedule
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None and record.status is DeliveryStatus.PENDING and record.next_attempt_at
    [attempt] = record.attempts
    assert (attempt.status_code, attempt.error) == (None, "timeout")
    assert attempt.latency_ms < 1000 + DEADLINE_SLACK_MS
    wait = (datetime.fromisoformat(record.next_attempt_at) - datetime.fromisoformat(attempt.at)).total_seconds()
    assert 300 * (1 - webhooks.JITTER) - 1 <= wait <= 300 * (1 + webhooks.JITTER) + 1
    assert receive(deps.settings.deliveries_queue_url) == []  # hidden until then


def test_a_ledger_item_lists_the_latest_attempts_and_counts_the_older_ones(aws: Resources) -> None:
    deps = deps_for(aws, FakeReceiver())
    pending(deps)
    total = webhooks.MAX_ATTEMPTS_KEPT + 5
    for index in range(total):
        record = deps.ledger.get("job_1", "msg_1_4")
        assert record is not None
        attempt = webhooks.DeliveryAttempt(at=f"2026-01-01T00:00:{index:02d}Z", status_code=500, latency_ms=index)
        assert deps.ledger.record_attempt(record, attempt, DeliveryStatus.PENDING, None)
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None and record.attempts_total == total
    assert [attempt.latency_ms for attempt in record.attempts] == list(range(5, total))
    assert record.earlier_attempts == webhooks.AttemptSummary(
        count=5, first_at="2026-01-01T00:00:00Z", last_at="2026-01-01T00:00:04Z"
    )
    # An attempt recorded from a stale read (a duplicate message racing) is refused, not lost over another.
    stale = record
    fresh_attempt = webhooks.DeliveryAttempt(at="2026-01-01T00:01:00Z", status_code=500, latency_ms=1)
    assert deps.ledger.record_attempt(stale, fresh_attempt, DeliveryStatus.PENDING, None)
    assert not deps.ledger.record_attempt(stale, fresh_attempt, DeliveryStatus.PENDING, None)


def test_redelivering_again_within_the_interval_is_refused_with_retry_after(aws: Resources) -> None:
    from videojobs.notification_store import RedeliveredTooSoon

    deps = deps_for(aws, FakeReceiver())
    pending(deps)
    record = deps.ledger.get("job_1", "msg_1_4")
    assert record is not None
    interval = timedelta(seconds=60)
    restarted = deps.ledger.restart(record, interval)
    assert restarted.sequence == 1
    with pytest.raises(RedeliveredTooSoon) as refused:
        deps.ledger.restart(restarted, interval)
    assert 1 <= refused.value.retry_after_seconds <= 60
    current = deps.ledger.get("job_1", "msg_1_4")
    assert current is not None and current.sequence == 1  # nothing restarted
    assert deps.ledger.restart(current, timedelta(0)).sequence == 2  # once the interval is over
