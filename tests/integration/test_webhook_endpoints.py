"""Webhook endpoints on moto: the fan-out to each endpoint by its filter, the event bus (through a rule to a
queue, as an integrator would route it), signing with each endpoint's secret, auto-disable and replay."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from functions.notify import handler as notify_handler
from infra.local.atomic_dynamodb import emulate, transaction_conflicts
from infra.local.lambda_context import LambdaContext
from infra.local.resources import Resources
from tests.integration.test_notify import job_image, stream_record
from videojobs import webhooks
from videojobs.aws import client, events_client
from videojobs.endpoints import MAX_ENDPOINTS_PER_TENANT, CreateEndpointRequest, ReplayRequest
from videojobs.errors import ApiError
from videojobs.event_bus import EventBus, PutEventsFailed
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode, utcnow
from videojobs.notification_store import (
    ConnectionStore,
    DeliveryLedger,
    EndpointStore,
    EventLog,
    SecretStore,
    TicketStore,
)
from videojobs.queues import DeliveryQueue, ReceivedMessage
from videojobs.service import fanout, notifications_api, webhook_delivery
from videojobs.settings import DeliverSettings, NotificationsApiSettings
from videojobs.ssrf import Target
from videojobs.tenant_counters import OpenStreams, PendingJobs
from videojobs.webhooks import DeliveryMessage, DeliveryStatus, Response

HOOK = "https://hooks.example/"
PUBLIC_ADDRESS = ["93.184.215.14"]


@pytest.fixture
def notify(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> fanout.NotifyDeps:
    dynamodb = client("dynamodb")
    deps = fanout.NotifyDeps(
        events=EventLog(dynamodb, aws.tables["job_events"]),
        ledger=DeliveryLedger(dynamodb, aws.tables["webhook_deliveries"]),
        deliveries=DeliveryQueue(client("sqs"), aws.queues["deliveries"].url),
        connections=ConnectionStore(dynamodb, aws.tables["ws_connections"]),
        sockets=boto3.client("apigatewaymanagementapi", endpoint_url="https://ws.example/v1"),
        endpoints=EndpointStore(dynamodb, aws.tables["webhook_endpoints"]),
        endpoint_ledger=DeliveryLedger(dynamodb, aws.tables["endpoint_deliveries"], by_endpoint=True),
        bus=EventBus(events_client(), aws.event_bus),
        pending_jobs=PendingJobs(dynamodb, aws.tables["tenants"]),
        open_streams=OpenStreams(dynamodb, aws.tables["tenants"]),
    )
    monkeypatch.setattr(notify_handler, "get_deps", lambda: deps)
    return deps


@pytest.fixture
def api(aws: Resources) -> notifications_api.NotificationsApiDeps:
    settings = NotificationsApiSettings.from_env({**aws.environment(), "WEBSOCKET_URL": "wss://ws.example/v1"})
    dynamodb = client("dynamodb")
    return notifications_api.NotificationsApiDeps(
        settings=settings,
        jobs=JobStore(dynamodb, settings.jobs_table),
        secrets=SecretStore(dynamodb, settings.webhook_secrets_table),
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        tickets=TicketStore(dynamodb, settings.ws_tickets_table),
        deliveries=DeliveryQueue(client("sqs"), settings.deliveries_queue_url),
        endpoints=EndpointStore(dynamodb, settings.webhook_endpoints_table),
        endpoint_ledger=DeliveryLedger(dynamodb, settings.endpoint_deliveries_table, by_endpoint=True),
        events=EventLog(dynamodb, settings.job_events_table, timedelta(days=settings.event_retention_days)),
        resolve=lambda host, port: PUBLIC_ADDRESS,
    )


def context() -> LambdaContext:
    return LambdaContext(
        function_name="notify",
        memory_limit_in_mb=256,
        timeout_seconds=30,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:notify",
    )


def create(api: notifications_api.NotificationsApiDeps, path: str, events: list[str] | None = None, tenant: str = "t1"):  # type: ignore[no-untyped-def]
    request = CreateEndpointRequest.model_validate({"url": HOOK + path, "events": events})
    return notifications_api.create_endpoint(request, tenant, api)


def drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = client("sqs")
    found = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def a_job_runs(notify: fanout.NotifyDeps) -> None:
    """queued (1) -> processing (2) -> progress (3) -> completed (4), through the notify handler."""
    images = [
        job_image(1),
        job_image(2, "processing"),
        job_image(3, "processing", 50),
        job_image(4, "completed", 100),
    ]
    records = [stream_record(10 + i, new, images[i - 1] if i else None) for i, new in enumerate(images)]
    assert notify_handler.lambda_handler({"Records": records}, context())["batchItemFailures"] == []


def bus_rule_to_queue(aws: Resources, pattern: dict[str, Any]) -> str:
    """The README's kind of rule, with an SQS target: how an integrator would read the bus."""
    sqs, events = client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="bus-target")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="to-queue", EventBusName=aws.event_bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="to-queue", EventBusName=aws.event_bus, Targets=[{"Id": "queue", "Arn": arn}])
    return queue_url


