"""Errors that cross a boundary: each carries the stable ``code`` a client sees, and ``ERRORS`` says which
HTTP status goes with each code (the raise sites name only the code)."""

from __future__ import annotations

from http import HTTPStatus
from typing import NamedTuple

from videojobs.models import ErrorCode


class ErrorKind(NamedTuple):
    status: HTTPStatus | None
    """None: the code appears in a failed job's ``error``, never in an answer."""
    when: str
    """What a client should understand by it (the API document's error table shows it)."""


ERRORS: dict[ErrorCode, ErrorKind] = {
    ErrorCode.BAD_REQUEST: ErrorKind(
        HTTPStatus.BAD_REQUEST, "API Gateway refused the request before the service saw it"
    ),
    ErrorCode.INVALID_JSON: ErrorKind(HTTPStatus.BAD_REQUEST, "the body is not JSON"),
    ErrorCode.UNAUTHORIZED: ErrorKind(HTTPStatus.UNAUTHORIZED, "no API key, or an unknown one"),
    ErrorCode.FORBIDDEN: ErrorKind(
        HTTPStatus.FORBIDDEN,
        "a playback link that is invalid or has expired (`GET /jobs/{id}` gives fresh ones), or a tenant without a "
        "request rate yet (an operator runs `videojobs admin set-limits` for it)",
    ),
    ErrorCode.NOT_FOUND: ErrorKind(
        HTTPStatus.NOT_FOUND, "unknown id, another tenant's job or upload, or an unknown route"
    ),
    ErrorCode.METHOD_NOT_ALLOWED: ErrorKind(HTTPStatus.METHOD_NOT_ALLOWED, "the path exists, but not with this method"),
    ErrorCode.IDEMPOTENCY_CONFLICT: ErrorKind(HTTPStatus.CONFLICT, "`Idempotency-Key` reused with a different body"),
    ErrorCode.JOB_FINISHED: ErrorKind(HTTPStatus.CONFLICT, "the job is already completed, failed or cancelled"),
    ErrorCode.JOB_STARTED: ErrorKind(HTTPStatus.CONFLICT, "the job is no longer queued"),
    ErrorCode.PAYLOAD_TOO_LARGE: ErrorKind(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body over 64 KB (512 KB to complete an upload)"
    ),
    ErrorCode.VALIDATION_ERROR: ErrorKind(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "the body, path or query does not match the schema; the message names the field",
    ),
    ErrorCode.UPLOAD_NOT_FOUND: ErrorKind(
        HTTPStatus.UNPROCESSABLE_ENTITY, "no uploaded file for `upload_id` under your tenant"
    ),
    ErrorCode.UPLOAD_TOO_LARGE: ErrorKind(
        HTTPStatus.UNPROCESSABLE_ENTITY, "the uploaded file is larger than allowed or than declared"
    ),
    ErrorCode.UPLOAD_INCOMPLETE: ErrorKind(
        HTTPStatus.UNPROCESSABLE_ENTITY, "a multipart upload that was not completed: `POST /uploads/{id}/complete`"
    ),
    ErrorCode.INVALID_UPLOAD_PARTS: ErrorKind(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "the parts do not make the declared file: a wrong or missing ETag, parts out of order, a part too small",
    ),
    ErrorCode.INVALID_WEBHOOK_URL: ErrorKind(
        HTTPStatus.UNPROCESSABLE_ENTITY, "`webhook_url` is not https, or names a host that is not public"
    ),
    ErrorCode.RATE_LIMITED: ErrorKind(
        HTTPStatus.TOO_MANY_REQUESTS,
        "over your tenant's `requests_per_second` (and `burst`), answered by API Gateway: retry after `Retry-After`",
    ),
    ErrorCode.QUOTA_EXCEEDED: ErrorKind(
        HTTPStatus.TOO_MANY_REQUESTS,
        "over your tenant's `max_pending_jobs` (queued + processing) or `max_upload_bytes_per_day` (UTC day); "
        "the message names the limit and your usage: retry after `Retry-After`",
    ),
    ErrorCode.TOO_MANY_STREAMS: ErrorKind(
        HTTPStatus.TOO_MANY_REQUESTS,
        "over your tenant's `max_open_streams` (SSE long polls and WebSocket connections open at once)",
    ),
    ErrorCode.INTERNAL_ERROR: ErrorKind(HTTPStatus.INTERNAL_SERVER_ERROR, "a fault of the service; retrying may help"),
    ErrorCode.SERVICE_UNAVAILABLE: ErrorKind(
        HTTPStatus.SERVICE_UNAVAILABLE, "the job could not be queued: retry with the same `Idempotency-Key`"
    ),
    ErrorCode.INVALID_MEDIA: ErrorKind(
        None, "a failed job: the input is not audio/video, or has no video for a video output"
    ),
    ErrorCode.UNSUPPORTED_FORMAT: ErrorKind(
        None, "a failed job: a container or codec not on the allowlist, or a playlist"
    ),
    ErrorCode.INPUT_TOO_LARGE: ErrorKind(
        None, "a failed job: the input's resolution, duration or stream count is over the limits"
    ),
    ErrorCode.PROCESSING_FAILED: ErrorKind(
        None, "a failed job: the worker failed on every attempt, or ran out of time"
    ),
}


def status_of(code: ErrorCode) -> HTTPStatus:
    """The HTTP status an answer carrying ``code`` has."""
    status = ERRORS[code].status
    if status is None:
        raise ValueError(f"{code} is a job error, never an answer")
    return status


class ApiError(Exception):
    """An error answered to an API client as ``{"error": {"code", "message"}}``, with its code's status."""

    def __init__(self, code: ErrorCode, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status_of(code)
        self.code = code
        self.message = message
        self.headers = headers
        """Sent with the error, e.g. ``Retry-After`` with a 429."""


class LimitReached(ApiError):
    """A tenant at one of its limits (``videojobs.tenant_limits``): 429 with ``Retry-After``, and a message
    naming the limit and the tenant's current usage."""

    def __init__(self, limit: str, current: int, maximum: int, retry_after_seconds: int, usage: str):
        self.limit = limit
        self.current = current
        self.maximum = maximum
        self.retry_after_seconds = max(1, retry_after_seconds)
        code = ErrorCode.TOO_MANY_STREAMS if limit == "max_open_streams" else ErrorCode.QUOTA_EXCEEDED
        super().__init__(
            code,
            f"over your {limit} of {maximum}: {usage.format(current=current)}; "
            f"retry after {self.retry_after_seconds} s",
            headers={"Retry-After": str(self.retry_after_seconds)},
        )


def not_found(what: str = "job") -> ApiError:
    return ApiError(ErrorCode.NOT_FOUND, f"{what} not found")


class JobFailure(Exception):
    """A permanent failure of a job: retrying the same input cannot succeed, so the job ends ``failed``."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
