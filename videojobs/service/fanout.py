"""The ``notify`` function's use case: fan each change of a job out to every channel.

``handle_change`` (on the jobs table's stream) turns a change into an event and fans it out: into the event log
(what SSE serves and WebSocket subscribers catch up from), onto the delivery queue for the job's webhook and for
each of the tenant's webhook endpoints that wants it, to the job's open WebSockets, and last onto the event bus.
It never calls a customer's endpoint: a slow one must not hold up a stream shard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

from videojobs import webhooks
from videojobs.endpoints import wants
from videojobs.event_bus import EventBus
from videojobs.job_events import event_for, is_terminal, to_json
from videojobs.models import Job, JobEvent, JobStatus, default_webhook_events, isoformat, utcnow
from videojobs.notification_store import (
    ConnectionStore,
    DeliveryLedger,
    DeliveryRecord,
    EndpointRecord,
    EndpointStore,
    EventLog,
)
from videojobs.observability import logger
from videojobs.queues import DeliveryQueue
from videojobs.tenant_counters import OpenStreams, PendingJobs, StreamLease
from videojobs.webhooks import DeliveryMessage, DeliveryStatus


@dataclass(frozen=True)
class NotifyDeps:
    events: EventLog
    ledger: DeliveryLedger
    deliveries: DeliveryQueue
    connections: ConnectionStore
    sockets: ApiGatewayManagementApiClient
    """An ``apigatewaymanagementapi`` client of the WebSocket API's stage."""
    endpoints: EndpointStore
    endpoint_ledger: DeliveryLedger
    bus: EventBus
    pending_jobs: PendingJobs
    open_streams: OpenStreams


@dataclass(frozen=True)
class EndpointFanOut:
    """What queuing an event for a tenant's webhook endpoints needs (the notify and deliver functions both do)."""

    endpoints: EndpointStore
    ledger: DeliveryLedger
    """The endpoints' ledger (``by_endpoint``)."""
    deliveries: DeliveryQueue


def handle_change(old_image: dict[str, Any] | None, new_image: dict[str, Any], deps: NotifyDeps) -> JobEvent | None:
    """Fan out the event of one change of a job (images as plain JSON types); None when there is none.
    Idempotent: a replayed record rewrites nothing, re-queues at most a delivery the receiver can dedupe by
    its ``webhook-id``, and re-pushes a frame a WebSocket client drops by its version."""
    job = Job.model_validate(new_image)
    was_terminal = JobStatus((old_image or {}).get("status", JobStatus.QUEUED)).terminal
    if job.status.terminal and not was_terminal:
        # Every terminal transition passes here: the one place the tenant's pending count goes down.
        deps.pending_jobs.release(job.tenant_id, job.id)
    event = event_for(old_image, new_image)
    if event is None:
        return None
    # The log first, the sockets last: a subscriber that connects meanwhile reads the log after registering,
    # so it finds the event in one place or the other.
    appended = deps.events.append(job.id, event, job.tenant_id)
    body = to_json(event)
    if job.webhook_url and event.type.value in (job.webhook_events or default_webhook_events()):
        _queue_delivery(job, event, deps)
    to_endpoints = EndpointFanOut(deps.endpoints, deps.endpoint_ledger, deps.deliveries)
    queue_to_endpoints(job.tenant_id, event.type.value, body, job.id, event.version, to_endpoints)
    push(job, event, deps)
    # Last, so that a failed put (retried with the stream record) never holds up webhooks or sockets; the log
    # remembers a put that succeeded, so a retry of the record does not put it twice.
    if appended or not deps.events.published(job.id, event.version):
        deps.bus.put(event.type.value, body, job.tenant_id)
        deps.events.mark_published(job.id, event.version)
    return event


def queue_to_endpoints(
    tenant_id: str,
    event_type: str,
    body: str,
    job_id: str,
    version: int,
    deps: EndpointFanOut,
    *,
    delivery_id: str | None = None,
    skip: str | None = None,
) -> int:
    """Queue the event for every enabled endpoint of the tenant whose filter wants it (but ``skip``), each in
    its own ledger, all with the event's ``webhook-id``. Idempotent, as the job webhook's fan-out is. Returns
    how many endpoints it was queued for."""
    message_id = delivery_id or webhooks.delivery_id(job_id, version)
    queued = 0
    for endpoint in deps.endpoints.for_tenant(tenant_id):
        if endpoint.disabled or endpoint.endpoint_id == skip or not wants(endpoint.events, event_type):
            continue
        record = endpoint_delivery(endpoint, message_id, event_type, body, job_id, version)
        if not deps.ledger.create(record):
            existing = deps.ledger.get(endpoint.endpoint_id, message_id)
            if existing is None or existing.queued:
                continue
            record = existing
        send_delivery(record, deps.deliveries)
        deps.ledger.mark_queued(record)
        queued += 1
    return queued


def endpoint_delivery(
    endpoint: EndpointRecord, delivery_id: str, event_type: str, body: str, job_id: str, version: int
) -> DeliveryRecord:
    """A new delivery of one event to one endpoint (``job_id`` "" for an event of no job)."""
    return DeliveryRecord(
        job_id=job_id,
        delivery_id=delivery_id,
        tenant_id=endpoint.tenant_id,
        event_type=event_type,
        version=version,
        url=endpoint.url,
        body=body,
        status=DeliveryStatus.PENDING,
        created_at=isoformat(utcnow()),
        attempts=[],
        endpoint_id=endpoint.endpoint_id,
    )


def send_delivery(record: DeliveryRecord, deliveries: DeliveryQueue) -> None:
    deliveries.send(
        DeliveryMessage(
            job_id=record.job_id,
            delivery_id=record.delivery_id,
            sequence=record.sequence,
            endpoint_id=record.endpoint_id,
            tenant_id=record.tenant_id if record.endpoint_id else None,
        )
    )


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


def push(job: Job, event: JobEvent, deps: NotifyDeps) -> int:
    """Send the event to every WebSocket subscribed to the job; after a terminal event, close them politely.
    Connections that are gone are forgotten, and stop counting against the tenant's open streams (their
    ``$disconnect`` finds no connection record any more). Returns how many sockets got the event."""
    job_id = job.id
    data = to_json(event).encode()
    sent = 0
    for connection_id in deps.connections.for_job(job_id):
        try:
            deps.sockets.post_to_connection(ConnectionId=connection_id, Data=data)
            sent += 1
            if is_terminal(event):
                deps.sockets.delete_connection(ConnectionId=connection_id)
                deps.connections.remove(job_id, connection_id)
                deps.open_streams.release(StreamLease(job.tenant_id, connection_id))
        except deps.sockets.exceptions.GoneException:
            deps.connections.remove(job_id, connection_id)
            deps.open_streams.release(StreamLease(job.tenant_id, connection_id))
        except ClientError:
            # One socket's trouble must not fail the stream record (and re-send every other channel).
            logger.warning("push failed", extra={"job_id": job_id, "connection_id": connection_id}, exc_info=True)
    return sent
