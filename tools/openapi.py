"""The API's OpenAPI 3 document, generated from the handlers' own declarations.

    python -m tools.openapi            # writes openapi.json at the repository root (make openapi)
    python -m tools.openapi --check    # exits 1 when openapi.json is not what the code generates

A route served by a Powertools resolver is described by the resolver, from the handler's parameters and its
``api.Operation`` (summary, success status and body, the error codes only it answers); a plain handler exports its
``operations.PlainOperation`` as ``OPERATION``. The errors that every route can meet (the key, the body, validation,
throttling) are added here from ``wiring.ROUTES``, with the status ``videojobs.errors.ERRORS`` gives each code, so
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
from types import ModuleType
from typing import Any

from videojobs import wiring
from videojobs.errors import ERRORS, status_of
from videojobs.models import ErrorCode
from videojobs.operations import ERRORS_EXTENSION, PlainOperation

TITLE = "videojobs"
VERSION = "1.0.0"
DOCUMENT = Path(__file__).resolve().parents[1] / "openapi.json"
ERROR_SCHEMA = "#/components/schemas/ErrorBody"
OPENAPI_VERSION = "3.1.0"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "string"}}}
"""Every 429 carries it, whether API Gateway (``rate_limited``) or a handler (a tenant's limit) answers."""


def handler_module(function: str) -> ModuleType:
    """The module of a function's Lambda handler (here, outside the Lambda package, importing handlers is fine)."""
    return importlib.import_module(wiring.FUNCTIONS[function].handler.rpartition(".")[0])


def described(function: str) -> dict[str, Any]:
    """What a function's handler says of its routes, as an OpenAPI document of paths and component schemas."""
    return _describe(function)[0]


def _describe(function: str) -> tuple[dict[str, Any], bool]:
    """The description, and whether it was written by hand (a plain handler's ``OPERATION``)."""
    module = handler_module(function)
    resolver = getattr(module, "app", None)
    if resolver is not None:
        return json.loads(resolver.get_openapi_json_schema(title=TITLE, version=VERSION)), False
    plain = getattr(module, "OPERATION", None)
    if not isinstance(plain, PlainOperation):
        raise LookupError(
            f"{module.__name__} has no Powertools resolver (app) and no operations.PlainOperation (OPERATION)"
        )
    schemas: dict[str, Any] = {}
    for model in plain.models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        schemas |= schema.pop("$defs", {}) | {model.__name__: schema}
    paths = {plain.path: {plain.method.lower(): plain.operation}}
    return {"paths": paths, "components": {"schemas": schemas}}, True


def served_routes(function: str) -> set[tuple[str, str]]:
    """(method, path) of every route the function's handler serves, paths in OpenAPI form (``/jobs/{job_id}``);
    none for a function that is not an HTTP handler (no resolver, no ``OPERATION``)."""
    module = handler_module(function)
    if not hasattr(module, "app") and not hasattr(module, "OPERATION"):
        return set()
    paths = described(function)["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item if method in HTTP_METHODS}


def build() -> dict[str, Any]:
    """The document for every route of ``wiring.ROUTES``, from the handlers of the functions serving them."""
    document: dict[str, Any] = {"paths": {}, "components": {"schemas": {}}}
    parts = [_describe(function) for function in dict.fromkeys(route.function for route in wiring.ROUTES)]
    for part, by_hand in sorted(parts, key=lambda described_: described_[1]):  # the resolvers' first
        _merge(document, part, keep_existing_schemas=by_hand)

    paths: dict[str, Any] = {}
    for route in wiring.ROUTES:
        served, found = _find(document["paths"], route.path, route.method.lower())
        operation = _rename_path_parameters(found, served, route.path)
        operation["security"] = [{"apiKey": []}] if route.authorized else []
        operation["tags"] = [route.path.strip("/").split("/")[0]]  # grouped by resource in Swagger UI
        operation["responses"] = _responses(operation, route.authorized)
        paths.setdefault(route.path, {})[route.method.lower()] = operation

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
    codes = [ErrorCode(code) for code in found.pop(ERRORS_EXTENSION, [])]
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
        by_status.setdefault(int(status_of(code)), []).append(code)
    for status, listed in sorted(by_status.items()):
        answers[str(status)] = {
            **({"headers": RETRY_AFTER} if status == HTTPStatus.TOO_MANY_REQUESTS else {}),
            "description": "; ".join(f"`{code}`: {ERRORS[code].when}" for code in listed),
            "content": {
                "application/json": {
                    "schema": {"$ref": ERROR_SCHEMA},
                    "examples": {
                        str(code): {"value": {"error": {"code": str(code), "message": ERRORS[code].when}}}
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
    rows = "\n".join(
        f"| {int(status) if status else 'job'} | `{code}` | {when} |" for code, (status, when) in ERRORS.items()
    )
    return (
        "Serverless API for long-running media jobs: upload a file straight to S3 with a presigned POST (or, "
        "for big files, presigned PUTs per part), submit a job (202 Accepted), then follow it until its outputs "
        "are ready. Every endpoint but `GET /health` needs `Authorization: Bearer <api key>`.\n\n"
        'Errors always look like `{"error": {"code": "<stable_snake_case>", "message": "..."}}`. '
        "A failed job carries the same shape in its `error`.\n\n"
        "| Status | Code | When |\n|---|---|---|\n" + rows + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not current; write nothing")
    parser.add_argument("--output", type=Path, default=DOCUMENT, help="default: %(default)s")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        if not args.output.exists() or args.output.read_text() != text:
            print(f"{args.output} is not current: run python -m tools.openapi", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
