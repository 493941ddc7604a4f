"""The notifications in the synthesized template: delivery queue and DLQ, the WebSocket API and its stage,
who may manage connections, and the stream trigger that feeds notify."""

from __future__ import annotations

import json
from typing import Any

from infra.construct import VideoJobs
from tests.infra.conftest import Synth
from videojobs import settings, wiring


def _role_policies(synth: Synth, function: str) -> list[dict[str, Any]]:
    role = synth.logical_id(synth.stack.service.functions[function].role)  # type: ignore[attr-defined]
    return [
        res["Properties"]["PolicyDocument"]
        for res in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role} in res["Properties"]["Roles"]
    ]


def _allows(synth: Synth, function: str, action: str) -> list[Any]:
    """Resources the function's role may perform ``action`` on."""
    found = []
    for document in _role_policies(synth, function):
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if statement["Effect"] == "Allow" and action in actions:
                found.append(statement["Resource"])
    return found


def test_delivery_queue_redrives_to_its_dlq_which_the_deliverer_may_write(synth: Synth, service: VideoJobs) -> None:
    queue, dlq = service.queues["deliveries"], service.dead_letter_queues["deliveries"]
    props = synth.resource(queue)["Properties"]
    assert props["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [synth.logical_id(dlq), "Arn"]}
    assert props["VisibilityTimeout"] >= 6 * wiring.FUNCTIONS["deliver"].timeout_seconds
    deliver = synth.resource(service.functions["deliver"])["Properties"]["Environment"]["Variables"]
    assert deliver[settings.DELIVERIES_DLQ_URL] == {"Ref": synth.logical_id(dlq)}
    assert {"Fn::GetAtt": [synth.logical_id(dlq), "Arn"]} in _allows(synth, "deliver", "sqs:SendMessage")
    # Retries are hidden messages: the deliverer changes visibility on its own queue.
    assert {"Fn::GetAtt": [synth.logical_id(queue), "Arn"]} in _allows(synth, "deliver", "sqs:ChangeMessageVisibility")


def test_websocket_api_routes_every_route_to_the_websocket_function(synth: Synth, service: VideoJobs) -> None:
    ((api_id, api),) = synth.of_type("AWS::ApiGatewayV2::Api").items()
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = {
        res["Properties"]["RouteKey"]: (lid, res["Properties"])
        for lid, res in synth.of_type("AWS::ApiGatewayV2::Route").items()
    }
    assert set(routes) == set(wiring.WEBSOCKET_API.routes)
    integrations = synth.of_type("AWS::ApiGatewayV2::Integration")
    function = synth.logical_id(service.invocable(wiring.WEBSOCKET_API.function))  # its SnapStart alias
    for route_key, (_, props) in routes.items():
        assert props["ApiId"] == {"Ref": api_id}
        integration = integrations[props["Target"]["Fn::Join"][1][1]["Ref"]]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert f'"{function}"' in json.dumps(integration["IntegrationUri"]), route_key
    # The reply to subscribe goes back to the client.
    replies = {
        res["Properties"]["RouteId"]["Ref"] for res in synth.of_type("AWS::ApiGatewayV2::RouteResponse").values()
    }
    assert replies == {routes[route][0] for route in wiring.WEBSOCKET_API.reply_routes}


def test_websocket_stage_deploys_itself_logs_access_and_throttles(synth: Synth) -> None:
    (stage,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "v1" and props["AutoDeploy"] is True
    assert "DestinationArn" in props["AccessLogSettings"]
    assert json.loads(props["AccessLogSettings"]["Format"])["connectionId"] == "$context.connectionId"
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


def test_only_notify_may_manage_connections(synth: Synth) -> None:
    managers = {name for name in wiring.FUNCTIONS if _allows(synth, name, "execute-api:ManageConnections")}
    assert managers == {"notify"}
    (resource,) = _allows(synth, "notify", "execute-api:ManageConnections")
    assert "/@connections/*" in json.dumps(resource)


def test_functions_that_use_the_websocket_api_get_its_wss_url(synth: Synth, service: VideoJobs) -> None:
    users = {name for name, fn in wiring.FUNCTIONS.items() if wiring.WEBSOCKET in fn.uses}
    assert users == {"notify", "notifications"}
    (api_id,) = synth.of_type("AWS::ApiGatewayV2::Api")
    for name in wiring.FUNCTIONS:
        variables = synth.resource(service.functions[name])["Properties"]["Environment"]["Variables"]
        url = variables.get(settings.WEBSOCKET_URL)
        assert (url is not None) == (name in users), name
        if url is not None:
            text = json.dumps(url)
            assert text.startswith('{"Fn::Join": ["", ["wss://"') and api_id in text and "/v1" in text


def test_notify_reads_the_jobs_stream_filtered_with_bisect_retries_age_and_a_failure_destination(
    synth: Synth, service: VideoJobs
) -> None:
    stream = {"Fn::GetAtt": [synth.logical_id(service.tables["jobs"]), "StreamArn"]}
    notify = {"Ref": synth.logical_id(service.functions["notify"])}
    (mapping,) = [
        res["Properties"]
        for res in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if res["Properties"]["FunctionName"] == notify and res["Properties"]["EventSourceArn"] == stream
    ]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert 0 < mapping["MaximumRecordAgeInSeconds"] <= 24 * 3600
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "OnFailure" in mapping["DestinationConfig"]
    (criteria,) = mapping["FilterCriteria"]["Filters"]
    assert sorted(json.loads(criteria["Pattern"])["eventName"]) == ["INSERT", "MODIFY"]  # deletes are no events


def test_notification_tables_keep_items_only_as_long_as_needed(synth: Synth, service: VideoJobs) -> None:
    for name in ("job_events", "webhook_deliveries", "ws_connections", "ws_tickets"):
        props = synth.resource(service.tables[name])["Properties"]
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}, name
    indexes = synth.resource(service.tables["ws_connections"])["Properties"]["GlobalSecondaryIndexes"]
    assert [index["IndexName"] for index in indexes] == ["by_connection"]
