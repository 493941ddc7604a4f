"""The local stack serves what openapi.json documents, and the docs themselves."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.e2e.conftest import ROOT, RunningStack

pytestmark = pytest.mark.e2e

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def test_every_documented_operation_is_routed_by_the_gateway(stack: RunningStack):
    document = json.loads((ROOT / "openapi.json").read_text())
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        for method in set(item) & HTTP_METHODS:
            response = httpx.request(method.upper(), stack.url + concrete)
            if item[method]["security"]:  # without a key: 401 from the gateway, which knows the route
                assert response.status_code == 401, (method, path, response.text)
            else:  # the handler's own answer, whatever it is, and not the gateway's "no such route"
                missed = response.status_code == 405 or (
                    response.status_code == 404 and response.json()["error"]["message"] == "route not found"
                )
                assert not missed, (method, path, response.text)


def test_the_stack_serves_the_page_the_docs_and_the_document(stack: RunningStack):
    page = httpx.get(stack.url + "/")
    docs = httpx.get(stack.url + "/docs")
    document = httpx.get(stack.url + "/openapi.json")
    assert page.status_code == docs.status_code == document.status_code == 200
    assert '<script src="app.js"' in page.text and "swagger-ui-bundle.js" in docs.text
    assert document.json() == json.loads((ROOT / "openapi.json").read_text())
    # The page's configuration carries the dev key, so that it works as soon as it opens.
    assert httpx.get(stack.url + "/config.json").json() == {"api_key": stack.api_key}
