"""HTTP plumbing shared by the API functions: one error shape, the body limit, the caller's tenant.

Every error leaves as ``{"error": {"code": "<stable_snake_case>", "message": "..."}}`` with the right 4xx;
bad input never becomes a 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel

from videojobs import wiring
from videojobs.errors import ApiError, status_of
from videojobs.models import ErrorBody, ErrorCode, ErrorDetail
from videojobs.observability import logger
from videojobs.operations import ERRORS_EXTENSION

MAX_BODY_BYTES = 64 * 1024
BASE_PATH = f"/{wiring.API_BASE_PATH}"
JSON = "application/json"


def json_response(status: int, model: BaseModel, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(status_code=status, content_type=JSON, body=model.model_dump_json(), headers=headers)


def error_response(code: ErrorCode, message: str, headers: dict[str, str] | None = None) -> Response[str]:
    return json_response(status_of(code), ErrorBody(error=ErrorDetail(code=code, message=message)), headers)


@dataclass(frozen=True)
class Operation:
    """One HTTP operation as the API document shows it, declared next to its handler: the summary, the success
    answer and the error codes only this route answers (``tools/openapi.py`` adds those every route can meet).
    The handler answers with :meth:`answer`, so the success status is written once."""

    summary: str
    status: HTTPStatus
    model: Any = None
    """The success body: a pydantic model or a union of them (JSON), ``str`` (text of ``media_type``), or None."""
    description: str = ""
    errors: tuple[ErrorCode, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    """Response header name -> what it means."""
    media_type: str = JSON
    alternatives: tuple[Operation, ...] = ()
    """Other successes of the same route (another status and body; the handler answers with their ``answer``)."""

    def route(self) -> dict[str, Any]:
        """Keyword arguments for a Powertools route decorator: ``@app.post("/jobs", **SUBMIT_JOB.route())``."""
        responses = {int(operation.status): operation._response() for operation in (self, *self.alternatives)}
        return {
            "summary": self.summary,
            "responses": responses,
            "openapi_extensions": {ERRORS_EXTENSION: [str(code) for code in self.errors]} if self.errors else None,
        }

    def _response(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"description": self.description or self.status.phrase}
        if self.model is str:
            answer["content"] = {self.media_type: {"schema": {"type": "string"}}}
        elif self.model is not None:
            answer["content"] = {self.media_type: {"model": self.model}}
        if self.headers:
            answer["headers"] = {
                name: {"description": text, "schema": {"type": "string"}} for name, text in self.headers.items()
            }
        return answer

    def answer(self, body: BaseModel | str | None = None, headers: dict[str, str] | None = None) -> Response[str]:
        """The success answer, with the declared status."""
        if isinstance(body, BaseModel):
            return json_response(self.status, body, headers)
        if body is None:  # no Content-Type either: Powertools would send one with the body "null"
            return Response(status_code=self.status, headers=headers)
        return Response(status_code=self.status, content_type=self.media_type, body=body, headers=headers)


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location if part != "body"]
    return ".".join(parts) or "body"


def _validation_message(errors: list[dict[str, Any]]) -> str:
    shown = [f"{_field(tuple(error.get('loc', ())))}: {error.get('msg', 'invalid')}" for error in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(shown) + more


def new_resolver() -> APIGatewayRestResolver:
    """A Powertools REST resolver with request validation and the service's error shape.

    Behind a custom domain the event's ``path`` keeps the base path (``/v1/jobs``) and the resolver routes on
    ``path``: the prefix is stripped, or every route would answer 404."""
    app = APIGatewayRestResolver(enable_validation=True, strip_prefixes=[BASE_PATH])

    def invalid_request(error: RequestValidationError) -> Response[str]:
        errors = list(error.errors())
        if any(item.get("type") == "json_invalid" for item in errors):
            return error_response(ErrorCode.INVALID_JSON, "the request body is not valid JSON")
        return error_response(ErrorCode.VALIDATION_ERROR, _validation_message(errors))

    # A body that is not UTF-8 fails in Powertools' decoding, before validation sees it.
    def not_text(_: UnicodeDecodeError) -> Response[str]:
        return error_response(ErrorCode.INVALID_JSON, "the request body is not UTF-8 JSON")

    def api_error(error: ApiError) -> Response[str]:
        return error_response(error.code, error.message, error.headers)

    def not_found(_: Exception) -> Response[str]:
        return error_response(ErrorCode.NOT_FOUND, "no such resource")

    def unexpected(error: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(ErrorCode.INTERNAL_ERROR, "internal error")

    # Registered by call rather than as decorators: Powertools' decorators are untyped and would erase these types.
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(UnicodeDecodeError)(not_text)
    app.exception_handler(ApiError)(api_error)
    app.not_found(not_found)
    app.exception_handler(Exception)(unexpected)
    return app


def resolve(
    app: APIGatewayRestResolver, event: dict[str, Any], context: Any, *, max_body_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """Route the event. The body limit is checked first: validating a huge body would be wasted work
    (and would answer 422 where the client needs to hear 413)."""
    body = event.get("body") or ""
    if len(body.encode()) > max_body_bytes:
        detail = ErrorDetail(
            code=ErrorCode.PAYLOAD_TOO_LARGE, message=f"the request body must be at most {max_body_bytes} bytes"
        )
        return {
            "statusCode": status_of(ErrorCode.PAYLOAD_TOO_LARGE),
            "headers": {"Content-Type": JSON},
            "body": ErrorBody(error=detail).model_dump_json(),
            "isBase64Encoded": False,
        }
    return app.resolve(_read_body_as_json(event), context)


def _read_body_as_json(event: dict[str, Any]) -> dict[str, Any]:
    """Every body of this API is JSON, whatever Content-Type the client sent (``curl -d`` says form data):
    the validator would otherwise parse it as a form and report confusing field errors."""
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    multi = {k: v for k, v in (event.get("multiValueHeaders") or {}).items() if k.lower() != "content-type"}
    return {
        **event,
        "headers": {**headers, "Content-Type": JSON},
        "multiValueHeaders": {**multi, "Content-Type": [JSON]},
    }


def tenant_of(app: APIGatewayRestResolver) -> str:
    """The tenant the authorizer resolved from the API key (API Gateway puts it in the request context)."""
    authorizer = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    tenant = authorizer.get("tenant_id")
    if not (isinstance(tenant, str) and tenant):  # the authorizer's context values are strings
        raise ApiError(ErrorCode.UNAUTHORIZED, "missing or unknown API key")
    return tenant


def base_url(app: APIGatewayRestResolver) -> str:
    """The API's public base URL as the client called it, e.g. ``https://abc.execute-api…/v1`` in AWS,
    ``https://api.example.com/v1`` behind a custom domain or ``http://127.0.0.1:8080`` locally: what
    ``requestContext.path`` (the path as called) has before the route's own path (``path`` without the
    custom domain's base path)."""
    event = app.current_event
    headers = {key.lower(): value for key, value in (event.headers or {}).items()}
    scheme = headers.get("x-forwarded-proto", "http")
    host = headers.get("host") or event.request_context.domain_name or "localhost"
    route_path = event.path[len(BASE_PATH) :] if event.path.startswith(f"{BASE_PATH}/") else event.path
    full_path = event.request_context.path or event.path
    prefix = full_path[: -len(route_path)] if route_path and full_path.endswith(route_path) else ""
    return f"{scheme}://{host}{prefix}"
