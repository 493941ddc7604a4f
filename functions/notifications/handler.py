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

from videojobs import api
from videojobs.aws import client
from videojobs.notification_store import DeliveryLedger, SecretStore, TicketStore
from videojobs.observability import logger, tracer
from videojobs.queue import DeliveryQueue
from videojobs.service import notifications
from videojobs.settings import NotificationsApiSettings
from videojobs.store import JobStore

app = api.new_resolver()

JobId = Annotated[str, Path(max_length=64)]


@cache
def get_deps() -> notifications.NotificationsApiDeps:
    settings = NotificationsApiSettings.from_env()
    dynamodb = client("dynamodb")
    return notifications.NotificationsApiDeps(
        settings=settings,
        jobs=JobStore(dynamodb, settings.jobs_table),
        secrets=SecretStore(dynamodb, settings.webhook_secrets_table),
        ledger=DeliveryLedger(dynamodb, settings.webhook_deliveries_table),
        tickets=TicketStore(dynamodb, settings.ws_tickets_table),
        deliveries=DeliveryQueue(client("sqs"), settings.deliveries_queue_url),
    )


@app.get("/account/webhook-secret")
def get_webhook_secret():
    secret = notifications.webhook_secret(api.tenant_of(app), get_deps())
    return api.json_response(HTTPStatus.OK, secret, headers={"Cache-Control": "no-store"})


@app.post("/account/webhook-secret/rotate")
def rotate_webhook_secret():
    secret = notifications.webhook_secret(api.tenant_of(app), get_deps(), rotate=True)
    return api.json_response(HTTPStatus.OK, secret, headers={"Cache-Control": "no-store"})


@app.get("/jobs/<job_id>/deliveries")
def list_deliveries(job_id: JobId):
    return api.json_response(HTTPStatus.OK, notifications.list_deliveries(job_id, api.tenant_of(app), get_deps()))


@app.post("/jobs/<job_id>/deliveries/<delivery_id>/redeliver")
def redeliver(job_id: JobId, delivery_id: Annotated[str, Path(max_length=128)]):
    delivery = notifications.redeliver(job_id, delivery_id, api.tenant_of(app), get_deps())
    return api.json_response(HTTPStatus.ACCEPTED, delivery)


@app.post("/jobs/<job_id>/ws-ticket")
def websocket_ticket(job_id: JobId):
    ticket = notifications.websocket_ticket(job_id, api.tenant_of(app), get_deps())
    return api.json_response(HTTPStatus.CREATED, ticket, headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(app, event, context)
