"""The events route as API Gateway streams it (the default), and as long polls (the prop ``sse_transport``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from infra.construct import STREAM_BOOTSTRAP, VideoJobs
from tests.infra.conftest import Synth, Twice
from videojobs import settings, wiring

ROOT = Path(__file__).resolve().parents[2]
STREAMED = [name for name, fn in wiring.FUNCTIONS.items() if fn.stream_handler]


def _methods_of(synth: Synth, service: VideoJobs, function: str) -> list[dict[str, Any]]:
    fn = synth.logical_id(service.invocable(function))  # the function, or its SnapStart alias
    return [
        res["Properties"]
        for res in synth.of_type("AWS::ApiGateway::Method").values()
        if f'"{fn}"' in json.dumps(res["Properties"]["Integration"]["Uri"])
    ]


def test_only_the_events_function_has_a_stream_handler_and_only_long_poll_routes_use_it() -> None:
    assert STREAMED == ["events"]
    assert {route.function for route in wiring.ROUTES if route.long_poll} == {"events"}


def test_the_events_route_streams_through_invoke_with_response_stream_for_up_to_15_minutes(
    synth: Synth, service: VideoJobs
) -> None:
    (method,) = _methods_of(synth, service, "events")
    integration = method["Integration"]
    assert integration["ResponseTransferMode"] == "STREAM"
    assert integration["TimeoutInMillis"] == 15 * 60 * 1000
    assert "/response-streaming-invocations" in json.dumps(integration["Uri"])
    # Every other route stays buffered.
    others = [
        res["Properties"]["Integration"]
        for res in synth.of_type("AWS::ApiGateway::Method").values()
        if res["Properties"] is not method
    ]
    assert all(other.get("ResponseTransferMode", "BUFFERED") == "BUFFERED" for other in others)
    assert all("/response-streaming-invocations" not in json.dumps(other["Uri"]) for other in others)


def test_the_streaming_function_runs_its_stream_handler_under_the_streaming_runtime(
    synth: Synth, service: VideoJobs
) -> None:
    props = synth.resource(service.functions["events"])["Properties"]
    assert props["Handler"] == wiring.FUNCTIONS["events"].stream_handler
    assert props["Timeout"] == 900  # the function outlives no stream, and no stream outlives it
    variables = props["Environment"]["Variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == f"/var/task/functions/events/{STREAM_BOOTSTRAP}"
    # The handler's settings come from API Gateway's limits: it ends before the cap, speaks before the idle limit.
    assert float(variables[settings.SSE_STREAM_SECONDS]) < wiring.RESPONSE_STREAMING.max_seconds
    assert float(variables[settings.SSE_KEEPALIVE_SECONDS]) <= wiring.RESPONSE_STREAMING.idle_seconds / 2
    # The wrapper is in the function's own folder (its code asset) and executable, as Lambda needs it.
    wrapper = ROOT / variables["AWS_LAMBDA_EXEC_WRAPPER"].removeprefix("/var/task/")
    assert wrapper.is_file() and os.access(wrapper, os.X_OK)
    assert "videojobs.lambda_streaming" in wrapper.read_text()
    assert f"import {props['Handler'].rpartition('.')[2]}" in wrapper.read_text()


def test_the_idle_limit_assumed_is_that_of_the_apis_endpoint_type(synth: Synth, service: VideoJobs) -> None:
    # CDK's RestApi is edge-optimized unless told otherwise: API Gateway closes its streams after 30 s idle.
    api = synth.resource(service.api)["Properties"]
    types = api.get("EndpointConfiguration", {}).get("Types", ["EDGE"])
    assert types == ["EDGE"] and wiring.RESPONSE_STREAMING.idle_seconds == 30


def test_the_long_poll_fallback_buffers_and_runs_the_buffered_handler(twice: Twice) -> None:
    (method,) = _methods_of(twice, twice.custom, "events")
    assert method["Integration"].get("ResponseTransferMode", "BUFFERED") == "BUFFERED"
    assert "TimeoutInMillis" not in method["Integration"]
    props = twice.resource(twice.custom.functions["events"])["Properties"]
    assert props["Handler"] == wiring.FUNCTIONS["events"].handler
    assert props["Timeout"] == wiring.FUNCTIONS["events"].timeout_seconds
    assert "AWS_LAMBDA_EXEC_WRAPPER" not in props["Environment"]["Variables"]
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}  # the managed runtime: SnapStart as usual
    (streamed,) = _methods_of(twice, twice.defaults, "events")
    assert streamed["Integration"]["ResponseTransferMode"] == "STREAM"
