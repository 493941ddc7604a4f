"""The WebSocket API: ``$connect`` with a ticket, ``$disconnect``, and ``subscribe`` (catch up on missed events).

Browsers cannot send headers when they open a WebSocket, so ``$connect`` takes a short-lived, single-use
ticket (``?ticket=``, from ``POST /jobs/{id}/ws-ticket``) instead of the API key. The job's events are then
pushed by notify; ``{"action": "subscribe", "job_id": "…", "since_version": N}`` answers the events after N.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from videojobs import snapstart
from videojobs.aws import client
from videojobs.errors import LimitReached
from videojobs.models import SubscribeRequest
from videojobs.notification_store import ConnectionStore, EventLog, TicketStore
from videojobs.observability import logger
from videojobs.service import websocket
from videojobs.settings import WebSocketSettings
from videojobs.tenant_counters import OpenStreams
from videojobs.tenant_limits import TenantLimits, TenantLimitStore


@snapstart.before_snapshot  # clients and settings are in the snapshot, not in a cold start
@cache
def get_deps() -> websocket.WebSocketDeps:
    settings = WebSocketSettings.from_env()
    dynamodb = client("dynamodb")
    return websocket.WebSocketDeps(
        tickets=TicketStore(dynamodb, settings.ws_tickets_table),
        connections=ConnectionStore(dynamodb, settings.ws_connections_table),
        events=EventLog(dynamodb, settings.job_events_table),
        limits=TenantLimitStore(dynamodb, settings.tenants_table, TenantLimits.defaults(settings)),
        open_streams=OpenStreams(dynamodb, settings.tenants_table),
    )


def _reply(status: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps(body) if body is not None else ""}


def _subscribe(connection_id: str, body: str | None) -> dict[str, Any]:
    try:
        request = SubscribeRequest.model_validate_json(body or "{}")
    except ValidationError:
        return _reply(
            200,
            {
                "type": "error",
                "code": "validation_error",
                "message": 'send {"action": "subscribe", "job_id": "job_…", "since_version": 0}',
            },
        )
    return _reply(200, websocket.subscribe(connection_id, request.job_id, request.since_version, get_deps()))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    route, connection_id = request.get("routeKey"), request.get("connectionId", "")
    if route == "$connect":
        ticket = (event.get("queryStringParameters") or {}).get("ticket")
        try:
            accepted = websocket.connect(ticket, connection_id, get_deps())
        except LimitReached as refused:
            logger.info("websocket refused", extra={"connection_id": connection_id, "limit": refused.limit})
            answer = _reply(int(refused.status), {"error": {"code": refused.code.value, "message": refused.message}})
            return answer | {"headers": refused.headers}
        logger.info("websocket connect", extra={"connection_id": connection_id, "accepted": accepted})
        # Any status but 2xx refuses the handshake.
        return _reply(200) if accepted else _reply(401, {"message": "Unauthorized"})
    if route == "$disconnect":
        websocket.disconnect(connection_id, get_deps())
        return _reply(200)
    if route == "subscribe":
        return _subscribe(connection_id, event.get("body"))
    return _reply(404, {"type": "error", "code": "not_found", "message": f"unknown route {route!r}"})
