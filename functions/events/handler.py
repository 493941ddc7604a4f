"""GET /jobs/{id}/events: the job's events as Server-Sent Events, one long poll per request.

API Gateway buffers a Lambda's answer and gives it 29 s, so each request waits (up to ``SSE_WAIT_SECONDS``)
for the first event after ``Last-Event-ID``, answers everything new up to the terminal event, and ends; the
``retry:`` field makes an ``EventSource`` reconnect at once with the last ``id``. Once the client has the
terminal event the answer is 204, which tells an ``EventSource`` to stop.

A plain handler rather than a Powertools resolver: it may hold its request for seconds, and the resolver's
current request is process-wide state (see ``wiring.Route.long_poll``).
"""

from __future__ import annotations

import json
import time
from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import snapstart
from videojobs.aws import client
from videojobs.errors import ApiError, not_found
from videojobs.job_events import sse_body
from videojobs.job_store import JobStore
from videojobs.models import ErrorCode, JobEvent
from videojobs.notification_store import EventLog
from videojobs.observability import logger
from videojobs.operations import ERRORS_EXTENSION, PlainOperation
from videojobs.service import event_stream
from videojobs.settings import EventsSettings
from videojobs.tenant_counters import OpenStreams
from videojobs.tenant_limits import TenantLimits, TenantLimitStore

MAX_JOB_ID_LENGTH = 64

# No resolver describes this route: its description for the API document is written here, next to the code.
OPERATION = PlainOperation(
    method="GET",
    path="/jobs/{id}/events",
    models=(JobEvent,),
    operation={
        "summary": "Follow a job's events (Server-Sent Events)",
        "description": (
            "`text/event-stream`: each change of the job as `id: <version>`, `event: <type>` (`job.processing`, "
            "`job.progress`, `job.completed`, …) and `data: <JobEvent as JSON>`, ending after the terminal event. "
            "Behind API Gateway every request is a long poll of at most ~25 s: reconnect with `Last-Event-ID` "
            "(EventSource does so by itself, after the `retry:` delay) to get only newer events. Browsers' "
            "EventSource cannot send `Authorization`: read the stream with `fetch()` instead."
        ),
        "operationId": "job_events",
        ERRORS_EXTENSION: [ErrorCode.TOO_MANY_STREAMS.value],
        "parameters": [
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": MAX_JOB_ID_LENGTH},
            },
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "the last `id` received: only newer events are sent",
            },
            {
                "name": "last_event_id",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "the same, for clients that cannot set headers",
            },
        ],
        "responses": {
            str(int(HTTPStatus.OK)): {
                "description": "events, as they happen",
                "content": {
                    # Before OpenAPI 3.2's itemSchema, an event stream's schema describes each event.
                    "text/event-stream": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "event": {"$ref": "#/components/schemas/JobEventType"},
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": {"$ref": "#/components/schemas/JobEvent"},
                                },
                                "retry": {"type": "integer"},
                            },
                        },
                    }
                },
            },
            str(int(HTTPStatus.NO_CONTENT)): {
                "description": "the client has seen the terminal event already: stop reconnecting"
            },
        },
    },
)


@cache
def get_settings() -> EventsSettings:
    return EventsSettings.from_env()


@snapstart.before_snapshot  # clients and settings are in the snapshot, not in a cold start
@cache
def get_deps() -> event_stream.EventsDeps:
    settings = get_settings()
    dynamodb = client("dynamodb")
    return event_stream.EventsDeps(
        jobs=JobStore(dynamodb, settings.jobs_table),
        events=EventLog(dynamodb, settings.job_events_table),
        limits=TenantLimitStore(dynamodb, settings.tenants_table, TenantLimits.defaults(settings)),
        open_streams=OpenStreams(dynamodb, settings.tenants_table),
    )


def _error(error: ApiError) -> dict[str, Any]:
    body = {"error": {"code": error.code.value, "message": error.message}}
    return {
        "statusCode": int(error.status),
        "headers": {"Content-Type": "application/json", **(error.headers or {})},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def long_poll_seconds(event: dict[str, Any], wait_seconds: float, now: float) -> float:
    """How long this request may still wait: ``wait_seconds`` counted from when API Gateway received it
    (``requestTimeEpoch``), because API Gateway's 29 s include a cold start's init, which runs first."""
    received_ms = (event.get("requestContext") or {}).get("requestTimeEpoch")
    if not isinstance(received_ms, int | float):
        return wait_seconds
    return max(0.0, min(wait_seconds, received_ms / 1000 + wait_seconds - now))


def _header(event: dict[str, Any], name: str) -> str | None:
    return next((value for key, value in (event.get("headers") or {}).items() if key.lower() == name), None)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        tenant = ((event.get("requestContext") or {}).get("authorizer") or {}).get("tenant_id")
        if not tenant:
            raise event_stream.unauthorized()
        job_id = (event.get("pathParameters") or {}).get("id") or ""
        if not 0 < len(job_id) <= MAX_JOB_ID_LENGTH:
            raise not_found()
        # EventSource sends the header; a client that cannot set headers may pass ?last_event_id=.
        query = event.get("queryStringParameters") or {}
        since = event_stream.last_event_id(_header(event, "last-event-id") or query.get("last_event_id"))
        wait = long_poll_seconds(event, get_settings().sse_wait_seconds, time.time())
        request_id = str((event.get("requestContext") or {}).get("requestId") or context.aws_request_id)
        events = event_stream.follow(job_id, tenant, since, wait, request_id, get_deps())
    except ApiError as error:
        return _error(error)
    if events is None:
        return {"statusCode": HTTPStatus.NO_CONTENT, "headers": {}, "body": "", "isBase64Encoded": False}
    return {
        "statusCode": HTTPStatus.OK,
        "headers": {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
        "body": sse_body(events),
        "isBase64Encoded": False,
    }
