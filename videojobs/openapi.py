"""The API's OpenAPI 3 document, generated from the handlers' own Powertools resolvers and pydantic models.

    python -m videojobs.openapi            # writes openapi.json at the repository root
    python -m videojobs.openapi --check    # exits 1 when openapi.json is not what the code generates

A handler declares its success response and the error codes only it answers with :func:`operation`; the errors
that every route can meet (the key, the body, validation, throttling) are added here from ``wiring.ROUTES``, so
the document also describes what API Gateway answers before a handler runs. Paths are spelled as in the wiring.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

from videojobs.models import ErrorCode

TITLE = "videojobs"
VERSION = "1.0.0"
DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"
ERROR_SCHEMA = "#/components/schemas/ErrorBody"
EXTENSION = "x-videojobs-errors"
OPENAPI_VERSION = "3.1.0"

# Every error code, the status it comes with (None: it appears in a failed job's ``error``, not in an answer)
# and when. The document shows this table (the README has its own); tests check both name every ErrorCode.
ERRORS: dict[ErrorCode, tuple[int | None, str]] = {
    ErrorCode.BAD_REQUEST: (400, "API Gateway refused the request before the service saw it"),
    ErrorCode.INVALID_JSON: (400, "the body is not JSON"),
    ErrorCode.UNAUTHORIZED: (401, "no API key, or an unknown one"),
    ErrorCode.FORBIDDEN: (403, "a playback link that is invalid or has expired: `GET /jobs/{id}` gives fresh ones"),
    ErrorCode.NOT_FOUND: (404, "unknown id, another tenant's job or upload, or an unknown route"),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "the path exists, but not with this method"),
    ErrorCode.IDEMPOTENCY_CONFLICT: (409, "`Idempotency-Key` reused with a different body"),
    ErrorCode.JOB_FINISHED: (409, "the job is already completed, failed or cancelled"),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "request body over 64 KB (512 KB to complete an upload)"),
    ErrorCode.VALIDATION_ERROR: (422, "the body, path or query does not match the schema; the message names the field"),
    ErrorCode.UPLOAD_NOT_FOUND: (422, "no uploaded file for `upload_id` under your tenant"),
    ErrorCode.UPLOAD_TOO_LARGE: (422, "the uploaded file is larger than allowed or than declared"),
    ErrorCode.UPLOAD_INCOMPLETE: (422, "a multipart upload that was not completed: `POST /uploads/{id}/complete`"),
    ErrorCode.INVALID_UPLOAD_PARTS: (
        422,
        "the parts do not make the declared file: a wrong or missing ETag, parts out of order, a part too small",
    ),
    ErrorCode.INVALID_WEBHOOK_URL: (422, "`webhook_url` is not https, or names a host that is not public"),
    ErrorCode.RATE_LIMITED: (429, "too many requests: slow down and retry"),
    ErrorCode.INTERNAL_ERROR: (500, "a fault of the service; retrying may help"),
    ErrorCode.SERVICE_UNAVAILABLE: (503, "the job could not be queued: retry with the same `Idempotency-Key`"),
    ErrorCode.INVALID_MEDIA: (None, "a failed job: the input is not audio/video, or has no video for a video output"),
    ErrorCode.UNSUPPORTED_FORMAT: (None, "a failed job: a container or codec not on the allowlist, or a playlist"),
    ErrorCode.INPUT_TOO_LARGE: (
        None,
        "a failed job: the input's resolution, duration or stream count is over the limits",
    ),
    ErrorCode.PROCESSING_FAILED: (None, "a failed job: the worker failed on every attempt, or ran out of time"),
}


def operation(
    summary: str,
    status: int,
    model: Any = None,
    description: str = "",
    *,
    errors: tuple[ErrorCode, ...] = (),
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a Powertools route decorator: ``@app.post("/jobs", **operation(...))``.

    ``model`` is the body of the success answer (None: no body); ``errors`` are the codes this route answers
    besides those every route can meet; ``headers`` maps response header names to their description."""
    answer: dict[str, Any] = {"description": description or HTTPStatus(status).phrase}
    if model is not None:
        answer["content"] = {"application/json": {"model": model}}
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    return {
        "summary": summary,
        "responses": {status: answer},
        "openapi_extensions": {EXTENSION: [str(code) for code in errors]} if errors else None,
    }


