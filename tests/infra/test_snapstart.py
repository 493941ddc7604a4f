"""SnapStart in the template: the API functions publish versions with SnapStart, and everything API Gateway invokes
(routes, the authorizer, the WebSocket routes) goes through their ``live`` alias, with the permissions on it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.construct import VideoJobs
from tests.infra.conftest import Synth
from videojobs import wiring

# A function whose responses API Gateway streams (the default deployment) runs videojobs.lambda_streaming as its
# runtime, which SnapStart does not snapshot: it starts cold (tests/infra/test_response_streaming.py).
STREAMED = {name for name, fn in wiring.FUNCTIONS.items() if fn.stream_handler}
SNAP_START = sorted(name for name in wiring.FUNCTIONS if wiring.snap_start(name) and name not in STREAMED)
COLD = sorted(name for name in wiring.FUNCTIONS if not wiring.snap_start(name) or name in STREAMED)
SNAP_START_MAX_EPHEMERAL_MIB = 512


def _mentions(value: Any, lid: str) -> bool:
    return f'"{lid}"' in json.dumps(value)


def _alias(synth: Synth, service: VideoJobs, name: str) -> tuple[str, dict[str, Any]]:
    alias = service.aliases[name]
    return synth.logical_id(alias), synth.resource(alias)


@pytest.mark.parametrize("name", SNAP_START)
def test_api_function_publishes_snap_start_versions_behind_a_live_alias(
    synth: Synth, service: VideoJobs, name: str
) -> None:
    function_lid = synth.logical_id(service.functions[name])
    function = synth.resource(service.functions[name])["Properties"]
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["Runtime"] == "python3.12"  # SnapStart: Python 3.12 and later, zip functions only
    assert function.get("EphemeralStorage", {"Size": 512})["Size"] <= SNAP_START_MAX_EPHEMERAL_MIB
    _, alias = _alias(synth, service, name)
    assert alias["Properties"]["Name"] == wiring.LIVE_ALIAS
    version_lid = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    version = synth.raw["Resources"][version_lid]
    assert version["Type"] == "AWS::Lambda::Version"
    assert version["Properties"]["FunctionName"] == {"Ref": function_lid}
    # A superseded version is deleted on deploy: each kept one's snapshot is billed for as long as it exists.
    assert version["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("name", COLD)
def test_consumers_and_the_image_function_start_cold_and_have_no_alias(
    synth: Synth, service: VideoJobs, name: str
) -> None:
    assert "SnapStart" not in synth.resource(service.functions[name])["Properties"]
    assert name not in service.aliases


def test_no_snap_start_function_has_provisioned_concurrency(synth: Synth) -> None:
    for alias in synth.of_type("AWS::Lambda::Alias").values():
        assert "ProvisionedConcurrencyConfig" not in alias["Properties"]


def test_every_route_and_the_authorizer_invoke_the_alias_not_latest(synth: Synth, service: VideoJobs) -> None:
    uris = [res["Properties"]["Integration"]["Uri"] for res in synth.of_type("AWS::ApiGateway::Method").values()]
    assert len(uris) == len(wiring.ROUTES)
    for function in {route.function for route in wiring.ROUTES} - STREAMED:
        alias_lid, _ = _alias(synth, service, function)
        assert any(_mentions(uri, alias_lid) for uri in uris), f"no method invokes {function}'s alias"
        function_lid = synth.logical_id(service.functions[function])
        assert not any(_mentions(uri, function_lid) for uri in uris), f"a method invokes {function} unaliased"
    authorizer = synth.resource(service.node.find_child("Authorizer"))["Properties"]
    alias_lid, _ = _alias(synth, service, wiring.AUTHORIZER)
    assert _mentions(authorizer["AuthorizerUri"], alias_lid)
    assert not _mentions(authorizer["AuthorizerUri"], synth.logical_id(service.functions[wiring.AUTHORIZER]))


def test_websocket_routes_invoke_the_alias(synth: Synth, service: VideoJobs) -> None:
    alias_lid, _ = _alias(synth, service, wiring.WEBSOCKET_API.function)
    integrations = synth.of_type("AWS::ApiGatewayV2::Integration").values()
    assert integrations
    for integration in integrations:
        assert _mentions(integration["Properties"]["IntegrationUri"], alias_lid)


def test_api_gateway_may_invoke_exactly_the_aliases(synth: Synth, service: VideoJobs) -> None:
    """The invoke permissions sit on the alias (a permission on the function would not cover it), and API
    Gateway may invoke no unaliased function."""
    invoked = {
        json.dumps(res["Properties"]["FunctionName"])
        for res in synth.of_type("AWS::Lambda::Permission").values()
        if res["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }
    expected = {json.dumps({"Ref": synth.logical_id(service.aliases[name])}) for name in SNAP_START}
    # A streamed function has no alias: API Gateway invokes the function (with InvokeWithResponseStream).
    expected |= {
        json.dumps({"Fn::GetAtt": [synth.logical_id(service.functions[name]), "Arn"]}) for name in sorted(STREAMED)
    }
    assert invoked == expected