# --- fan-out ----------------------------------------------------------------------------------------------------


def test_each_enabled_endpoint_gets_the_events_its_filter_wants_once(
    aws: Resources, notify: fanout.NotifyDeps, api: notifications_api.NotificationsApiDeps
) -> None:
    everything = create(api, "all")
    finished = create(api, "done", ["job.completed", "job.failed"])
    paused = create(api, "paused")
    create(api, "other-tenant", tenant="t2")
    notifications_api.update_endpoint(paused.id, notifications_api.UpdateEndpointRequest(disabled=True), "t1", api)
    a_job_runs(notify)
    a_job_runs(notify)  # the stream replays the records: nothing is queued twice

    messages = [DeliveryMessage.model_validate(body) for body in drain(aws.queues["deliveries"].url)]
    by_endpoint: dict[str | None, list[str]] = {}
    for message in messages:
        by_endpoint.setdefault(message.endpoint_id, []).append(message.delivery_id)
    assert sorted(by_endpoint[everything.id]) == sorted(webhooks.delivery_id("job_1", v) for v in (1, 2, 3, 4))
    assert by_endpoint[finished.id] == [webhooks.delivery_id("job_1", 4)]
    assert set(by_endpoint) == {everything.id, finished.id}  # not the paused one, not another tenant's
    assert all(message.tenant_id == "t1" for message in messages)


def test_every_job_event_reaches_the_bus_in_order_with_its_tenant(aws: Resources, notify: fanout.NotifyDeps) -> None:
    queue_url = bus_rule_to_queue(aws, {"source": ["videojobs"], "detail": {"tenant_id": ["t1"]}})
    a_job_runs(notify)
    a_job_runs(notify)  # replayed records were put already: not again
    entries = drain(queue_url)
    assert [entry["detail-type"] for entry in entries] == [
        "job.queued",
        "job.processing",
        "job.progress",
        "job.completed",
    ]
    assert [entry["detail"]["data"]["version"] for entry in entries] == [1, 2, 3, 4]
    assert {entry["source"] for entry in entries} == {"videojobs"}
    assert {entry["detail"]["tenant_id"] for entry in entries} == {"t1"}
    logged = [event.model_dump(mode="json") for event in notify.events.after("job_1", 0)]
    assert [{k: v for k, v in entry["detail"].items() if k != "tenant_id"} for entry in entries] == logged


