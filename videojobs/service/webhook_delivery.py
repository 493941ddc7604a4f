"""The ``deliver`` function's use case: one signed webhook attempt per queue message, and the next one
scheduled on the message itself (its visibility).

A delivery to a webhook endpoint is signed with that endpoint's secret and goes to its current URL. Its outcome
also keeps the endpoint's health: a success forgets earlier failures; a failure after only failures for
``endpoint_disable_after_seconds`` disables it, and the tenant's other endpoints and the event bus hear of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit

from videojobs import webhooks
from videojobs.endpoints import ENDPOINT_DISABLED, EndpointEvent, endpoint_view
from videojobs.event_bus import EventBus
from videojobs.metric_names import WEBHOOK_DELIVERIES_FAILED, WEBHOOK_DELIVERIES_SUCCEEDED
from videojobs.models import isoformat, utcnow
from videojobs.notification_store import DeliveryLedger, DeliveryRecord, EndpointRecord, EndpointStore, SecretStore
from videojobs.observability import logger, metrics
from videojobs.queues import DeliveryQueue, ReceivedMessage
from videojobs.service.fanout import EndpointFanOut, queue_to_endpoints
from videojobs.settings import DeliverSettings
from videojobs.ssrf import Resolver, UnsafeUrl, check_url, system_resolver
from videojobs.webhooks import DeliveryAttempt, DeliveryMessage, DeliveryStatus


@dataclass(frozen=True)
class DeliverDeps:
    settings: DeliverSettings
    ledger: DeliveryLedger
    secrets: SecretStore
    queue: DeliveryQueue
    endpoints: EndpointStore
    endpoint_ledger: DeliveryLedger
    bus: EventBus
    resolve: Resolver = system_resolver
    send: Callable[..., webhooks.Response] = webhooks.post
    clock: Callable[[], datetime] = field(default=utcnow)


def deliver(message: DeliveryMessage, received: ReceivedMessage, deps: DeliverDeps) -> bool:
    """Make the delivery's next attempt. True: the message is done with (delete it); False: it was deferred
    to the next attempt with ``ChangeMessageVisibility`` and must stay in the queue.

    Waits longer than SQS's 12 h visibility limit are taken in hops: a message that comes back before its
    delivery's ``next_attempt_at`` is hidden again for the rest of the wait, without an attempt."""
    endpoint = None
    ledger = deps.ledger
    if message.endpoint_id is not None:
        ledger = deps.endpoint_ledger
        endpoint = deps.endpoints.get(message.tenant_id or "", message.endpoint_id)
        if endpoint is None:
            return True  # the endpoint was deleted: its deliveries go nowhere
        if endpoint.disabled_at and endpoint.disabled_reason == "failing" and not endpoint.announced:
            announce_disabled(endpoint, deps)  # an announcement that failed before (it raised): again
    record = ledger.get(message.endpoint_id or message.job_id, message.delivery_id)
    if record is None or record.sequence != message.sequence or record.status is not DeliveryStatus.PENDING:
        return True  # delivered, given up, or superseded by a redelivery: nothing left for this message
    now = deps.clock()
    if endpoint is not None and endpoint.disabled:
        # No attempt while it is disabled: the delivery ends, and a replay sends it again once re-enabled.
        stopped = DeliveryAttempt(at=isoformat(now), status_code=None, latency_ms=0, error="endpoint disabled")
        ledger.record_attempt(record, stopped, DeliveryStatus.FAILED, None)
        return True
    if record.next_attempt_at:
        wait = (datetime.fromisoformat(record.next_attempt_at) - now).total_seconds()
        if wait >= 1:
            received.hide_for(wait)
            return False

    response = _attempt(record, endpoint, now, deps)
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
    outcome = WEBHOOK_DELIVERIES_SUCCEEDED if response.delivered else WEBHOOK_DELIVERIES_FAILED
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
    if not ledger.record_attempt(record, attempt, status, next_attempt_at):
        return True  # a redelivery started a new sequence meanwhile; its own message carries on
    if endpoint is not None:
        _keep_health(endpoint, response.delivered, now, deps)
    if delay is not None:
        received.hide_for(delay)
        return False
    if status is DeliveryStatus.FAILED and not response.gone:
        deps.queue.dead_letter(message)  # the schedule is spent: park it where operators and alarms see it
    return True


def _keep_health(endpoint: EndpointRecord, delivered: bool, now: datetime, deps: DeliverDeps) -> None:
    if delivered:
        deps.endpoints.record_success(endpoint)
        return
    window = timedelta(seconds=deps.settings.endpoint_disable_after_seconds)
    disabled = deps.endpoints.record_failure(endpoint, now, window)
    if disabled is None:
        return
    logger.warning("webhook endpoint disabled", extra={"endpoint_id": endpoint.endpoint_id})
    announce_disabled(disabled, deps)


def announce_disabled(endpoint: EndpointRecord, deps: DeliverDeps) -> None:
    """``endpoint.disabled`` to the tenant's other endpoints and the event bus, then remembered as sent. If
    this raises, the next message of the endpoint announces again: the ``webhook-id`` is derived from the
    endpoint and the moment it was disabled, so receivers drop a repeat."""
    assert endpoint.disabled_at is not None
    event = EndpointEvent(timestamp=endpoint.disabled_at, data=endpoint_view(endpoint)).model_dump_json()
    disabled_at = datetime.fromisoformat(endpoint.disabled_at)
    message_id = f"msg_{endpoint.endpoint_id.removeprefix('ep_')}_disabled_{int(disabled_at.timestamp())}"
    fan_out = EndpointFanOut(deps.endpoints, deps.endpoint_ledger, deps.queue)
    queue_to_endpoints(
        endpoint.tenant_id, ENDPOINT_DISABLED, event, "", 0, fan_out, delivery_id=message_id, skip=endpoint.endpoint_id
    )
    deps.bus.put(ENDPOINT_DISABLED, event, endpoint.tenant_id)
    deps.endpoints.mark_announced(endpoint)


def _attempt(
    record: DeliveryRecord, endpoint: EndpointRecord | None, now: datetime, deps: DeliverDeps
) -> webhooks.Response:
    url = endpoint.url if endpoint is not None else record.url  # an endpoint's URL may have changed since
    try:
        # Checked again at every attempt, and the connection goes to the address checked now.
        target = check_url(url, allow_loopback_http=deps.settings.webhook_allow_loopback_http, resolve=deps.resolve)
    except UnsafeUrl as refused:
        return webhooks.Response(None, 0, f"refused: {refused}")
    if endpoint is not None:
        signing = endpoint.secret.signing_secrets(now)
    else:
        signing = deps.secrets.get_or_create(record.tenant_id).signing_secrets(now)
    headers = webhooks.signed_headers(signing, record.delivery_id, int(now.timestamp()), record.body)
    return deps.send(target, headers, record.body.encode(), deps.settings.timeout_seconds)
