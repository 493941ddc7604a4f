"""The ``notifications`` function's use cases (HTTP): the tenant's webhook secret, a job's delivery ledger and
redelivery, and tickets for a job's WebSocket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel

from videojobs import webhooks
from videojobs.errors import ApiError, not_found
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode, Job, isoformat, utcnow
from videojobs.notification_store import (
    DeliveryLedger,
    DeliveryRecord,
    RedeliveredTooSoon,
    SecretStore,
    TicketStore,
)
from videojobs.queues import DeliveryQueue
from videojobs.settings import NotificationsApiSettings
from videojobs.webhooks import DeliveryMessage


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
    still_valid = expires if expires is not None and expires > utcnow() else None
    return webhooks.WebhookSecret(
        secret=record.secret, previous_expires_at=isoformat(still_valid) if still_valid else None
    )


def list_deliveries(job_id: str, tenant_id: str, deps: NotificationsApiDeps) -> webhooks.DeliveryList:
    _own_job(job_id, tenant_id, deps)
    return webhooks.DeliveryList(deliveries=[_view(record) for record in deps.ledger.for_job(job_id)])


def redeliver(job_id: str, delivery_id: str, tenant_id: str, deps: NotificationsApiDeps) -> webhooks.Delivery:
    """Start the delivery over: same ``webhook-id``, same body, a fresh schedule of attempts."""
    _own_job(job_id, tenant_id, deps)
    record = deps.ledger.get(job_id, delivery_id)
    if record is None:
        raise not_found("delivery")
    try:
        restarted = deps.ledger.restart(record, timedelta(seconds=webhooks.REDELIVER_INTERVAL_SECONDS))
    except RedeliveredTooSoon as error:
        raise ApiError(
            ErrorCode.RATE_LIMITED,
            f"a delivery can be redelivered once every {webhooks.REDELIVER_INTERVAL_SECONDS} s",
            headers={"Retry-After": str(error.retry_after_seconds)},
        ) from error
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
        earlier_attempts=record.earlier_attempts,
    )
