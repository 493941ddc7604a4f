"""Webhook secrets, the webhook delivery ledger and WebSocket tickets:

GET /account/webhook-secret, POST /account/webhook-secret/rotate, GET /jobs/{id}/deliveries,
POST /jobs/{id}/deliveries/{delivery_id}/redeliver and POST /jobs/{id}/ws-ticket.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import api, snapstart
from videojobs.aws import client
from videojobs.job_store import JobStore
from videojobs.notification_store import DeliveryLedger, SecretStore, TicketStore
from videojobs.observability import logger, traced
from videojobs.queues import DeliveryQueue
from videojobs.service import notifications_api
from videojobs.settings import NotificationsApiSettings
from videojobs.webhooks import Delivery, DeliveryList, WebhookSecret

app = api.new_resolver()

JobId = Annotated[str, Path(max_length=64)]


@snapstart.before_snapshot  # clients and settings are in the snapshot, not in a cold start
@cache
def get_deps() -> notifications_api.NotificationsApiDeps:
    settings = NotificationsApiSettings.from_env()
    dynamodb = client("dynamodb")
    return notifications_api.NotificationsApiDeps(
        settings=settings,
        jobs=JobStore(dynamodb, settings.jobs_table),
        secrets=SecretStore(dynamodb, settings.webhook_secrets_table),
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        tickets=TicketStore(dynamodb, settings.ws_tickets_table),
        deliveries=DeliveryQueue(client("sqs"), settings.deliveries_queue_url),
    )


NOT_STORED = {"Cache-Control": "no-store"}
"""Secrets and tickets are credentials: no cache along the way may keep them."""

GET_WEBHOOK_SECRET = api.Operation(
    "Get the webhook signing secret",
    HTTPStatus.OK,
    WebhookSecret,
    "The tenant's `whsec_…` secret, made on first use: verify each webhook's `webhook-signature` with it "
    "(Standard Webhooks). After a rotation, `previous_expires_at` says until when the old secret signs too.",
    headers={"Cache-Control": "`no-store`"},
)


@app.get("/account/webhook-secret", **GET_WEBHOOK_SECRET.route())
def get_webhook_secret():
    secret = notifications_api.webhook_secret(api.tenant_of(app), get_deps())
    return GET_WEBHOOK_SECRET.answer(secret, headers=NOT_STORED)


ROTATE_WEBHOOK_SECRET = api.Operation(
    "Rotate the webhook signing secret",
    HTTPStatus.OK,
    WebhookSecret,
    "A new secret at once; for a while (`previous_expires_at`) deliveries carry a signature with each, so "
    "receivers can switch without losing a webhook.",
    headers={"Cache-Control": "`no-store`"},
)


@app.post("/account/webhook-secret/rotate", **ROTATE_WEBHOOK_SECRET.route())
def rotate_webhook_secret():
    secret = notifications_api.webhook_secret(api.tenant_of(app), get_deps(), rotate=True)
    return ROTATE_WEBHOOK_SECRET.answer(secret, headers=NOT_STORED)


LIST_DELIVERIES = api.Operation(
    "List a job's webhook deliveries",
    HTTPStatus.OK,
    DeliveryList,
    "Each event sent to the job's `webhook_url`: its `webhook-id`, status and every attempt (status code, latency).",
)


@app.get("/jobs/<job_id>/deliveries", **LIST_DELIVERIES.route())
def list_deliveries(job_id: JobId):
    return LIST_DELIVERIES.answer(notifications_api.list_deliveries(job_id, api.tenant_of(app), get_deps()))


REDELIVER = api.Operation(
    "Redeliver a webhook",
    HTTPStatus.ACCEPTED,
    Delivery,
    "The delivery starts over: the same `webhook-id` and body, a fresh schedule of attempts (it is `pending`). "
    "At most once a minute per delivery: sooner is 429 `rate_limited` with `Retry-After`.",
)


@app.post("/jobs/<job_id>/deliveries/<delivery_id>/redeliver", **REDELIVER.route())
def redeliver(job_id: JobId, delivery_id: Annotated[str, Path(max_length=128)]):
    return REDELIVER.answer(notifications_api.redeliver(job_id, delivery_id, api.tenant_of(app), get_deps()))


CREATE_WEBSOCKET_TICKET = api.Operation(
    "Get a WebSocket ticket",
    HTTPStatus.CREATED,
    notifications_api.WebSocketTicket,
    "A short-lived, single-use ticket in a `wss://` URL to follow the job's events (browsers cannot send "
    '`Authorization` when they open a WebSocket). Send `{"action": "subscribe", "job_id": …}` once '
    "connected.",
    headers={"Cache-Control": "`no-store`"},
)


@app.post("/jobs/<job_id>/ws-ticket", **CREATE_WEBSOCKET_TICKET.route())
def websocket_ticket(job_id: JobId):
    ticket = notifications_api.websocket_ticket(job_id, api.tenant_of(app), get_deps())
    return CREATE_WEBSOCKET_TICKET.answer(ticket, headers=NOT_STORED)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(app, event, context)