def build() -> dict[str, Any]:
    """The document for every route of ``wiring.ROUTES``, from the resolvers of the functions serving them."""
    from videojobs import wiring

    document: dict[str, Any] = {"paths": {}, "components": {"schemas": {}}}
    plain = []
    for function in dict.fromkeys(route.function for route in wiring.ROUTES):
        module = importlib.import_module(wiring.FUNCTIONS[function].handler.rpartition(".")[0])
        resolver = getattr(module, "app", None)
        if resolver is None:
            plain.append(function)
        else:
            _merge(document, json.loads(resolver.get_openapi_json_schema(title=TITLE, version=VERSION)))
    for function in plain:  # a plain handler (no Powertools resolver): described here, by hand
        _merge(document, _plain_handlers(function), keep_existing_schemas=True)

    paths: dict[str, Any] = {}
    for route in wiring.ROUTES:
        served, found = _find(document["paths"], route.path, route.method.lower())
        operation_ = _rename_path_parameters(found, served, route.path)
        operation_["security"] = [{"apiKey": []}] if route.authorized else []
        operation_["tags"] = [route.path.strip("/").split("/")[0]]  # grouped by resource in Swagger UI
        operation_["responses"] = _responses(operation_, route.authorized)
        paths.setdefault(route.path, {})[route.method.lower()] = operation_

    schemas = document.get("components", {}).get("schemas", {})
    schemas["ErrorBody"] = _error_body_schema()
    schemas.update(_error_body_dependencies())
    # Powertools' own validation-error shapes are no longer referenced: ours replace them.
    schemas = {name: schemas[name] for name in sorted(_referenced(paths, schemas))}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION, "description": _description()},
        "servers": [
            {"url": "/", "description": "where these docs are served (the local stack: make run)"},
            {
                "url": "https://{api}.execute-api.{region}.amazonaws.com/v1",
                "description": "the deployed stack",
                "variables": {"api": {"default": "abc123"}, "region": {"default": "us-east-1"}},
            },
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key: `Authorization: Bearer vj_…`",
                }
            },
        },
    }


def _plain_handlers(function: str) -> dict[str, Any]:
    """Routes whose handler is a plain function (no resolver to ask), described from the models they answer."""
    if function != "events":
        raise LookupError(f"{function} has no Powertools resolver: describe its routes in videojobs/openapi.py")
    from videojobs.models import JobEvent

    schema = JobEvent.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    schemas = schema.pop("$defs", {}) | {"JobEvent": schema}
    events = {
        "summary": "Follow a job's events (Server-Sent Events)",
        "description": (
            "`text/event-stream`: each change of the job as `id: <version>`, `event: <type>` (`job.processing`, "
            "`job.progress`, `job.completed`, …) and `data: <JobEvent as JSON>`, ending after the terminal event. "
            "Behind API Gateway every request is a long poll of at most ~25 s: reconnect with `Last-Event-ID` "
            "(EventSource does so by itself, after the `retry:` delay) to get only newer events. Browsers' "
            "EventSource cannot send `Authorization`: read the stream with `fetch()` instead."
        ),
        "operationId": "job_events",
        "parameters": [
            {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}},
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
            "200": {
                "description": "events, as they happen",
                "content": {
                    "text/event-stream": {
                        "schema": {"type": "string"},
                        "x-event-data": {"$ref": "#/components/schemas/JobEvent"},
                    }
                },
            },
            "204": {"description": "the client has seen the terminal event already: stop reconnecting"},
        },
    }
    return {"paths": {"/jobs/{job_id}/events": {"get": events}}, "components": {"schemas": schemas}}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _merge(into: dict[str, Any], part: dict[str, Any], *, keep_existing_schemas: bool = False) -> None:
    """Add ``part``'s paths and schemas. Resolvers must agree on a schema's shape; a hand-made description yields
    to theirs (pydantic spells some schemas differently for serialization than Powertools does)."""
    for path, operations in part.get("paths", {}).items():
        into["paths"].setdefault(path, {}).update(operations)
    schemas = into["components"]["schemas"]
    for name, schema in part.get("components", {}).get("schemas", {}).items():
        if name in schemas and schemas[name] != schema and not keep_existing_schemas:
            raise ValueError(f"two functions describe schema {name} differently")
        schemas.setdefault(name, schema)


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _find(paths: dict[str, Any], wired: str, method: str) -> tuple[str, dict[str, Any]]:
    """The resolver's operation for a wired route: same shape, whatever the parameters are called."""
    for path, operations in paths.items():
        if _shape(path) == _shape(wired) and method in operations:
            return path, operations[method]
    raise LookupError(f"no handler serves {method.upper()} {wired}")


