"""The fan-out (notify on the jobs stream), the WebSocket routes, SSE and webhook secrets, on moto.

WebSocket pushes go through a real ``apigatewaymanagementapi`` client held by botocore's ``Stubber`` (moto never
answers ``GoneException``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from standardwebhooks import Webhook

from functions.events import handler as events_handler
from functions.notify import handler as notify_handler
from functions.websocket import handler as websocket_handler
from infra.local.lambda_context import LambdaContext
from infra.local.resources import Resources
from videojobs import webhooks
from videojobs.aws import client, events_client
from videojobs.event_bus import EventBus
from videojobs.job_events import event_for, is_terminal
from videojobs.job_store import IdempotencyKey, JobStore, to_item
from videojobs.models import Job, JobStatus, StoredOutput, isoformat, utcnow
from videojobs.notification_store import (
    ConnectionStore,
    DeliveryLedger,
    EndpointStore,
    EventLog,
    SecretStore,
)
from videojobs.queues import DeliveryQueue
from videojobs.service import event_stream, fanout
from videojobs.service.websocket import WebSocketDeps
from videojobs.settings import EventsSettings
from videojobs.tenant_counters import OpenStreams, PendingJobs
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.webhooks import DeliveryMessage


def job_image(version: int, status: str = "queued", progress: int = 0, **extra: Any) -> dict[str, Any]:
    now = isoformat(utcnow())
    job = Job(
        id="job_1",
        tenant_id="t1",
        created_at=now,
        updated_at=now,
        upload_id="upl_1",
        input_key="k",  # type: ignore[arg-type]
        status=JobStatus(status),
        progress=progress,
        version=version,
        **{"outputs": [StoredOutput(spec={"type": "mp4", "height": 144})], **extra},
    )
    return job.model_dump(mode="json")


def stream_record(
    sequence: int, new: dict[str, Any] | None, old: dict[str, Any] | None = None, raw_new: dict[str, Any] | None = None
) -> dict[str, Any]:
    change: dict[str, Any] = {
        "SequenceNumber": str(sequence),
        "Keys": {"id": {"S": "job_1"}},
        "StreamViewType": "NEW_AND_OLD_IMAGES",
        "SizeBytes": 1,
        "ApproximateCreationDateTime": 1,
    }
    if new is not None or raw_new is not None:
        change["NewImage"] = raw_new if raw_new is not None else to_item(new)  # type: ignore[arg-type]
    if old is not None:
        change["OldImage"] = to_item(old)
    return {
        "eventID": str(sequence),
        "eventName": "MODIFY" if old else "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/stream/x",
    }


def context() -> LambdaContext:
    return LambdaContext(
        function_name="notify",
        memory_limit_in_mb=256,
        timeout_seconds=30,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:notify",
    )


@pytest.fixture
def sockets() -> Iterator[Stubber]:
    management = boto3.client(
        "apigatewaymanagementapi",
        region_name="us-east-1",
        endpoint_url="https://abc.execute-api.us-east-1.amazonaws.com/v1",
    )
    with Stubber(management) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def notify(aws: Resources, sockets: Stubber, monkeypatch: pytest.MonkeyPatch) -> fanout.NotifyDeps:
    dynamodb = client("dynamodb")
    deps = fanout.NotifyDeps(
        events=EventLog(dynamodb, aws.tables["job_events"]),
        ledger=DeliveryLedger(dynamodb, aws.tables["webhook_deliveries"]),
        deliveries=DeliveryQueue(client("sqs"), aws.queues["deliveries"].url),
        connections=ConnectionStore(dynamodb, aws.tables["ws_connections"]),
        sockets=sockets.client,
        endpoints=EndpointStore(dynamodb, aws.tables["webhook_endpoints"]),
        endpoint_ledger=DeliveryLedger(dynamodb, aws.tables["endpoint_deliveries"], by_endpoint=True),
        bus=EventBus(events_client(), aws.event_bus),
        pending_jobs=PendingJobs(dynamodb, aws.tables["tenants"]),
        open_streams=OpenStreams(dynamodb, aws.tables["tenants"]),
    )
    monkeypatch.setattr(notify_handler, "get_deps", lambda: deps)
    return deps


def queued_messages(aws: Resources) -> list[DeliveryMessage]:
    received = client("sqs").receive_message(QueueUrl=aws.queues["deliveries"].url, MaxNumberOfMessages=10)
    return [DeliveryMessage.model_validate_json(m["Body"]) for m in received.get("Messages", [])]


# --- which changes are events --------------------------------------------------------------------------------


def test_only_observable_changes_become_events() -> None:
    queued, claimed = job_image(1), job_image(2, "processing")
    assert event_for(None, queued).type == "job.queued"  # type: ignore[union-attr]
    assert event_for(queued, claimed).type == "job.processing"  # type: ignore[union-attr]
    assert event_for(claimed, job_image(3, "processing", 40)).type == "job.progress"  # type: ignore[union-attr]
    assert event_for(claimed, job_image(4, "completed", 100)).type == "job.completed"  # type: ignore[union-attr]
    # A heartbeat or the probe's write (same status and progress), a reclaim, or no new version: nothing.
    assert event_for(claimed, job_image(3, "processing")) is None
    assert event_for(claimed, job_image(2, "processing", 50)) is None
    event = event_for(claimed, job_image(5, "failed"))
    assert event is not None and event.version == 5 and event.data.status == "failed"
    assert event.timestamp == event.data.updated_at  # the time of the change: a replay builds the same event


def test_an_output_uploaded_before_completion_is_one_output_ready_event() -> None:
    two = [StoredOutput(spec={"type": "mp4", "height": 144}), StoredOutput(spec={"type": "mp4", "height": 240})]
    claimed = job_image(2, "processing", 90, outputs=two)
    first = job_image(3, "processing", 90, outputs=[two[0].model_copy(update={"key": "a1/144.mp4"}), two[1]])
    event = event_for(claimed, first)
    assert event is not None and (event.type, event.output_index) == ("job.output.ready", 0)
    assert [output.status for output in event.data.outputs] == ["ready", "pending"]
    both = [StoredOutput.model_validate(output) for output in first["outputs"][:1]]
    both.append(two[1].model_copy(update={"key": "a1/240.mp4"}))
    second = event_for(first, job_image(4, "processing", 95, outputs=both))
    assert second is not None and (second.type, second.output_index) == ("job.output.ready", 1)
    assert not is_terminal(second)
    # The completion is job.completed, whatever it writes of the outputs.
    completed = event_for(job_image(4, "processing", 95, outputs=both), job_image(5, "completed", 100, outputs=both))
    assert completed is not None and (completed.type, completed.output_index) == ("job.completed", None)
    # A failed job's outputs were removed: none shows ready.
    failed = event_for(first, job_image(4, "failed", 90, outputs=both))
    assert failed is not None and [output.status for output in failed.data.outputs] == ["pending", "pending"]


# --- the stream handler ---------------------------------------------------------------------------------------


def test_an_unreadable_record_does_not_hold_up_the_records_behind_it(aws: Resources, notify: fanout.NotifyDeps) -> None:
    good = job_image(1, webhook_url="https://hooks.example/x")
    batch = {
        "Records": [
            stream_record(1, None, raw_new={"id": {"S": "job_1"}, "version": {"Q": "?"}}),  # not a DynamoDB value
            stream_record(2, {"id": "job_1", "status": "exploded"}),  # not a job
            stream_record(3, good),
        ]
    }
    assert notify_handler.lambda_handler(batch, context()) == {"batchItemFailures": []}
    assert [event.type for event in notify.events.after("job_1", 0)] == ["job.queued"]
    assert queued_messages(aws) == []  # job.queued is not among the default webhook events


def test_records_that_would_run_past_the_timeout_are_left_for_the_next_invocation(
    aws: Resources, notify: fanout.NotifyDeps
) -> None:
    # Lambda's timeout fails the whole invocation (and replays every record): with too little time left for
    # another fan-out, notify stops after the first record and reports the rest for a retry instead.
    short = LambdaContext(
        function_name="notify",
        memory_limit_in_mb=256,
        timeout_seconds=notify_handler.FAN_OUT_RESERVE_MILLISECONDS / 1000 / 2,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:notify",
    )
    batch = {
        "Records": [
            stream_record(4, job_image(1)),
            stream_record(5, job_image(2, "processing"), job_image(1)),
            stream_record(6, job_image(3, "processing", 5), job_image(2, "processing")),
        ]
    }
    failures = notify_handler.lambda_handler(batch, short)["batchItemFailures"]
    assert [failure["itemIdentifier"] for failure in failures] == ["5", "6"]
    assert [event.version for event in notify.events.after("job_1", 0)] == [1]


def test_a_failing_write_is_a_batch_item_failure_from_that_record_on(
    aws: Resources, notify: fanout.NotifyDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = notify.events.append

    def throttled_on_version_2(job_id: str, event: Any, tenant_id: str | None = None) -> bool:
        if event.version == 2:
            raise RuntimeError("throttled")
        return append(job_id, event, tenant_id)

    monkeypatch.setattr(notify.events, "append", throttled_on_version_2)
    batch = {
        "Records": [
            stream_record(7, job_image(1)),
            stream_record(8, job_image(2, "processing"), job_image(1)),
            stream_record(9, job_image(3, "processing", 5), job_image(2, "processing")),
        ]
    }
    failures = notify_handler.lambda_handler(batch, context())["batchItemFailures"]
    # Lambda retries from the first failure (8) on, so 9 is reported too: the order of events is kept.
    assert [failure["itemIdentifier"] for failure in failures] == ["8", "9"]


def test_terminal_event_queues_one_webhook_delivery_even_when_replayed(
    aws: Resources, notify: fanout.NotifyDeps
) -> None:
    before = job_image(3, "processing", 60, webhook_url="https://hooks.example/x")
    after = job_image(4, "completed", 100, webhook_url="https://hooks.example/x")
    for _ in range(2):  # Lambda may deliver a stream record twice
        fanout.handle_change(before, after, notify)
    [message] = queued_messages(aws)
    assert message.delivery_id == webhooks.delivery_id("job_1", 4)
    [record] = notify.ledger.for_job("job_1")
    assert (record.event_type, record.status, record.url) == ("job.completed", "pending", "https://hooks.example/x")
    assert len(notify.events.after("job_1", 0)) == 1


def test_webhook_events_choose_what_is_delivered(aws: Resources, notify: fanout.NotifyDeps) -> None:
    hook = {"webhook_url": "https://hooks.example/x", "webhook_events": ["job.progress"]}
    fanout.handle_change(job_image(2, "processing", **hook), job_image(3, "processing", 10, **hook), notify)
    fanout.handle_change(job_image(3, "processing", 10, **hook), job_image(4, "completed", 100, **hook), notify)
    assert [m.delivery_id for m in queued_messages(aws)] == [webhooks.delivery_id("job_1", 3)]


def test_events_are_pushed_to_sockets_gone_ones_forgotten_and_closed_after_the_end(
    aws: Resources, notify: fanout.NotifyDeps, sockets: Stubber
) -> None:
    for connection in ("alive", "gone"):
        notify.connections.add("job_1", connection, "t1")
    progress = (job_image(2, "processing"), job_image(3, "processing", 30))
    sockets.add_response("post_to_connection", {}, {"ConnectionId": "alive", "Data": ANY})
    sockets.add_client_error(
        "post_to_connection",
        service_error_code="GoneException",
        http_status_code=410,
        expected_params={"ConnectionId": "gone", "Data": ANY},
    )
    fanout.handle_change(*progress, notify)
    assert notify.connections.for_job("job_1") == ["alive"]

    sockets.add_response("post_to_connection", {}, {"ConnectionId": "alive", "Data": ANY})
    sockets.add_response("delete_connection", {}, {"ConnectionId": "alive"})
    fanout.handle_change(progress[1], job_image(4, "completed", 100), notify)
    assert notify.connections.for_job("job_1") == []


# --- WebSocket routes ------------------------------------------------------------------------------------------


def ws_event(route: str, connection: str, **extra: Any) -> dict[str, Any]:
    return {"requestContext": {"routeKey": route, "connectionId": connection, "requestId": "r"}, **extra}


def test_websocket_ticket_is_single_use_and_short_lived(websocket: WebSocketDeps) -> None:
    ticket = websocket.tickets.issue("job_1", "t1", timedelta(seconds=60)).ticket
    connect = ws_event("$connect", "c1", queryStringParameters={"ticket": ticket})
    assert websocket_handler.lambda_handler(connect, context())["statusCode"] == 200
    assert websocket.connections.for_job("job_1") == ["c1"]
    assert websocket_handler.lambda_handler(connect, context())["statusCode"] == 401  # used up
    expired = websocket.tickets.issue("job_1", "t1", timedelta(seconds=-1)).ticket
    for params in ({"ticket": expired}, {"ticket": "wst_forged"}, None):
        event = ws_event("$connect", "c2", queryStringParameters=params)
        assert websocket_handler.lambda_handler(event, context())["statusCode"] == 401
    websocket_handler.lambda_handler(ws_event("$disconnect", "c1"), context())
    assert websocket.connections.for_job("job_1") == []


def test_subscribe_answers_the_events_after_a_version(websocket: WebSocketDeps) -> None:
    for old, new in [
        (None, job_image(1)),
        (job_image(1), job_image(2, "processing")),
        (job_image(2, "processing"), job_image(3, "processing", 50)),
    ]:
        websocket.events.append("job_1", event_for(old, new))  # type: ignore[arg-type]
    websocket.connections.add("job_1", "c1", "t1")
    body = '{"action": "subscribe", "job_id": "job_1", "since_version": 1}'
    reply = websocket_handler.lambda_handler(ws_event("subscribe", "c1", body=body), context())
    answer = __import__("json").loads(reply["body"])
    assert answer["type"] == "subscribed"
    assert [event["data"]["version"] for event in answer["events"]] == [2, 3]
    # Another connection cannot read this job's events.
    other = websocket_handler.lambda_handler(ws_event("subscribe", "c9", body=body), context())
    assert '"error"' in other["body"]


def test_a_long_catch_up_comes_in_replies_under_the_websocket_message_limit(
    websocket: WebSocketDeps,
) -> None:
    """API Gateway refuses a WebSocket message over 128 KB: a catch-up of many (large) events is split into
    replies, oldest first, each saying where the next starts, and none is left out."""
    metadata = {"note": "x" * 2000}  # a job's metadata travels in every event
    previous = None
    for version in range(1, 151):
        image = job_image(version, "processing", version % 100, metadata=metadata)
        websocket.events.append("job_1", event_for(previous, image))  # type: ignore[arg-type]
        previous = image
    websocket.connections.add("job_1", "c1", "t1")
    seen: list[int] = []
    since = 0
    for _ in range(20):
        body = json.dumps({"action": "subscribe", "job_id": "job_1", "since_version": since})
        reply = websocket_handler.lambda_handler(ws_event("subscribe", "c1", body=body), context())
        assert len(reply["body"].encode()) <= 128 * 1024
        answer = json.loads(reply["body"])
        seen += [event["data"]["version"] for event in answer["events"]]
        if not answer.get("more"):
            break
        since = answer["next_since_version"]
    assert seen == list(range(1, 151))


# --- Server-Sent Events ----------------------------------------------------------------------------------------


def stream_limits(aws: Resources) -> tuple[TenantLimitStore, OpenStreams]:
    dynamodb = client("dynamodb")
    defaults = TenantLimits.defaults(EventsSettings.from_env())
    return TenantLimitStore(dynamodb, aws.tables["tenants"], defaults), OpenStreams(dynamodb, aws.tables["tenants"])


def test_sse_long_poll_waits_answers_new_events_and_ends_after_the_terminal_one(aws: Resources) -> None:
    dynamodb = client("dynamodb")
    jobs, log = JobStore(dynamodb, aws.tables["jobs"]), EventLog(dynamodb, aws.tables["job_events"])
    jobs.create(Job.model_validate(job_image(1)))
    waits: list[float] = []
    clock = iter(range(1000))
    deps = event_stream.EventsDeps(jobs, log, *stream_limits(aws), sleep=waits.append, clock=lambda: float(next(clock)))

    assert event_stream.wait_for_events("job_1", "t1", 0, 5, deps) == []  # nothing yet: waited, then gave up
    assert waits
    with pytest.raises(Exception, match="job not found"):
        event_stream.wait_for_events("job_1", "another-tenant", 0, 5, deps)

    chain = [
        (None, job_image(1)),
        (job_image(1), job_image(2, "processing")),
        (job_image(2, "processing"), job_image(3, "completed", 100)),
    ]
    for old, new in chain:
        log.append("job_1", event_for(old, new))  # type: ignore[arg-type]
    events = event_stream.wait_for_events("job_1", "t1", 1, 5, deps)
    assert [event.type for event in events or []] == ["job.processing", "job.completed"]
    dynamodb.put_item(
        TableName=aws.tables["jobs"], Item=to_item({**job_image(3, "completed", 100), "created_key": "x"})
    )
    assert event_stream.wait_for_events("job_1", "t1", 3, 5, deps) is None  # seen the end: 204

    # Just finished, but notify has not logged it yet: wait for the log rather than skip what is on its way.
    done = {**job_image(4, "completed", 100), "id": "job_2"}
    jobs.create(Job.model_validate(done))
    assert event_stream.wait_for_events("job_2", "t1", 0, 5, deps) == []
    # Finished long ago, its events expired from the log: the job itself is the terminal event.
    old = isoformat(utcnow() - timedelta(days=30))
    jobs.create(Job.model_validate({**done, "id": "job_3", "created_at": old, "updated_at": old}))
    [terminal] = event_stream.wait_for_events("job_3", "t1", 0, 5, deps) or []
    assert (terminal.type, terminal.version) == ("job.completed", 4)
    assert event_stream.last_event_id(" 7 ") == 7 and event_stream.last_event_id("x") == 0


def test_sse_long_poll_counts_its_wait_from_when_api_gateway_received_the_request(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # API Gateway's 29 s include a cold start's init: a request that spent its wait before the handler started
    # (requestTimeEpoch is that far back) must answer at once, not wait another 25 s and be cut off with a 504.
    dynamodb = client("dynamodb")
    jobs, log = JobStore(dynamodb, aws.tables["jobs"]), EventLog(dynamodb, aws.tables["job_events"])
    jobs.create(Job.model_validate(job_image(1)))
    log.append("job_1", event_for(None, job_image(1)))  # type: ignore[arg-type]
    waits: list[float] = []
    clock = iter(range(1000))
    deps = event_stream.EventsDeps(jobs, log, *stream_limits(aws), sleep=waits.append, clock=lambda: float(next(clock)))
    monkeypatch.setattr(events_handler, "get_deps", lambda: deps)
    wait = events_handler.get_settings().sse_wait_seconds
    received = int((time.time() - wait) * 1000)
    event = {
        "headers": {"Last-Event-ID": "1"},
        "pathParameters": {"id": "job_1"},
        "requestContext": {"authorizer": {"tenant_id": "t1"}, "requestTimeEpoch": received, "requestId": "r"},
    }
    answer = events_handler.lambda_handler(event, context())
    assert answer["statusCode"] == 200 and ": no news" in answer["body"]
    assert waits == []  # no time left: nothing new is answered at once

    assert events_handler.long_poll_seconds({"requestContext": {"requestTimeEpoch": 10_000}}, 25, 14.0) == 21
    assert events_handler.long_poll_seconds({"requestContext": {"requestTimeEpoch": 10_000}}, 25, 40.0) == 0
    assert events_handler.long_poll_seconds({}, 25, 40.0) == 25


def test_sse_stream_sends_events_as_they_come_keeps_alive_and_ends_at_its_deadline_or_the_end(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    dynamodb = client("dynamodb")
    jobs, log = JobStore(dynamodb, aws.tables["jobs"]), EventLog(dynamodb, aws.tables["job_events"])
    jobs.create(Job.model_validate(job_image(1)))
    log.append("job_1", event_for(None, job_image(1)))  # type: ignore[arg-type]
    now = [0.0]
    later = [(job_image(1), job_image(2, "processing")), (job_image(2, "processing"), job_image(3, "completed", 100))]

    held: list[int] = []

    def sleep(seconds: float) -> None:  # time passes; at 5 s and 9 s the job changes
        held.append(deps.open_streams.count("t1"))
        before, now[0] = now[0], now[0] + seconds
        for at, (old, new) in zip((5, 9), later, strict=True):
            if before < at <= now[0]:
                log.append("job_1", event_for(old, new))  # type: ignore[arg-type]

    deps = event_stream.EventsDeps(
        jobs, log, *stream_limits(aws), sleep=sleep, clock=lambda: now[0], poll_interval_seconds=1
    )
    monkeypatch.setattr(events_handler, "get_deps", lambda: deps)
    settings = EventsSettings.from_env().model_copy(update={"sse_stream_seconds": 20, "sse_keepalive_seconds": 2})
    monkeypatch.setattr(events_handler, "get_settings", lambda: settings)
    event = {
        "pathParameters": {"id": "job_1"},
        "requestContext": {"authorizer": {"tenant_id": "t1"}, "requestTimeEpoch": int(time.time() * 1000)},
    }
    response = events_handler.stream_handler(event, context())
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    body = "".join(str(chunk) for chunk in response.body)
    frames = [frame for frame in body.split("\n\n") if frame]
    assert frames[0] == "retry: 250"
    kinds = [frame.split("\n")[1] for frame in frames if frame.startswith("id: ")]
    assert kinds == ["event: job.queued", "event: job.processing", "event: job.completed"]  # all on one response
    # Quiet from 0 to 5 s and from 5 to 9 s: a comment after every 2 s of silence (at 2, 4 and 7 s).
    assert frames.count(": keep-alive") == 3
    # The stream held one of the tenant's open streams while it ran, and gave it back at its end.
    assert set(held) == {1} and deps.open_streams.count("t1") == 0

    # A job that does not end within the response: the body ends cleanly at the deadline, with a comment.
    jobs.create(Job.model_validate({**job_image(1), "id": "job_2"}))
    now[0] = 0.0
    # Received just now (the deadline counts from the request's time, a real clock's).
    fresh = {**event["requestContext"], "requestTimeEpoch": int(time.time() * 1000)}
    quiet_event = {**event, "pathParameters": {"id": "job_2"}, "requestContext": fresh}
    quiet = "".join(str(chunk) for chunk in events_handler.stream_handler(quiet_event, context()).body)
    assert quiet.rstrip().endswith("reconnect with Last-Event-ID") and 19 < now[0] <= 20
    assert quiet.count(": keep-alive") >= 8

    # Seen the end: 204; another tenant's job: 404 (before any byte of a stream).
    dynamodb.put_item(
        TableName=aws.tables["jobs"], Item=to_item({**job_image(3, "completed", 100), "created_key": "x"})
    )
    done = events_handler.stream_handler({**event, "headers": {"Last-Event-ID": "3"}}, context())
    assert done.status_code == 204 and list(done.body) == []
    other = {**event, "requestContext": {**event["requestContext"], "authorizer": {"tenant_id": "t2"}}}
    missing = events_handler.stream_handler(other, context())
    assert missing.status_code == 404 and "not_found" in "".join(str(chunk) for chunk in missing.body)


# --- webhook secrets -------------------------------------------------------------------------------------------


def test_after_rotation_both_secrets_sign_for_a_day(aws: Resources) -> None:
    store = SecretStore(client("dynamodb"), aws.tables["webhook_secrets"])
    first = store.get_or_create("t1")
    assert store.get_or_create("t1") == first and first.secret.startswith("whsec_")
    rotated = store.rotate("t1")
    assert rotated.previous == first.secret and rotated.secret != first.secret
    now = utcnow()
    signing = rotated.signing_secrets(now)
    assert signing == [rotated.secret, first.secret]
    assert rotated.signing_secrets(now + timedelta(hours=25)) == [rotated.secret]

    body = '{"type":"job.completed"}'
    headers = webhooks.signed_headers(signing, "msg_1", int(now.timestamp()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (first.secret, rotated.secret):  # a receiver with either secret accepts it
        Webhook(secret).verify(body, headers)
    assert store.get_or_create("t2").secret != rotated.secret


# --- the local stack's stream -------------------------------------------------------------------------------------


def test_a_cancelled_transaction_leaves_no_stream_record_and_the_stream_goes_on(aws: Resources) -> None:
    """moto restores tables from copies after a cancelled transaction; the local stack keeps their streams
    whole (infra/local/atomic_dynamodb.py), or notify would miss every later change (the idempotent race)."""
    jobs = JobStore(client("dynamodb"), aws.tables["jobs"], aws.tables["idempotency"])
    streams = client("dynamodbstreams")
    arn = aws.stream_arns["jobs"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    key = IdempotencyKey("t1", "same-key", "same-body")

    def job(job_id: str) -> Job:
        return Job.model_validate({**job_image(1), "id": job_id})

    jobs.create(job("job_a"), key)
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    first = streams.get_records(ShardIterator=iterator["ShardIterator"])
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in first["Records"]] == ["job_a"]

    assert jobs.create(job("job_b"), key).id == "job_a"  # the replay's transaction is cancelled
    jobs.create(job("job_c"))
    after = streams.get_records(ShardIterator=first["NextShardIterator"])
    assert [r["dynamodb"]["Keys"]["id"]["S"] for r in after["Records"]] == ["job_c"]
