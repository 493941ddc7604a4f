"""Notifications: one ordered stream of job events, fanned out to webhooks, WebSockets and Server-Sent Events.

- ``handle_change`` (notify, on the jobs table's stream) turns a change into an event and fans it out: into the
  event log (what SSE serves and WebSocket subscribers catch up from), onto the delivery queue for the job's
  webhook, and to the job's open WebSockets. It never calls a customer's endpoint: a slow one must not hold up
  a stream shard.
- ``deliver`` (the deliver function, on the delivery queue) makes one signed attempt and schedules the next.
- The rest serve the HTTP and WebSocket APIs: secrets, the delivery ledger, tickets, subscriptions, SSE.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from pydantic import BaseModel

from videojobs import webhooks
from videojobs.errors import ApiError, not_found
from videojobs.events import event_for, is_terminal, snapshot, to_json
from videojobs.models import ErrorCode, Job, JobEvent, default_webhook_events, isoformat, utcnow
from videojobs.notification_store import (
    ConnectionStore,
    DeliveryLedger,
    DeliveryRecord,
    EventLog,
    SecretStore,
    TicketStore,
)
from videojobs.observability import logger, metrics
from videojobs.queue import DeliveryQueue
from videojobs.settings import DeliverSettings, NotificationsApiSettings
from videojobs.ssrf import Resolver, UnsafeUrl, check_url, system_resolver
from videojobs.store import JobStore
from videojobs.webhooks import DeliveryAttempt, DeliveryMessage, DeliveryStatus

# --- fan-out (notify) ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotifyDeps:
    events: EventLog
    ledger: DeliveryLedger
    deliveries: DeliveryQueue
    connections: ConnectionStore
    sockets: Any
    """An ``apigatewaymanagementapi`` client of the WebSocket API's stage."""


def handle_change(old_image: dict[str, Any] | None, new_image: dict[str, Any], deps: NotifyDeps) -> JobEvent | None:
    """Fan out the event of one change of a job (images as plain JSON types); None when there is none.
    Idempotent: a replayed record rewrites nothing, re-queues at most a delivery the receiver can dedupe by
    its ``webhook-id``, and re-pushes a frame a WebSocket client drops by its version."""
    event = event_for(old_image, new_image)
    if event is None:
        return None
    job = Job.model_validate(new_image)
    # The log first, the sockets last: a subscriber that connects meanwhile reads the log after registering,
    # so it finds the event in one place or the other.
    deps.events.append(job.id, event)
    if job.webhook_url and event.type.value in (job.webhook_events or default_webhook_events()):
        _queue_delivery(job, event, deps)
    push(job.id, event, deps)
    return event


def _queue_delivery(job: Job, event: JobEvent, deps: NotifyDeps) -> None:
    assert job.webhook_url is not None
    record = DeliveryRecord(
        job_id=job.id,
        delivery_id=webhooks.delivery_id(job.id, event.version),
        tenant_id=job.tenant_id,
        event_type=event.type.value,
        version=event.version,
        url=job.webhook_url,
        body=to_json(event),
        status=DeliveryStatus.PENDING,
        created_at=isoformat(utcnow()),
        attempts=[],
    )
    if not deps.ledger.create(record):
        existing = deps.ledger.get(job.id, record.delivery_id)
        # Queued before, unless this record failed between the ledger and the queue last time: send it then.
        if existing is None or existing.queued:
            return
        record = existing
    deps.deliveries.send(DeliveryMessage(job_id=job.id, delivery_id=record.delivery_id, sequence=record.sequence))
    deps.ledger.mark_queued(record)


def push(job_id: str, event: JobEvent, deps: NotifyDeps) -> int:
    """Send the event to every WebSocket subscribed to the job; after a terminal event, close them politely.
    Connections that are gone are forgotten. Returns how many sockets got the event."""
    data = to_json(event).encode()
    sent = 0
    for connection_id in deps.connections.for_job(job_id):
        try:
            deps.sockets.post_to_connection(ConnectionId=connection_id, Data=data)
            sent += 1
            if is_terminal(event):
                deps.sockets.delete_connection(ConnectionId=connection_id)
                deps.connections.remove(job_id, connection_id)
        except deps.sockets.exceptions.GoneException:
            deps.connections.remove(job_id, connection_id)
        except ClientError:
            # One socket's trouble must not fail the stream record (and re-send every other channel).
            logger.warning("push failed", extra={"job_id": job_id, "connection_id": connection_id}, exc_info=True)
    return sent


# --- delivery (deliver) -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliverDeps:
    settings: DeliverSettings
    ledger: DeliveryLedger
    secrets: SecretStore
    queue: DeliveryQueue
    resolve: Resolver = system_resolver
    send: Callable[..., webhooks.Response] = webhooks.post
    clock: Callable[[], datetime] = field(default=utcnow)


