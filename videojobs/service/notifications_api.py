"""The ``notifications`` function's use cases (HTTP): the tenant's webhook secret, a job's delivery ledger and
redelivery, tickets for a job's WebSocket, and the tenant's webhook endpoints (their secrets, ledgers and
replays)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from videojobs import webhooks
from videojobs.endpoints import (
    MAX_ENDPOINTS_PER_TENANT,
    MAX_REPLAY_EVENTS,
    CreateEndpointRequest,
    ReplayRequest,
    ReplayResult,
    UpdateEndpointRequest,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
    endpoint_view,
    new_endpoint_id,
    wants,
)
from videojobs.errors import ApiError, not_found
from videojobs.job_events import parse_event
from videojobs.job_store import JobStore, WriteContention
from videojobs.models import ErrorCode, Job, isoformat, utcnow
from videojobs.notification_store import (
    DeliveryLedger,
    DeliveryRecord,
    EndpointRecord,
    EndpointStore,
    EventLog,
    RedeliveredTooSoon,
    SecretStore,
    TicketStore,
    TooManyEndpoints,
)
from videojobs.queues import DeliveryQueue
from videojobs.service.fanout import endpoint_delivery, send_delivery
from videojobs.settings import NotificationsApiSettings
from videojobs.ssrf import Resolver, UnsafeUrl, check_url, system_resolver
from videojobs.webhooks import DeliveryMessage, DeliveryStatus


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
    endpoints: EndpointStore
    endpoint_ledger: DeliveryLedger
    events: EventLog
    resolve: Resolver = system_resolver


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
        job_id=record.job_id or None,
        event_type=record.event_type,
        version=record.version,
        url=record.url,
        status=record.status,
        created_at=record.created_at,
        next_attempt_at=record.next_attempt_at,
        attempts=record.attempts,
        earlier_attempts=record.earlier_attempts,
    )


# --- webhook endpoints -----------------------------------------------------------------------------------------


def create_endpoint(
    request: CreateEndpointRequest, tenant_id: str, deps: NotificationsApiDeps
) -> WebhookEndpointWithSecret:
    url = _checked_url(str(request.url), deps)
    try:
        record = deps.endpoints.create(
            tenant_id,
            new_endpoint_id(),
            url,
            [event.value for event in request.events or []],
            request.description,
            MAX_ENDPOINTS_PER_TENANT,
        )
    except TooManyEndpoints as error:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR, f"a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints"
        ) from error
    except WriteContention as error:
        raise _busy() from error
    return WebhookEndpointWithSecret(**endpoint_view(record).model_dump(), secret=record.secret.secret)


def list_endpoints(tenant_id: str, deps: NotificationsApiDeps) -> WebhookEndpointList:
    return WebhookEndpointList(endpoints=[endpoint_view(record) for record in deps.endpoints.for_tenant(tenant_id)])


def get_endpoint(endpoint_id: str, tenant_id: str, deps: NotificationsApiDeps) -> WebhookEndpoint:
    return endpoint_view(_own_endpoint(endpoint_id, tenant_id, deps))


def update_endpoint(
    endpoint_id: str, request: UpdateEndpointRequest, tenant_id: str, deps: NotificationsApiDeps
) -> WebhookEndpoint:
    given = request.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    if given.get("url") is not None:
        changes["url"] = _checked_url(str(request.url), deps)
    if "events" in given:  # null or [] both mean every event
        changes["events"] = [event.value for event in request.events or []]
    if "description" in given:
        changes["description"] = request.description
    if given.get("disabled") is not None:
        changes["disabled"] = request.disabled
    updated = deps.endpoints.update(tenant_id, endpoint_id, changes)
    if updated is None:
        raise not_found("webhook endpoint")
    return endpoint_view(updated)


def delete_endpoint(endpoint_id: str, tenant_id: str, deps: NotificationsApiDeps) -> None:
    try:
        deleted = deps.endpoints.delete(tenant_id, endpoint_id)
    except WriteContention as error:
        raise _busy() from error
    if not deleted:
        raise not_found("webhook endpoint")


def _busy() -> ApiError:
    return ApiError(
        ErrorCode.SERVICE_UNAVAILABLE,
        "too many concurrent changes to this tenant's webhook endpoints: retry",
        headers={"Retry-After": "1"},
    )


def endpoint_secret(
    endpoint_id: str, tenant_id: str, deps: NotificationsApiDeps, *, rotate: bool = False
) -> webhooks.WebhookSecret:
    record = deps.endpoints.rotate(tenant_id, endpoint_id) if rotate else deps.endpoints.get(tenant_id, endpoint_id)
    if record is None:
        raise not_found("webhook endpoint")
    expires = record.secret.previous_expires_at
    still_valid = expires if expires is not None and expires > utcnow() else None
    return webhooks.WebhookSecret(
        secret=record.secret.secret, previous_expires_at=isoformat(still_valid) if still_valid else None
    )


class EndpointDeliveryList(BaseModel):
    deliveries: list[webhooks.Delivery]
    """Newest first."""
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; None on the last one."""