def test_a_failed_put_is_retried_with_the_record_after_the_webhooks_are_queued(
    aws: Resources,
    notify: fanout.NotifyDeps,
    api: notifications_api.NotificationsApiDeps,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = create(api, "all")
    queue_url = bus_rule_to_queue(aws, {"source": ["videojobs"]})

    def throttled(event_type: str, body: str, tenant_id: str) -> None:
        raise PutEventsFailed("ThrottlingException: rate exceeded")

    with monkeypatch.context() as patch:
        patch.setattr(notify.bus, "put", throttled)
        records = [stream_record(10, job_image(1))]
        failures = notify_handler.lambda_handler({"Records": records}, context())["batchItemFailures"]
    assert [failure["itemIdentifier"] for failure in failures] == ["10"]
    # The webhook went out regardless; the retry puts the event and queues nothing twice.
    [queued] = drain(aws.queues["deliveries"].url)
    assert queued["endpoint_id"] == endpoint.id
    assert notify_handler.lambda_handler({"Records": records}, context())["batchItemFailures"] == []
    assert drain(aws.queues["deliveries"].url) == []
    assert [entry["detail-type"] for entry in drain(queue_url)] == ["job.queued"]


# --- the endpoints themselves --------------------------------------------------------------------------------------


def test_a_tenant_has_at_most_twenty_endpoints_and_sees_only_its_own(
    aws: Resources, api: notifications_api.NotificationsApiDeps
) -> None:
    first = create(api, "0")
    assert first.id.startswith("ep_") and first.secret.startswith("whsec_") and first.events == []
    for index in range(1, MAX_ENDPOINTS_PER_TENANT):
        create(api, str(index))
    with pytest.raises(ApiError) as refused:
        create(api, "one-too-many")
    assert refused.value.code is ErrorCode.VALIDATION_ERROR
    notifications_api.delete_endpoint(first.id, "t1", api)
    create(api, "again")  # deleting one makes room
    assert len(notifications_api.list_endpoints("t1", api).endpoints) == MAX_ENDPOINTS_PER_TENANT

    for call in (
        lambda: notifications_api.get_endpoint(first.id, "t1", api),  # deleted
        lambda: notifications_api.get_endpoint(create(api, "x", tenant="t2").id, "t1", api),
    ):
        with pytest.raises(ApiError) as missing:
            call()
        assert missing.value.code is ErrorCode.NOT_FOUND


def test_an_endpoint_url_must_pass_the_ssrf_guard(api: notifications_api.NotificationsApiDeps) -> None:
    for url in ("http://hooks.example/", "https://127.0.0.1/", "https://169.254.169.254/latest"):
        with pytest.raises(ApiError) as refused:
            notifications_api.create_endpoint(CreateEndpointRequest.model_validate({"url": url}), "t1", api)
        assert refused.value.code is ErrorCode.INVALID_WEBHOOK_URL


# --- delivery, health and auto-disable ----------------------------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        self.answer: dict[str, int] = {}

    def __call__(self, target: Target, headers: dict[str, str], body: bytes, timeout: float) -> Response:
        self.calls.append((target.path, headers, body))
        return Response(self.answer.get(target.path, 200), 3)


def deliverer(
    aws: Resources, receiver: Receiver, clock: list[datetime], window: str = "3600"
) -> webhook_delivery.DeliverDeps:
    settings = DeliverSettings.from_env(
        {**aws.environment(), "WEBHOOK_RETRY_DELAYS": "0,0", "ENDPOINT_DISABLE_AFTER_SECONDS": window}
    )
    dynamodb = client("dynamodb")
    return webhook_delivery.DeliverDeps(
        settings=settings,
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        secrets=SecretStore(dynamodb, settings.webhook_secrets_table),
        queue=DeliveryQueue(client("sqs"), settings.deliveries_queue_url, settings.deliveries_dlq_url),
        endpoints=EndpointStore(dynamodb, settings.webhook_endpoints_table),
        endpoint_ledger=DeliveryLedger(dynamodb, settings.endpoint_deliveries_table, by_endpoint=True),
        bus=EventBus(events_client(), settings.event_bus_name),
        resolve=lambda host, port: PUBLIC_ADDRESS,
        send=receiver,
        clock=lambda: clock[0],
    )


def deliver_all(deps: webhook_delivery.DeliverDeps) -> int:
    """Run the deliverer over every message now visible; returns how many it handled."""
    sqs, url = client("sqs"), deps.settings.deliveries_queue_url
    handled = 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            received = ReceivedMessage(sqs, url, message["ReceiptHandle"], 0.0)
            if webhook_delivery.deliver(DeliveryMessage.model_validate_json(message["Body"]), received, deps):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                received.hide_for(0)  # the retry schedule here is all zeros
            handled += 1
    return handled


def test_each_endpoint_verifies_with_its_own_secret_and_both_during_a_rotation(
    aws: Resources, notify: fanout.NotifyDeps, api: notifications_api.NotificationsApiDeps
) -> None:
    one, two = create(api, "one", ["job.completed"]), create(api, "two", ["job.completed"])
    rotated = notifications_api.endpoint_secret(two.id, "t1", api, rotate=True)
    assert rotated.previous_expires_at is not None and rotated.secret != two.secret
    a_job_runs(notify)
    receiver = Receiver()
    deliver_all(deliverer(aws, receiver, [utcnow()]))
    by_path = {path: (headers, body) for path, headers, body in receiver.calls}
    assert set(by_path) == {"/one", "/two"}
    Webhook(one.secret).verify(by_path["/one"][1], by_path["/one"][0])
    with pytest.raises(WebhookVerificationError):
        Webhook(two.secret).verify(by_path["/one"][1], by_path["/one"][0])
    for secret in (two.secret, rotated.secret):  # the old and the new one, for the overlap
        Webhook(secret).verify(by_path["/two"][1], by_path["/two"][0])
    assert by_path["/one"][0]["webhook-id"] == by_path["/two"][0]["webhook-id"] == webhooks.delivery_id("job_1", 4)

    listing = notifications_api.list_endpoint_deliveries(one.id, "t1", api, status=None, limit=10, cursor=None)
    [delivered] = listing.deliveries
    assert (delivered.status, delivered.job_id, delivered.event_type) == (
        DeliveryStatus.DELIVERED,
        "job_1",
        "job.completed",
    )


def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_the_others_hear_of_it(
    aws: Resources, notify: fanout.NotifyDeps, api: notifications_api.NotificationsApiDeps
) -> None:
    failing, watcher = create(api, "failing"), create(api, "watcher", ["endpoint.disabled"])
    queue_url = bus_rule_to_queue(aws, {"source": ["videojobs"], "detail-type": ["endpoint.disabled"]})
    receiver = Receiver()
    receiver.answer["/failing"] = 500
    clock = [utcnow()]
    deps = deliverer(aws, receiver, clock, window="3600")
    a_job_runs(notify)
    deliver_all(deps)  # every attempt fails, but within the window
    assert not notifications_api.get_endpoint(failing.id, "t1", api).disabled
    assert not any(path == "/watcher" for path, _, _ in receiver.calls)

    clock[0] += timedelta(hours=1)
    notifications_api.redeliver_to_endpoint(failing.id, webhooks.delivery_id("job_1", 1), "t1", api)
    deliver_all(deps)
    disabled = notifications_api.get_endpoint(failing.id, "t1", api)
    assert (disabled.disabled, disabled.disabled_reason) == (True, "failing")
    [(_, headers, body)] = [call for call in receiver.calls if call[0] == "/watcher"]
    announced = json.loads(body)
    assert (announced["type"], announced["data"]["id"]) == ("endpoint.disabled", failing.id)
    # Signed at the deliverer's (moved) clock: checked as a receiver would at that time.
    signed_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(watcher.secret).sign(headers["webhook-id"], signed_at, body.decode())
    assert expected in headers["webhook-signature"].split(" ")
    [entry] = drain(queue_url)
    assert entry["detail"]["data"]["id"] == failing.id and entry["detail"]["tenant_id"] == "t1"

    # Disabled: a delivery ends without an attempt; a PATCH re-enables it, its failures forgotten.
    attempts = len(receiver.calls)
    notifications_api.redeliver_to_endpoint(failing.id, webhooks.delivery_id("job_1", 4), "t1", api)
    deliver_all(deps)
    assert len(receiver.calls) == attempts
    stopped = api.endpoint_ledger.get(failing.id, webhooks.delivery_id("job_1", 4))
    assert stopped is not None and stopped.status is DeliveryStatus.FAILED
    assert stopped.attempts[-1].error == "endpoint disabled"
    enabled = notifications_api.update_endpoint(
        failing.id, notifications_api.UpdateEndpointRequest(disabled=False), "t1", api
    )
    assert (enabled.disabled, enabled.disabled_reason) == (False, None)
    record = api.endpoints.get("t1", failing.id)
    assert record is not None and record.failing_since is None


def test_a_success_within_the_window_keeps_the_endpoint_enabled(
    aws: Resources, notify: fanout.NotifyDeps, api: notifications_api.NotificationsApiDeps
) -> None:
    flaky = create(api, "flaky", ["job.completed", "job.queued"])
    receiver = Receiver()
    receiver.answer["/flaky"] = 503
    clock = [utcnow()]
    deps = deliverer(aws, receiver, clock, window="60")
    notify_handler.lambda_handler({"Records": [stream_record(10, job_image(1))]}, context())
    deliver_all(deps)
    receiver.answer["/flaky"] = 200
    clock[0] += timedelta(seconds=30)
    notify_handler.lambda_handler(
        {"Records": [stream_record(11, job_image(4, "completed", 100), job_image(1))]}, context()
    )
    deliver_all(deps)
    receiver.answer["/flaky"] = 503
    clock[0] += timedelta(seconds=45)  # 75 s after the first failure, but only 45 s after the success
    notifications_api.redeliver_to_endpoint(flaky.id, webhooks.delivery_id("job_1", 1), "t1", api)
    deliver_all(deps)
    assert not notifications_api.get_endpoint(flaky.id, "t1", api).disabled


# --- replay ------------------------------------------------------------------------------------------------------


def test_replay_resends_the_window_with_the_original_ids_and_refuses_beyond_the_retention(
    aws: Resources, notify: fanout.NotifyDeps, api: notifications_api.NotificationsApiDeps
) -> None:
    started = utcnow() - timedelta(seconds=1)
    a_job_runs(notify)
    late = create(api, "late", ["job.completed", "job.queued"])  # created after the events
    assert drain(aws.queues["deliveries"].url) == []

    replayed = notifications_api.replay(late.id, ReplayRequest(since=started), "t1", api)
    assert replayed.replayed == 2
    ids = [DeliveryMessage.model_validate(body).delivery_id for body in drain(aws.queues["deliveries"].url)]
    assert sorted(ids) == sorted(webhooks.delivery_id("job_1", v) for v in (1, 4))

    only = ReplayRequest.model_validate({"since": started.isoformat(), "events": ["job.progress"]})
    assert notifications_api.replay(late.id, only, "t1", api).replayed == 1
    assert notifications_api.replay(late.id, ReplayRequest(since=started, until=started), "t1", api).replayed == 0
    # Another tenant's events are not in its window.
    other = create(api, "other", tenant="t2")
    assert notifications_api.replay(other.id, ReplayRequest(since=started), "t2", api).replayed == 0

    with pytest.raises(ApiError) as refused:
        notifications_api.replay(late.id, ReplayRequest(since=utcnow() - timedelta(days=8)), "t1", api)
    assert refused.value.code is ErrorCode.VALIDATION_ERROR
    named = datetime.fromisoformat(refused.value.message.rsplit(" ", 1)[-1])
    assert abs((named - api.events.oldest_available(utcnow())).total_seconds()) < 60


def test_concurrent_creates_stop_at_twenty_despite_transaction_conflicts(
    api: notifications_api.NotificationsApiDeps,
) -> None:
    """Concurrent creates of one tenant all count themselves on its counter item, in transactions that DynamoDB
    cancels as conflicting (so does the local stack's): they are retried; one that keeps conflicting is a
    retryable 503, never a 500; and never more than 20 endpoints."""
    outcomes: list[str] = []

    def attempt(index: int) -> None:
        try:
            create(api, f"race-{index}")
            outcomes.append("created")
        except ApiError as refused:
            outcomes.append(refused.code)

    conflicts_before = transaction_conflicts()
    with emulate(transaction_seconds=0.05):
        threads = [threading.Thread(target=attempt, args=(index,)) for index in range(MAX_ENDPOINTS_PER_TENANT + 4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert transaction_conflicts() > conflicts_before  # the race did happen
    assert set(outcomes) <= {"created", ErrorCode.VALIDATION_ERROR, ErrorCode.SERVICE_UNAVAILABLE}
    created = outcomes.count("created")
    assert 0 < created <= MAX_ENDPOINTS_PER_TENANT
    assert len(notifications_api.list_endpoints("t1", api).endpoints) == created
    if created == MAX_ENDPOINTS_PER_TENANT:
        assert outcomes.count(ErrorCode.SERVICE_UNAVAILABLE) + outcomes.count(ErrorCode.VALIDATION_ERROR) == 4
    # The count stayed exact: the tenant can fill exactly its remaining room.
    for index in range(MAX_ENDPOINTS_PER_TENANT - created):
        create(api, f"after-{index}")
    with pytest.raises(ApiError) as refused:
        create(api, "one-too-many")
    assert refused.value.code is ErrorCode.VALIDATION_ERROR
