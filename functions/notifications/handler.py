"""Webhook secrets, the webhook delivery ledger and WebSocket tickets:

GET /account/webhook-secret, POST /account/webhook-secret/rotate, GET /jobs/{id}/deliveries,
POST /jobs/{id}/deliveries/{delivery_id}/redeliver, POST /jobs/{id}/ws-ticket and /webhook-endpoints/….
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import api, snapstart
from videojobs.aws import client
from videojobs.endpoints import (
    CreateEndpointRequest,
    ReplayRequest,
    ReplayResult,
    UpdateEndpointRequest,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
)
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode
from videojobs.notification_store import DeliveryLedger, EndpointStore, EventLog, SecretStore, TicketStore
from videojobs.observability import logger, traced
from videojobs.queues import DeliveryQueue
from videojobs.service import notifications_api
from videojobs.settings import NotificationsApiSettings
from videojobs.webhooks import Delivery, DeliveryList, DeliveryStatus, WebhookSecret

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
        endpoints=EndpointStore(dynamodb, settings.webhook_endpoints_table),
        endpoint_ledger=DeliveryLedger(dynamodb, settings.endpoint_deliveries_table, by_endpoint=True),
        events=EventLog(dynamodb, settings.job_events_table, timedelta(days=settings.event_retention_days)),
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


EndpointId = Annotated[str, Path(max_length=64)]
DeliveryId = Annotated[str, Path(max_length=128)]

CREATE_ENDPOINT = api.Operation(
    "Create a webhook endpoint",
    HTTPStatus.CREATED,
    WebhookEndpointWithSecret,
    "Every job event of the tenant whose type is in `events` (empty or absent: every type) is POSTed to `url`, "
    "signed with the endpoint's own `secret` (Standard Webhooks), on the webhook retry schedule. The secret is "
    "shown here and by `GET /webhook-endpoints/{id}/secret`, never in listings. At most 20 per tenant.",
    errors=(ErrorCode.INVALID_WEBHOOK_URL, ErrorCode.SERVICE_UNAVAILABLE),
    headers={"Cache-Control": "`no-store`"},
)


@app.post("/webhook-endpoints", **CREATE_ENDPOINT.route())
def create_endpoint(request: CreateEndpointRequest):
    created = notifications_api.create_endpoint(request, api.tenant_of(app), get_deps())
    return CREATE_ENDPOINT.answer(created, headers=NOT_STORED)


LIST_ENDPOINTS = api.Operation("List webhook endpoints", HTTPStatus.OK, WebhookEndpointList)


@app.get("/webhook-endpoints", **LIST_ENDPOINTS.route())
def list_endpoints():
    return LIST_ENDPOINTS.answer(notifications_api.list_endpoints(api.tenant_of(app), get_deps()))


GET_ENDPOINT = api.Operation(
    "Get a webhook endpoint",
    HTTPStatus.OK,
    WebhookEndpoint,
    "`disabled_reason` is `failing` when its deliveries all failed for days (it was then disabled, and an "
    "`endpoint.disabled` event sent), `manual` when disabled by a `PATCH`.",
)


@app.get("/webhook-endpoints/<endpoint_id>", **GET_ENDPOINT.route())
def get_endpoint(endpoint_id: EndpointId):
    return GET_ENDPOINT.answer(notifications_api.get_endpoint(endpoint_id, api.tenant_of(app), get_deps()))


UPDATE_ENDPOINT = api.Operation(
    "Update a webhook endpoint",
    HTTPStatus.OK,
    WebhookEndpoint,
    "Change `url`, `events`, `description`; `disabled: false` re-enables it (also after it was disabled for "
    "failing), `disabled: true` pauses it.",
    errors=(ErrorCode.INVALID_WEBHOOK_URL,),
)


@app.patch("/webhook-endpoints/<endpoint_id>", **UPDATE_ENDPOINT.route())
def update_endpoint(endpoint_id: EndpointId, request: UpdateEndpointRequest):
    updated = notifications_api.update_endpoint(endpoint_id, request, api.tenant_of(app), get_deps())
    return UPDATE_ENDPOINT.answer(updated)


DELETE_ENDPOINT = api.Operation(
    "Delete a webhook endpoint",
    HTTPStatus.NO_CONTENT,
    None,
    "Its pending deliveries are dropped.",
    errors=(ErrorCode.SERVICE_UNAVAILABLE,),
)


@app.delete("/webhook-endpoints/<endpoint_id>", **DELETE_ENDPOINT.route())
def delete_endpoint(endpoint_id: EndpointId):
    notifications_api.delete_endpoint(endpoint_id, api.tenant_of(app), get_deps())
    return DELETE_ENDPOINT.answer()


GET_ENDPOINT_SECRET = api.Operation(
    "Get a webhook endpoint's signing secret",
    HTTPStatus.OK,
    WebhookSecret,
    "Verify the endpoint's `webhook-signature` with it. After a rotation, `previous_expires_at` says until "
    "when the old secret signs too.",
    headers={"Cache-Control": "`no-store`"},
)


@app.get("/webhook-endpoints/<endpoint_id>/secret", **GET_ENDPOINT_SECRET.route())
def get_endpoint_secret(endpoint_id: EndpointId):
    secret = notifications_api.endpoint_secret(endpoint_id, api.tenant_of(app), get_deps())
    return GET_ENDPOINT_SECRET.answer(secret, headers=NOT_STORED)


ROTATE_ENDPOINT_SECRET = api.Operation(
    "Rotate a webhook endpoint's signing secret",
    HTTPStatus.OK,
    WebhookSecret,
    "A new secret at once; for 24 hours (`previous_expires_at`) deliveries carry a signature with each.",
    headers={"Cache-Control": "`no-store`"},
)


@app.post("/webhook-endpoints/<endpoint_id>/secret/rotate", **ROTATE_ENDPOINT_SECRET.route())
def rotate_endpoint_secret(endpoint_id: EndpointId):
    secret = notifications_api.endpoint_secret(endpoint_id, api.tenant_of(app), get_deps(), rotate=True)
    return ROTATE_ENDPOINT_SECRET.answer(secret, headers=NOT_STORED)


LIST_ENDPOINT_DELIVERIES = api.Operation(
    "List a webhook endpoint's deliveries",
    HTTPStatus.OK,
    notifications_api.EndpointDeliveryList,
    "Newest first, optionally of one `status`; `next_cursor` continues the listing.",
)


@app.get("/webhook-endpoints/<endpoint_id>/deliveries", **LIST_ENDPOINT_DELIVERIES.route())
def list_endpoint_deliveries(
    endpoint_id: EndpointId,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
):
    listing = notifications_api.list_endpoint_deliveries(
        endpoint_id, api.tenant_of(app), get_deps(), status=status, limit=limit, cursor=cursor
    )
    return LIST_ENDPOINT_DELIVERIES.answer(listing)


REDELIVER_TO_ENDPOINT = api.Operation(
    "Redeliver a webhook endpoint's delivery",
    HTTPStatus.ACCEPTED,
    Delivery,
    "The same `webhook-id` and body, a fresh schedule of attempts. At most once a minute per delivery.",
)


@app.post("/webhook-endpoints/<endpoint_id>/deliveries/<delivery_id>/redeliver", **REDELIVER_TO_ENDPOINT.route())
def redeliver_to_endpoint(endpoint_id: EndpointId, delivery_id: DeliveryId):
    restarted = notifications_api.redeliver_to_endpoint(endpoint_id, delivery_id, api.tenant_of(app), get_deps())
    return REDELIVER_TO_ENDPOINT.answer(restarted)


REPLAY = api.Operation(
    "Replay events to a webhook endpoint",
    HTTPStatus.ACCEPTED,
    ReplayResult,
    "The tenant's job events from `since` to `until` (default now) that the endpoint's filter (or `events`) "
    "wants are sent again, each with its original `webhook-id`, so receivers deduplicate. Events are kept 7 "
    "days by default (a deployment setting, up to 30): an older `since` is 422 naming the oldest available "
    "time. At most 1000 events per replay.",
)


@app.post("/webhook-endpoints/<endpoint_id>/replay", **REPLAY.route())
def replay(endpoint_id: EndpointId, request: ReplayRequest):
    return REPLAY.answer(notifications_api.replay(endpoint_id, request, api.tenant_of(app), get_deps()))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(app, event, context)