def deliver(message: DeliveryMessage, receipt_handle: str, deps: DeliverDeps) -> bool:
    """Make the delivery's next attempt. True: the message is done with (delete it); False: it was deferred
    to the next attempt with ``ChangeMessageVisibility`` and must stay in the queue.

    Waits longer than SQS's 12 h visibility limit are taken in hops: a message that comes back before its
    delivery's ``next_attempt_at`` is hidden again for the rest of the wait, without an attempt."""
    record = deps.ledger.get(message.job_id, message.delivery_id)
    if record is None or record.sequence != message.sequence or record.status is not DeliveryStatus.PENDING:
        return True  # delivered, given up, or superseded by a redelivery: nothing left for this message
    now = deps.clock()
    if record.next_attempt_at:
        wait = (datetime.fromisoformat(record.next_attempt_at) - now).total_seconds()
        if wait >= 1:
            deps.queue.defer(receipt_handle, wait)
            return False

    response = _attempt(record, now, deps)
    attempt = DeliveryAttempt(
        at=isoformat(now), status_code=response.status_code, latency_ms=response.latency_ms, error=response.error
    )
    delay = None
    if response.delivered:
        status = DeliveryStatus.DELIVERED
    elif response.gone:
        status = DeliveryStatus.FAILED
    else:
        delay = webhooks.retry_delay(
            record.sequence_attempts + 1, deps.settings.retry_delays, response.retry_after_seconds
        )
        status = DeliveryStatus.FAILED if delay is None else DeliveryStatus.PENDING
    next_attempt_at = isoformat(now + timedelta(seconds=delay)) if delay is not None else None
    outcome = webhooks.SUCCEEDED_METRIC if response.delivered else webhooks.FAILED_METRIC
    metrics.add_metric(name=outcome, unit=MetricUnit.Count, value=1)
    logger.info(
        "webhook attempt",
        extra={
            "delivery_id": record.delivery_id,
            "status_code": response.status_code,
            "error": response.error,
            "outcome": status.value,
            "retry_in": delay,
        },
    )
    if not deps.ledger.record_attempt(record, attempt, status, next_attempt_at):
        return True  # a redelivery started a new sequence meanwhile; its own message carries on
    if delay is not None:
        deps.queue.defer(receipt_handle, delay)
        return False
    if status is DeliveryStatus.FAILED and not response.gone:
        deps.queue.dead_letter(message)  # the schedule is spent: park it where operators and alarms see it
    return True


def _attempt(record: DeliveryRecord, now: datetime, deps: DeliverDeps) -> webhooks.Response:
    try:
        # Checked again at every attempt, and the connection goes to the address checked now.
        target = check_url(
            record.url, allow_loopback_http=deps.settings.webhook_allow_loopback_http, resolve=deps.resolve
        )
    except UnsafeUrl as refused:
        return webhooks.Response(None, 0, f"refused: {refused}")
    signing = deps.secrets.get_or_create(record.tenant_id).signing_secrets(now)
    headers = webhooks.signed_headers(signing, record.delivery_id, int(now.timestamp()), record.body)
    return deps.send(target, headers, record.body.encode(), deps.settings.timeout_seconds)


# --- the notifications API (secrets, ledger, tickets) --------------------------------------------------------


class WebSocketTicket(BaseModel):
    url: str
    """Where to connect, the ticket included (``new WebSocket(url)``)."""
    ticket: str
    expires_at: str


@dataclass(frozen=True)
class NotificationsApiDeps:
    settings: NotificationsApiSettings
    jobs: JobStore
    secrets: SecretStore
    ledger: DeliveryLedger
    tickets: TicketStore
    deliveries: DeliveryQueue


def webhook_secret(tenant_id: str, deps: NotificationsApiDeps, *, rotate: bool = False) -> webhooks.WebhookSecret:
    record = deps.secrets.rotate(tenant_id) if rotate else deps.secrets.get_or_create(tenant_id)
    expires = record.previous_expires_at
    live = expires is not None and expires > utcnow()
    return webhooks.WebhookSecret(secret=record.secret, previous_expires_at=isoformat(expires) if live else None)


def list_deliveries(job_id: str, tenant_id: str, deps: NotificationsApiDeps) -> webhooks.DeliveryList:
    _own_job(job_id, tenant_id, deps)
    return webhooks.DeliveryList(deliveries=[_view(record) for record in deps.ledger.for_job(job_id)])


def redeliver(job_id: str, delivery_id: str, tenant_id: str, deps: NotificationsApiDeps) -> webhooks.Delivery:
    """Start the delivery over: same ``webhook-id``, same body, a fresh schedule of attempts."""
    _own_job(job_id, tenant_id, deps)
    record = deps.ledger.get(job_id, delivery_id)
    if record is None:
        raise not_found("delivery")
    restarted = deps.ledger.restart(record)
    deps.deliveries.send(DeliveryMessage(job_id=job_id, delivery_id=delivery_id, sequence=restarted.sequence))
    return _view(restarted)


