"""The local stack's API Gateway emulation, over real HTTP, with fake handlers in place of the real functions."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from aws_lambda_powertools.utilities.parser.models import ApiGatewayAuthorizerRequest, APIGatewayProxyEventModel

from infra.local import LocalStack, gateway
from tests.integration.fake_functions import recorder as fake

FAKE = "tests.integration.fake_functions.handlers"
ALLOW = {"Authorization": "Bearer allow-gateway"}


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local") / "nested" / "stack.json"


@pytest.fixture(scope="module")
def stack(state_file: Path) -> Iterator[LocalStack]:
    with LocalStack(
        port=0,
        state_file=state_file,
        handlers={
            "authorizer": f"{FAKE}.authorizer",
            "status": f"{FAKE}.echo",
            "submit": f"{FAKE}.echo",
        },
        function_timeouts={"submit": 1},  # short, so that a handler can overrun it
    ) as started:
        yield started


@pytest.fixture
def http(stack: LocalStack) -> Iterator[httpx.Client]:
    fake.reset()
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        yield client


def echoed(response: httpx.Response) -> dict:
    return response.json()["event"]


# First in the module: it runs its own stack before the shared one starts (one stack per process at a time).
def test_stop_removes_the_state_file_and_restores_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBS_TABLE", "before")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    state = tmp_path / "stack.json"
    with LocalStack(port=0, state_file=state) as other:
        assert os.environ["JOBS_TABLE"] == "videojobs-jobs"
        assert os.environ["AWS_ENDPOINT_URL"] == other.moto_endpoint
        assert state.exists()

    assert not state.exists()
    assert os.environ["JOBS_TABLE"] == "before"
    assert "AWS_ENDPOINT_URL" not in os.environ


def test_route_path_and_query_parameters_reach_the_handler_as_a_proxy_event(http: httpx.Client) -> None:
    response = http.get("/jobs/job%201", params=[("a", "1"), ("a", "2"), ("empty", "")], headers=ALLOW)

    assert response.status_code == 201
    event = echoed(response)
    APIGatewayProxyEventModel.model_validate(event)
    assert event["resource"] == "/jobs/{id}"
    assert event["path"] == "/jobs/job 1"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "job 1"}
    assert event["queryStringParameters"] == {"a": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "empty": [""]}
    assert event["headers"]["Authorization"] == "Bearer allow-gateway"
    assert event["multiValueHeaders"]["Authorization"] == ["Bearer allow-gateway"]
    assert event["body"] is None and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert (context["stage"], context["apiId"], context["path"]) == ("v1", "local", "/jobs/job 1")
    assert context["resourcePath"] == "/jobs/{id}"
    assert context["httpMethod"] == "GET"
    assert context["identity"]["sourceIp"] == "127.0.0.1"


def test_handler_gets_a_lambda_context_from_the_declared_function(http: httpx.Client) -> None:
    http.get("/jobs", headers=ALLOW)

    [info] = fake.contexts("api")
    assert info["function_name"] == "videojobs-status"
    assert info["invoked_function_arn"].endswith(":function:videojobs-status")
    assert info["memory_limit_in_mb"] == 512
    assert 0 < info["remaining_ms"] <= 29_000


def test_no_query_string_and_no_path_parameters_are_null(http: httpx.Client) -> None:
    event = echoed(http.get("/jobs", headers=ALLOW))

    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None


def test_bodies_are_text_when_no_binary_media_type_matches(http: httpx.Client) -> None:
    # The API declares no binaryMediaTypes: API Gateway passes every body as text, never as base64.
    text = echoed(http.post("/jobs", content='{"x": "é"}', headers=ALLOW))
    binary = echoed(http.post("/uploads", content=b"\xff\x00\xfe", headers=ALLOW))

    assert (text["body"], text["isBase64Encoded"]) == ('{"x": "é"}', False)
    assert binary["isBase64Encoded"] is False
    assert binary["body"] == "\ufffd\x00\ufffd"


def test_binary_media_types_decide_base64_both_ways() -> None:
    assert gateway._media_type_matches("image/png; q=1", ["image/*"])
    assert not gateway._media_type_matches("application/json", ["image/*"])
    assert gateway._body_text(b"\xff", True) == base64.b64encode(b"\xff").decode()
    encoded = {"statusCode": 200, "body": base64.b64encode(b"\x00").decode(), "isBase64Encoded": True}
    assert gateway._to_response("f", encoded, binary=True).body == b"\x00"
    assert gateway._to_response("f", encoded, binary=False).body == encoded["body"].encode()


def test_response_status_headers_and_multi_value_headers_reach_the_client(http: httpx.Client) -> None:
    response = http.get("/jobs", headers=ALLOW)

    assert response.status_code == 201
    assert response.headers["x-single"] == "one"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_base64_response_body_stays_base64_without_binary_media_types(http: httpx.Client) -> None:
    response = http.get("/jobs", headers={**ALLOW, "X-Fake": "binary", "Accept": "application/octet-stream"})

    assert base64.b64decode(response.content) == b"\x00\xff\x10"


def test_unauthorized_route_skips_the_authorizer(http: httpx.Client) -> None:
    response = http.get("/health")

    assert response.status_code == 201
    assert "authorizer" not in echoed(response)["requestContext"]
    assert fake.calls("authorizer") == []


def test_missing_authorization_is_401_without_calling_the_authorizer(http: httpx.Client) -> None:
    response = http.get("/jobs")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert fake.calls("authorizer") == []
    assert fake.calls("api") == []


def test_authorizer_raising_unauthorized_is_401_and_a_function_error(stack: LocalStack, http: httpx.Client) -> None:
    errors = stack.functions.errors("authorizer")
    response = http.get("/jobs", headers={"Authorization": "Bearer nobody"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert fake.calls("api") == []
    # AWS's documented way to a 401, and why our authorizer answers Deny instead: Lambda counts the raise.
    assert stack.functions.errors("authorizer") == errors + 1


def test_authorizer_deny_is_401(stack: LocalStack, http: httpx.Client) -> None:
    errors = stack.functions.errors()
    response = http.get("/jobs", headers={"Authorization": "Bearer deny"})

    assert stack.functions.errors() == errors
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "unauthorized", "message": "missing or invalid API key"}}
    assert fake.calls("api") == []


def test_authorizer_gets_a_request_event_with_the_method_arn(http: httpx.Client) -> None:
    http.get("/jobs/abc", params={"q": "1"}, headers={"Authorization": "Bearer allow-arn"})

    [event] = fake.calls("authorizer")
    ApiGatewayAuthorizerRequest.model_validate(event)
    assert event["type"] == "REQUEST"
    assert event["methodArn"] == "arn:aws:execute-api:us-east-1:123456789012:local/v1/GET/jobs/abc"
    assert event["resource"] == "/jobs/{id}"
    assert event["pathParameters"] == {"id": "abc"}
    assert event["queryStringParameters"] == {"q": "1"}


def test_authorizer_context_reaches_the_handler_as_strings(http: httpx.Client) -> None:
    event = echoed(http.get("/jobs", headers={"Authorization": "Bearer allow-context"}))

    authorizer = event["requestContext"]["authorizer"]
    assert authorizer["principalId"] == "user-allow-context"
    assert authorizer["tenant_id"] == "allow-context"
    assert (authorizer["count"], authorizer["admin"]) == ("3", "true")


def test_authorizer_result_is_cached_per_authorization_header(http: httpx.Client) -> None:
    token = {"Authorization": "Bearer allow-cached"}
    first = http.get("/jobs", headers=token)
    second = http.get("/jobs/other", headers=token)
    other = http.get("/jobs", headers={"Authorization": "Bearer allow-other"})

    assert [first.status_code, second.status_code, other.status_code] == [201, 201, 201]
    assert len(fake.calls("authorizer")) == 2
    assert echoed(second)["requestContext"]["authorizer"]["tenant_id"] == "allow-cached"


def test_unknown_path_is_404_json(http: httpx.Client) -> None:
    response = http.get("/nope/nothing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_known_path_with_another_method_is_405_json(http: httpx.Client) -> None:
    response = http.delete("/jobs/abc", headers=ALLOW)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET, PATCH"


def test_stage_prefix_is_served_too_and_kept_in_the_request_context(http: httpx.Client) -> None:
    event = echoed(http.get("/v1/health"))

    assert event["path"] == "/health"
    assert event["requestContext"]["path"] == "/v1/health"


def test_handler_exception_is_a_counted_function_error_and_502(stack: LocalStack, http: httpx.Client) -> None:
    errors = stack.functions.errors("status")
    response = http.get("/jobs", headers={**ALLOW, "X-Fake": "crash"})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "internal_error"
    assert stack.functions.errors("status") == errors + 1


@pytest.mark.parametrize("mode", ["huge", "not-json"])
def test_a_result_lambda_cannot_send_back_is_502(stack: LocalStack, http: httpx.Client, mode: str) -> None:
    errors = stack.functions.errors("status")
    response = http.get("/jobs", headers={**ALLOW, "X-Fake": mode})

    assert response.status_code == 502
    assert stack.functions.errors("status") == errors + 1


def test_a_handler_past_its_timeout_is_a_function_error_and_502(stack: LocalStack, http: httpx.Client) -> None:
    errors = stack.functions.errors("submit")
    try:
        response = http.post("/jobs", headers={**ALLOW, "X-Fake": "hang"})
    finally:
        fake.release.set()

    assert response.status_code == 502
    assert stack.functions.errors("submit") == errors + 1


def test_body_over_lambdas_6_mb_is_413_without_calling_the_handler(http: httpx.Client) -> None:
    # Under API Gateway's 10 MB, but the event would be over Lambda's 6 MB invoke limit.
    response = http.post("/jobs", content=b"x" * (7 * 1024 * 1024), headers=ALLOW)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert fake.calls("api") == []


def test_malformed_proxy_response_is_502(http: httpx.Client) -> None:
    response = http.get("/jobs", headers={**ALLOW, "X-Fake": "malformed"})

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "internal_error"


def test_body_over_10_mb_is_413_without_calling_the_handler(http: httpx.Client) -> None:
    response = http.post("/jobs", content=b"x" * (10 * 1024 * 1024 + 1), headers=ALLOW)

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert fake.calls("api") == []


def test_state_file_tells_other_processes_how_to_reach_the_stack(stack: LocalStack, state_file: Path) -> None:
    state = json.loads(state_file.read_text())

    assert state["url"] == stack.url
    assert state["api_key"] == stack.api_key
    assert state["env"]["JOBS_TABLE"] == "videojobs-jobs"
    assert state["env"]["AWS_ENDPOINT_URL"] == state["moto_endpoint"]
    assert state["env"]["JOBS_QUEUE_URL"].endswith("/videojobs-jobs")


def test_dev_api_key_belongs_to_the_dev_tenant(stack: LocalStack) -> None:
    from videojobs.api_keys import ApiKeyStore
    from videojobs.ids import hash_api_key

    keys = ApiKeyStore(stack.client("dynamodb"), stack.env["API_KEYS_TABLE"])

    assert keys.tenant_for(hash_api_key(stack.api_key)) == "dev"


def test_route_handlers_run_one_at_a_time(stack: LocalStack, http: httpx.Client) -> None:
    # Powertools' resolver keeps the current event in class state: concurrent handlers would mix requests up.
    def slow_request(_: int) -> int:
        return httpx.get(f"{stack.url}/health", headers={"X-Fake": "slow"}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(pool.map(slow_request, range(3)))

    assert statuses == [201, 201, 201]
    assert fake.max_active == 1


# --- usage plans: each tenant's request rate --------------------------------------------------------------------


def test_usage_plan_throttle_is_a_token_bucket_per_key_and_refuses_keys_in_no_plan() -> None:
    """API Gateway's throttle of a usage plan: ``burst`` requests at once, then ``rate`` a second; a key in no
    plan of the stage is refused (403 INVALID_API_KEY). A key moved to another plan starts a new bucket."""
    plans = {"fast-key": (1.0, 2), "slow-key": (0.5, 1)}
    now = [100.0]

    class Plans:
        def throttle_for(self, key: str) -> tuple[float, int] | None:
            return plans.get(key)

    throttle = gateway.UsagePlanThrottle(Plans(), clock=lambda: now[0])  # type: ignore[arg-type]
    assert [throttle.check("fast-key") for _ in range(3)] == [None, None, "THROTTLED"]
    assert throttle.check("slow-key") is None  # buckets are per key
    now[0] += 1.0
    assert [throttle.check("fast-key") for _ in range(2)] == [None, "THROTTLED"]
    plans["fast-key"] = (1.0, 3)  # set-limits moved the key to its own plan
    assert [throttle.check("fast-key") for _ in range(4)] == [None, None, None, "THROTTLED"]
    assert throttle.check("unknown-key") == throttle.check(None) == "INVALID_API_KEY"
    answer = gateway.gateway_error("THROTTLED")
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "1")
