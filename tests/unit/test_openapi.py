"""openapi.json: current, valid, the wired routes exactly, and every error code documented; the routes that
handlers serve and the wiring's routes are the same, checked from both sides."""

from __future__ import annotations

import json
import re
from pathlib import Path

from openapi_spec_validator import validate

from tools.openapi import DOCUMENT, build, render, served_routes
from videojobs import wiring
from videojobs.errors import ERRORS
from videojobs.models import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def committed() -> dict:
    return json.loads(DOCUMENT.read_text())


def operations(document: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def test_openapi_json_is_what_the_code_generates():
    assert DOCUMENT.read_text() == render(build()), "openapi.json is stale: run `make openapi`"


def test_openapi_json_is_a_valid_openapi_3_document():
    validate(committed())


def shape(path: str) -> str:
    """``/jobs/{id}`` and ``/jobs/{job_id}`` alike: the wiring and a handler may name parameters differently."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_handler_route_is_wired_to_its_function_and_every_wired_route_is_served():
    served = {
        (function, method, shape(path)) for function in wiring.FUNCTIONS for method, path in served_routes(function)
    }
    wired = {(route.function, route.method, shape(route.path)) for route in wiring.ROUTES}
    assert served - wired == set(), "served by a handler but never deployed: add it to wiring.ROUTES"
    assert wired - served == set(), "deployed to a function whose handler does not serve it"


def test_it_describes_exactly_the_wired_routes_and_their_security():
    documented = operations(committed())
    assert set(documented) == {(route.method, route.path) for route in wiring.ROUTES}
    for route in wiring.ROUTES:
        security = documented[(route.method, route.path)]["security"]
        assert security == ([{"apiKey": []}] if route.authorized else []), route


def test_every_operation_documents_its_errors_in_the_error_shape():
    for (method, path), operation in operations(committed()).items():
        errors = {status: answer for status, answer in operation["responses"].items() if int(status) >= 400}
        assert "500" in errors and "429" in errors, (method, path)
        assert ("401" in errors) == bool(operation["security"]), (method, path)
        for answer in errors.values():
            content = answer["content"]["application/json"]
            assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
            assert {example["value"]["error"]["code"] for example in content["examples"].values()} <= set(ERRORS)


def test_every_error_code_is_documented_in_the_spec_and_the_readme():
    assert set(ERRORS) == set(ErrorCode), "give new codes their status in videojobs/errors.py ERRORS"
    assert committed()["components"]["schemas"]["ErrorCode"]["enum"] == [str(code) for code in ERRORS]
    readme = (ROOT / "README.md").read_text()
    assert [code for code in ErrorCode if f"`{code}`" not in readme] == []
    # The README's error table gives each answered code the status the code answers with.
    answered = {code: int(kind.status) for code, kind in ERRORS.items() if kind.status is not None}
    assert [code for code, status in answered.items() if f"| {status} | `{code}` |" not in readme] == []