def websocket_ticket(job_id: str, tenant_id: str, deps: NotificationsApiDeps) -> WebSocketTicket:
    _own_job(job_id, tenant_id, deps)
    issued = deps.tickets.issue(job_id, tenant_id, timedelta(seconds=deps.settings.ws_ticket_ttl_seconds))
    separator = "&" if "?" in deps.settings.websocket_url else "?"
    return WebSocketTicket(
        url=f"{deps.settings.websocket_url}{separator}ticket={issued.ticket}",
        ticket=issued.ticket,
        expires_at=isoformat(issued.expires_at),
    )


def _own_job(job_id: str, tenant_id: str, deps: NotificationsApiDeps) -> Job:
    job = deps.jobs.get_for_tenant(tenant_id, job_id)
    if job is None:
        raise not_found()
    return job


def _view(record: DeliveryRecord) -> webhooks.Delivery:
    return webhooks.Delivery(
        id=record.delivery_id,
        event_type=record.event_type,
        version=record.version,
        url=record.url,
        status=record.status,
        created_at=record.created_at,
        next_attempt_at=record.next_attempt_at,
        attempts=record.attempts,
    )


# --- WebSocket routes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebSocketDeps:
    tickets: TicketStore
    connections: ConnectionStore
    events: EventLog


SUBSCRIBE_REPLY_LIMIT = 100
"""Events in one reply to ``subscribe``: a WebSocket message is at most 128 KB."""


def connect(ticket: str | None, connection_id: str, deps: WebSocketDeps) -> bool:
    """``$connect``: a valid ticket (used up now) subscribes the connection to the ticket's job."""
    redeemed = deps.tickets.redeem(ticket) if ticket else None
    if redeemed is None:
        return False
    job_id, tenant_id = redeemed
    deps.connections.add(job_id, connection_id, tenant_id)
    return True


def disconnect(connection_id: str, deps: WebSocketDeps) -> None:
    job_id = deps.connections.job_of(connection_id)
    if job_id is not None:
        deps.connections.remove(job_id, connection_id)


def subscribe(connection_id: str, job_id: str, since_version: int, deps: WebSocketDeps) -> dict[str, Any]:
    """The events the connection missed: those after ``since_version`` (the newest ones if there are many).
    From then on, notify pushes each new event."""
    if connection_id not in deps.connections.for_job(job_id):
        return {"type": "error", "code": ErrorCode.NOT_FOUND.value, "message": "not subscribed to this job"}
    events = deps.events.after(job_id, since_version)
    return {
        "type": "subscribed",
        "job_id": job_id,
        "events": [event.model_dump(mode="json") for event in events[-SUBSCRIBE_REPLY_LIMIT:]],
    }


# --- Server-Sent Events ---------------------------------------------------------------------------------------


EVENT_LOG_GRACE = timedelta(seconds=60)
"""Past this, a finished job's missing events are taken as expired from the log rather than still on their way."""


@dataclass(frozen=True)
class EventsDeps:
    jobs: JobStore
    events: EventLog
    poll_interval_seconds: float = 0.2
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def wait_for_events(
    job_id: str, tenant_id: str, last_version: int, wait_seconds: float, deps: EventsDeps
) -> list[JobEvent] | None:
    """The job's events after ``last_version``, waiting up to ``wait_seconds`` for the first (a long poll).
    An empty list: nothing happened meanwhile (ask again). None: the client has seen the terminal event,
    there will be no more. Raises 404 for another tenant's job."""
    job = deps.jobs.get_for_tenant(tenant_id, job_id)
    if job is None:
        raise not_found()
    deadline = deps.clock() + wait_seconds
    while True:
        events = deps.events.after(job_id, last_version)
        if events:
            end = next((index for index, event in enumerate(events) if is_terminal(event)), len(events) - 1)
            return events[: end + 1]
        if job.status.terminal and job.version <= last_version:
            return None  # the client has seen the end
        if job.status.terminal and utcnow() - job.updated_at > EVENT_LOG_GRACE:
            # Finished long ago and its events are not in the log (past their retention): the job itself
            # makes the terminal event. (Sooner, notify may just not have logged them yet: wait for it.)
            return [snapshot(job)]
        if deps.clock() >= deadline:
            return []
        deps.sleep(deps.poll_interval_seconds)


def last_event_id(value: str | None) -> int:
    """``Last-Event-ID`` as a version; anything else counts as "from the start"."""
    try:
        return max(0, int((value or "0").strip()))
    except ValueError:
        return 0


def unauthorized() -> ApiError:
    return ApiError(ErrorCode.UNAUTHORIZED, "missing or unknown API key")