def _rename_path_parameters(found: dict[str, Any], served: str, wired: str) -> dict[str, Any]:
    renames = dict(zip(re.findall(r"\{([^}]+)\}", served), re.findall(r"\{([^}]+)\}", wired), strict=True))
    for parameter in found.get("parameters", []):
        if parameter["in"] == "path":
            parameter["name"] = renames[parameter["name"]]
    return found


def _responses(found: dict[str, Any], authorized: bool) -> dict[str, Any]:
    """The success answers as declared, and one answer per error status listing every code it can carry."""
    codes = [ErrorCode(code) for code in found.pop(EXTENSION, [])]
    codes += [ErrorCode.RATE_LIMITED, ErrorCode.INTERNAL_ERROR]
    if authorized:
        codes.append(ErrorCode.UNAUTHORIZED)
    parameters = found.get("parameters", [])
    if any(parameter["in"] == "path" for parameter in parameters):
        codes.append(ErrorCode.NOT_FOUND)
    if parameters:
        codes.append(ErrorCode.VALIDATION_ERROR)
    if "requestBody" in found:
        codes += [ErrorCode.INVALID_JSON, ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.VALIDATION_ERROR]

    answers = {status: answer for status, answer in found["responses"].items() if int(status) < 400}
    for answer in answers.values():
        if not any(answer.get("content", {}).values()):  # Powertools says "application/json" even for no body
            answer.pop("content", None)
    by_status: dict[int, list[ErrorCode]] = {}
    for code in dict.fromkeys(codes):
        status, _ = ERRORS[code]
        if status is None:
            raise ValueError(f"{code} is a job error, not an answer")
        by_status.setdefault(status, []).append(code)
    for status, listed in sorted(by_status.items()):
        answers[str(status)] = {
            "description": "; ".join(f"`{code}`: {ERRORS[code][1]}" for code in listed),
            "content": {
                "application/json": {
                    "schema": {"$ref": ERROR_SCHEMA},
                    "examples": {
                        str(code): {"value": {"error": {"code": str(code), "message": ERRORS[code][1]}}}
                        for code in listed
                    },
                }
            },
        }
    return answers


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """The names of the component schemas that ``paths`` use, directly or through other schemas."""
    prefix = "#/components/schemas/"
    found: set[str] = set()
    pending = [paths]
    while pending:
        text = json.dumps(pending.pop())
        for name in re.findall(re.escape(prefix) + r'([^"]+)"', text):
            if name not in found:
                found.add(name)
                pending.append(schemas[name])
    return found


def _error_body_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "ErrorBody",
        "required": ["error"],
        "additionalProperties": False,
        "description": "Every error answer: a stable `code` to branch on and a human `message`.",
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
    }


def _error_body_dependencies() -> dict[str, Any]:
    return {
        "ErrorDetail": {
            "type": "object",
            "title": "ErrorDetail",
            "required": ["code", "message"],
            "properties": {"code": {"$ref": "#/components/schemas/ErrorCode"}, "message": {"type": "string"}},
        },
        "ErrorCode": {
            "type": "string",
            "title": "ErrorCode",
            "enum": [str(code) for code in ERRORS],
            "description": "Stable error codes; see the table in the API description.",
        },
    }


def _description() -> str:
    rows = "\n".join(f"| {status or 'job'} | `{code}` | {when} |" for code, (status, when) in ERRORS.items())
    return (
        "Serverless API for long-running media jobs: upload a file straight to S3 with a presigned POST (or, "
        "for big files, presigned PUTs per part), submit a job (202 Accepted), then follow it until its outputs "
        "are ready. Every endpoint but `GET /health` needs `Authorization: Bearer <api key>`.\n\n"
        'Errors always look like `{"error": {"code": "<stable_snake_case>", "message": "..."}}`. '
        "A failed job carries the same shape in its `error`.\n\n"
        "| Status | Code | When |\n|---|---|---|\n" + rows + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m videojobs.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not current; write nothing")
    parser.add_argument("--output", type=Path, default=DOCUMENT, help="default: %(default)s")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"{args.output} is not current: run python -m videojobs.openapi", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
