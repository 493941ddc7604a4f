"""GET /jobs/{id}/events: the job's events as Server-Sent Events.

``stream_handler`` (the default deployment: API Gateway streams the response, ``videojobs.lambda_streaming``)
keeps one response open and writes each event as it happens until the terminal event, a keep-alive comment
when the job is quiet, and ends cleanly before API Gateway's 15-minute cap (``SSE_STREAM_SECONDS``, counted
from when API Gateway received the request); the client resumes with ``Last-Event-ID``.

``lambda_handler`` is the long-poll fallback where responses are buffered (29 s): each request waits (up to
``SSE_WAIT_SECONDS``) for the first event after ``Last-Event-ID``, answers everything new up to the terminal
event, and ends; the ``retry:`` field makes an ``EventSource`` reconnect at once with the last ``id``.

Both answer 204 once the client has the terminal event, which tells an ``EventSource`` to stop. Plain handlers
rather than a Powertools resolver: they hold their request, and the resolver's current request is process-wide
state (see ``wiring.Route.long_poll``).
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
from videojobs.lambda_streaming import StreamingResponse
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
            "`job.progress`, `job.output.ready`, `job.completed`, …) and `data: <JobEvent as JSON>`, as they "
            "happen, on one connection that ends after the terminal event. Comments (`: keep-alive`) keep a quiet "
            "stream open. A response lasts at most about 14.5 minutes (API Gateway's cap is 15): reconnect with "
            "`Last-Event-ID` (EventSource does so by itself, after the `retry:` delay) to get only newer events. "
            "Where the deployment buffers responses (the long-poll fallback), each response ends after at most "
            "~25 s instead. Browsers' EventSource cannot send `Authorization`: read the stream with `fetch()`."
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
    """How long this request may still wait (or stream): ``wait_seconds`` counted from when API Gateway received
    it (``requestTimeEpoch``), because API Gateway's limits include a cold start's init, which runs first."""
    received_ms = (event.get("requestContext") or {}).get("requestTimeEpoch")
    if not isinstance(received_ms, int | float):
        return wait_seconds
    return max(0.0, min(wait_seconds, received_ms / 1000 + wait_seconds - now))


def _header(event: dict[str, Any], name: str) -> str | None:
    return next((value for key, value in (event.get("headers") or {}).items() if key.lower() == name), None)


def _request(event: dict[str, Any]) -> tuple[str, str, int]:
    """The tenant, the job id and the last event id the client has seen."""
    tenant = ((event.get("requestContext") or {}).get("authorizer") or {}).get("tenant_id")
    if not tenant:
        raise event_stream.unauthorized()
    job_id = (event.get("pathParameters") or {}).get("id") or ""
    if not 0 < len(job_id) <= MAX_JOB_ID_LENGTH:
        raise not_found()
    # EventSource sends the header; a client that cannot set headers may pass ?last_event_id=.
    query = event.get("queryStringParameters") or {}
    return tenant, job_id, event_stream.last_event_id(_header(event, "last-event-id") or query.get("last_event_id"))


STREAM_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def stream_handler(event: dict[str, Any], context: LambdaContext) -> StreamingResponse:
    """The streamed response (InvokeWithResponseStream): the body is produced as the job's events happen."""
    try:
        tenant, job_id, since = _request(event)
        deps = get_deps()
        job = event_stream.open_stream(job_id, tenant, since, deps)
        if job is None:
            return StreamingResponse(HTTPStatus.NO_CONTENT, {})
        settings = get_settings()
        end_at = deps.clock() + long_poll_seconds(event, settings.sse_stream_seconds, time.time())
        request_id = str((event.get("requestContext") or {}).get("requestId") or context.aws_request_id)
        body = event_stream.held_stream(
            job, since, request_id, deps, keepalive_seconds=settings.sse_keepalive_seconds, end_at=end_at
        )
    except ApiError as error:
        failed = _error(error)
        return StreamingResponse(failed["statusCode"], failed["headers"], [failed["body"]])
    return StreamingResponse(HTTPStatus.OK, STREAM_HEADERS, body)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The long poll, where API Gateway buffers the response."""
    try:
        tenant, job_id, since = _request(event)
        wait = long_poll_seconds(event, get_settings().sse_wait_seconds, time.time())
        request_id = str((event.get("requestContext") or {}).get("requestId") or context.aws_request_id)
        events = event_stream.follow(job_id, tenant, since, wait, request_id, get_deps())
    except ApiError as error:
        return _error(error)
    if events is None:
        return {"statusCode": HTTPStatus.NO_CONTENT, "headers": {}, "body": "", "isBase64Encoded": False}
    return {
        "statusCode": HTTPStatus.OK,
        "headers": STREAM_HEADERS,
        "body": sse_body(events),
        "isBase64Encoded": False,
    }
