"""The ``deliver`` function's use case: one signed webhook attempt per queue message, and the next one
scheduled on the message itself (its visibility)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools.metrics import MetricUnit

from videojobs import webhooks
from videojobs.metric_names import WEBHOOK_DELIVERIES_FAILED, WEBHOOK_DELIVERIES_SUCCEEDED
from videojobs.models import isoformat, utcnow
from videojobs.notification_store import DeliveryLedger, DeliveryRecord, SecretStore
from videojobs.observability import logger, metrics
from videojobs.queues import DeliveryQueue, ReceivedMessage
from videojobs.settings import DeliverSettings
from videojobs.ssrf import Resolver, UnsafeUrl, check_url, system_resolver
from videojobs.webhooks import DeliveryAttempt, DeliveryMessage, DeliveryStatus


@dataclass(frozen=True)
class DeliverDeps:
    settings: DeliverSettings
    ledger: DeliveryLedger
    secrets: SecretStore
    queue: DeliveryQueue
    resolve: Resolver = system_resolver
    send: Callable[..., webhooks.Response] = webhooks.post
    clock: Callable[[], datetime] = field(default=utcnow)


def deliver(message: DeliveryMessage, received: ReceivedMessage, deps: DeliverDeps) -> bool:
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
            received.hide_for(wait)
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
    if not deps.ledger.record_attempt(record, attempt, status, next_attempt_at):
        return True  # a redelivery started a new sequence meanwhile; its own message carries on
    if delay is not None:
        received.hide_for(delay)
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
