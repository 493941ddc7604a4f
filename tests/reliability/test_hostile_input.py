"""Hostile input: generated random bodies and parameters against every JSON endpoint of the running local
stack, over real HTTP. Proves: no input makes the API answer 5xx, and every 4xx carries the documented error
body ``{"error": {"code", "message"}}`` as JSON.

1,000 examples per endpoint (hypothesis), about 25 s in all.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXAMPLES = 1000
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # real HTTP: timing is noise, not a property
    database=None,  # nothing written into the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def near(fields: dict[str, st.SearchStrategy]) -> st.SearchStrategy:
    """Objects with the endpoint's own field names (each maybe missing) holding random or plausible values,
    so the generator reaches the validators behind the first ``missing field`` check."""
    return st.fixed_dictionaries({}, optional={name: values | json_values for name, values in fields.items()})


upload_bodies = near(
    {
        "filename": st.text(max_size=300),
        "content_type": st.sampled_from(["video/mp4", "audio/mpeg", "text/html", "video/"]) | st.text(max_size=20),
        "size_bytes": st.integers(),
    }
)
output_specs = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["mp4", "hls", "thumbnail", "webm", ""]),
        "height": st.integers(),
        "renditions": st.lists(st.integers(), max_size=4),
    },
)
job_bodies = near(
    {
        "input": st.fixed_dictionaries({}, optional={"upload_id": st.from_regex(r"upl_[0-9a-f]{32}", fullmatch=True)}),
        "outputs": st.lists(output_specs | json_values, max_size=4),
        "webhook_url": st.sampled_from(["https://example.com/h", "http://127.0.0.1/x", "ftp://x"]) | st.text(),
        "webhook_events": st.lists(st.text(max_size=20), max_size=4),
        "metadata": json_values,
    }
)
# UTF-8 only: a body that is not UTF-8 gets a 500 today (see test_body_that_is_not_utf8_is_invalid_json).
raw_bodies = st.text(max_size=200).map(str.encode)


def encoded(body: object) -> bytes:
    return json.dumps(body).encode()


bodies = lambda structured: structured.map(encoded) | json_values.map(encoded) | raw_bodies  # noqa: E731


def assert_well_formed(response: httpx.Response) -> None:
    """The property every answer must have, whatever was sent."""
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"], response.text
        assert isinstance(error["message"], str) and error["message"], response.text


def post(api: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return api.post(path, content=body, headers={"Content-Type": "application/json"})


@FUZZ
@given(body=bodies(upload_bodies))
def test_create_upload_never_5xx(api: httpx.Client, body: bytes):
    """POST /uploads answers any body with 2xx or a well-formed 4xx."""
    assert_well_formed(post(api, "/uploads", body))


@FUZZ
@given(body=bodies(job_bodies))
def test_submit_job_never_5xx(api: httpx.Client, body: bytes):
    """POST /jobs answers any body with 2xx or a well-formed 4xx (no generated upload id exists, so no job runs)."""
    assert_well_formed(post(api, "/jobs", body))


@FUZZ
@given(
    params=st.fixed_dictionaries(
        {},
        optional={
            "limit": st.integers().map(str) | st.text(max_size=10),
            "cursor": st.text(max_size=1100),
            "status": st.sampled_from(["queued", "completed", "QUEUED", ""]) | st.text(max_size=10),
        },
    )
    | st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=4)
)
def test_list_jobs_never_5xx(api: httpx.Client, params: dict[str, str]):
    """GET /jobs answers any query string (bad limits, forged cursors, unknown statuses) without a 5xx."""
    assert_well_formed(api.get("/jobs", params=params))


@FUZZ
@given(job_id=st.text(min_size=1, max_size=80), body=bodies(json_values))
def test_cancel_never_5xx(api: httpx.Client, job_id: str, body: bytes):
    """POST /jobs/{id}/cancel answers any id (percent-encoded, including ``/`` and control characters) and any
    body without a 5xx."""
    assert_well_formed(post(api, f"/jobs/{quote(job_id, safe='')}/cancel", body))


def test_body_that_is_not_utf8_is_invalid_json(api: httpx.Client):
    """A body that is not UTF-8 (found by the generator: ``b"\\x80"``) is bad input: 400 invalid_json."""
    for path in ("/uploads", "/jobs"):
        response = post(api, path, b"\x80")
        assert_well_formed(response)
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_json")
