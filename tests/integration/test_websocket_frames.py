"""Whatever a client sends over the WebSocket, the function answers an error frame: it never raises (a raise is
a Lambda error, which the Errors alarm counts, and the client only sees ``Internal server error``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.websocket import handler as websocket_handler
from infra.local.lambda_context import LambdaContext
from videojobs.service.websocket import WebSocketDeps

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**37, max_value=10**60)
    | st.floats()
    | st.text(max_size=40)
    | st.text(min_size=2000, max_size=3000)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
subscribe_frames = st.fixed_dictionaries(
    {"action": st.just("subscribe")},
    optional={
        "job_id": st.sampled_from(["", "job_1", " ", "job_1\x00", "\ud800", "j" * 3000]) | json_values,
        "since_version": st.sampled_from([-1, 0, 2**63, 10**40, 1e400, "1", None]) | json_values,
    },
)
CONTEXT = LambdaContext(
    function_name="websocket",
    memory_limit_in_mb=256,
    timeout_seconds=30,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:websocket",
)
frames = subscribe_frames.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=300)


@pytest.fixture
def subscribed(websocket: WebSocketDeps) -> WebSocketDeps:
    """A connection ``c1`` subscribed to ``job_1``."""
    websocket.connections.add("job_1", "c1", "t1")
    return websocket


def subscribe(body: str | None) -> dict[str, Any]:
    event = {"requestContext": {"routeKey": "subscribe", "connectionId": "c1", "requestId": "r"}, "body": body}
    return websocket_handler.lambda_handler(event, CONTEXT)


def assert_frame(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["statusCode"] == 200
    frame = json.loads(reply["body"])
    assert frame["type"] in ("subscribed", "error"), frame
    if frame["type"] == "error":
        assert isinstance(frame["code"], str) and isinstance(frame["message"], str)
    return frame


MALFORMED = [
    '{"action": "subscribe", "job_id": ""}',
    '{"action": "subscribe", "job_id": "job_1", "since_version": 1e400}',
    '{"action": "subscribe", "job_id": "job_1", "since_version": ' + "9" * 40 + "}",
    '{"action": "subscribe", "job_id": "' + "j" * 3000 + '"}',
    '{"action": "subscribe", "job_id": "\\ud800"}',
    None,
    "[]",
]


def test_a_malformed_subscribe_gets_a_validation_error_frame(subscribed: WebSocketDeps) -> None:
    for body in MALFORMED:  # one moto set-up for all of them
        frame = assert_frame(subscribe(body))
        assert frame == frame | {"type": "error", "code": "validation_error"}, body


def test_a_valid_subscribe_still_answers_the_events(subscribed: WebSocketDeps) -> None:
    frame = assert_frame(subscribe('{"action": "subscribe", "job_id": "job_1", "since_version": 0}'))
    assert frame == frame | {"type": "subscribed", "job_id": "job_1", "events": [], "more": False}


@FUZZ
@given(body=frames)
def test_no_frame_makes_the_function_raise(subscribed: WebSocketDeps, body: str) -> None:
    assert_frame(subscribe(body))
