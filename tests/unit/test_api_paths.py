"""Routing and public links behind each host API Gateway serves the API on: the execute-api stage URL, a custom
domain whose base-path mapping keeps ``/v1`` in the event's ``path``, and the local stack's root."""

from __future__ import annotations

from typing import Any

import pytest

from videojobs import api


def proxy_event(host: str, path: str, called_path: str) -> dict[str, Any]:
    return {
        "resource": "/jobs/{id}",
        "path": path,
        "httpMethod": "GET",
        "headers": {"Host": host, "X-Forwarded-Proto": "https"},
        "multiValueHeaders": {"Host": [host], "X-Forwarded-Proto": ["https"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"id": "job_1"},
        "stageVariables": None,
        "requestContext": {"path": called_path, "stage": "v1", "domainName": host, "requestId": "r"},
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize(
    ("host", "path", "called_path", "base_url"),
    [
        (
            "abc.execute-api.eu-west-1.amazonaws.com",
            "/jobs/job_1",
            "/v1/jobs/job_1",
            "https://abc.execute-api.eu-west-1.amazonaws.com/v1",
        ),
        ("api.example.com", "/v1/jobs/job_1", "/v1/jobs/job_1", "https://api.example.com/v1"),  # custom domain
        ("127.0.0.1:8080", "/jobs/job_1", "/jobs/job_1", "https://127.0.0.1:8080"),  # the local stack's root
    ],
)
def test_routes_resolve_and_links_keep_the_base_path_on_every_host(
    host: str, path: str, called_path: str, base_url: str
) -> None:
    app = api.new_resolver()

    @app.get("/jobs/<job_id>")
    def get_job(job_id: str) -> dict[str, str]:
        return {"id": job_id, "base_url": api.base_url(app)}

    answer = app.resolve(proxy_event(host, path, called_path), {})
    assert answer["statusCode"] == 200, answer["body"]
    assert answer["body"] == f'{{"id":"job_1","base_url":"{base_url}"}}'