def list_endpoint_deliveries(
    endpoint_id: str,
    tenant_id: str,
    deps: NotificationsApiDeps,
    *,
    status: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> EndpointDeliveryList:
    _own_endpoint(endpoint_id, tenant_id, deps)
    after = _read_cursor(cursor, endpoint_id)
    records, last = deps.endpoint_ledger.page(endpoint_id, status=status, limit=limit, after=after)
    next_cursor = base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None
    return EndpointDeliveryList(deliveries=[_view(record) for record in records], next_cursor=next_cursor)


def redeliver_to_endpoint(
    endpoint_id: str, delivery_id: str, tenant_id: str, deps: NotificationsApiDeps
) -> webhooks.Delivery:
    _own_endpoint(endpoint_id, tenant_id, deps)
    record = deps.endpoint_ledger.get(endpoint_id, delivery_id)
    if record is None:
        raise not_found("delivery")
    try:
        restarted = deps.endpoint_ledger.restart(record, timedelta(seconds=webhooks.REDELIVER_INTERVAL_SECONDS))
    except RedeliveredTooSoon as error:
        raise ApiError(
            ErrorCode.RATE_LIMITED,
            f"a delivery can be redelivered once every {webhooks.REDELIVER_INTERVAL_SECONDS} s",
            headers={"Retry-After": str(error.retry_after_seconds)},
        ) from error
    send_delivery(restarted, deps.deliveries)
    return _view(restarted)


def replay(endpoint_id: str, request: ReplayRequest, tenant_id: str, deps: NotificationsApiDeps) -> ReplayResult:
    """Queue again, to this endpoint, the tenant's events of the window that its filter (or the request's)
    wants: each with its original ``webhook-id`` and body."""
    endpoint = _own_endpoint(endpoint_id, tenant_id, deps)
    now = utcnow()
    until = request.until or now
    oldest = deps.events.oldest_available(now)
    if request.since < oldest:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"since: events are kept {deps.events.retention.days} days; the oldest available is {isoformat(oldest)}",
        )
    if until < request.since:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "until: must not be before since")
    if endpoint.disabled:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "the endpoint is disabled: enable it first (PATCH disabled false)")
    types = [event.value for event in request.events] if request.events else endpoint.events
    found = deps.events.for_tenant(tenant_id, request.since, until, MAX_REPLAY_EVENTS)
    if len(found) > MAX_REPLAY_EVENTS:
        raise ApiError(
            ErrorCode.VALIDATION_ERROR,
            f"the window holds more than {MAX_REPLAY_EVENTS} events: replay it in shorter windows",
        )
    replayed = 0
    for job_id, body in found:
        event = parse_event(body)
        if not wants(types, event.type.value):
            continue
        record = endpoint_delivery(
            endpoint, webhooks.delivery_id(job_id, event.version), event.type.value, body, job_id, event.version
        )
        if not deps.endpoint_ledger.create(record):
            existing = deps.endpoint_ledger.get(endpoint_id, record.delivery_id)
            if existing is None:
                continue
            record = deps.endpoint_ledger.restart(existing)
        send_delivery(record, deps.deliveries)
        deps.endpoint_ledger.mark_queued(record)
        replayed += 1
    return ReplayResult(replayed=replayed)


def _own_endpoint(endpoint_id: str, tenant_id: str, deps: NotificationsApiDeps) -> EndpointRecord:
    record = deps.endpoints.get(tenant_id, endpoint_id)
    if record is None:
        raise not_found("webhook endpoint")
    return record


def _checked_url(url: str, deps: NotificationsApiDeps) -> str:
    """The SSRF guard, as at job submission (the deliverer checks again before every attempt)."""
    try:
        check_url(url, allow_loopback_http=deps.settings.webhook_allow_loopback_http, resolve=deps.resolve)
    except UnsafeUrl as error:
        raise ApiError(ErrorCode.INVALID_WEBHOOK_URL, f"url is not allowed: {error}") from error
    return url


def _read_cursor(cursor: str | None, endpoint_id: str) -> dict[str, str] | None:
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError) as error:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "cursor: not a cursor this API gave") from error
    names = {"endpoint_id", "delivery_id", "created_key"}
    if not (isinstance(key, dict) and set(key) == names and all(isinstance(v, str) for v in key.values())):
        raise ApiError(ErrorCode.VALIDATION_ERROR, "cursor: not a cursor this API gave")
    if key["endpoint_id"] != endpoint_id:
        raise ApiError(ErrorCode.VALIDATION_ERROR, "cursor: from another endpoint's listing")
    return key
