"""The WebSocket API of the notifications (``wiring.WEBSOCKET_API``): routes, stage, and who may use it.

Every route goes to one function (``$connect`` checks the single-use ticket, so the routes carry no
authorizer). Functions that ``use`` the API get its ``wss://`` URL; those with write access may also post
to and close connections (``execute-api:ManageConnections`` on this stage): only notify.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import jsii
from aws_cdk import Names
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_logs as logs

from infra import nag
from videojobs import wiring

if TYPE_CHECKING:
    from infra.construct import VideoJobs


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """One JSON line per connection, message and disconnection in the log group."""

    def __init__(self, log_group: logs.ILogGroup):
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(
            json.dumps(
                {
                    "requestId": "$context.requestId",
                    "ip": "$context.identity.sourceIp",
                    "time": "$context.requestTime",
                    "routeKey": "$context.routeKey",
                    "eventType": "$context.eventType",
                    "status": "$context.status",
                    "connectionId": "$context.connectionId",
                    "error": "$context.error.message",
                }
            )
        )


def add_websocket_api(service: VideoJobs) -> apigwv2.WebSocketStage:
    """Create the WebSocket API and its stage in ``service``, wire the functions that use it; returns the stage."""
    decl = wiring.WEBSOCKET_API
    handler = service.invocable(decl.function)

    def route(route_key: str) -> apigwv2.WebSocketRouteOptions:
        name = route_key.strip("$").title()
        return apigwv2.WebSocketRouteOptions(
            integration=integrations.WebSocketLambdaIntegration(f"{name}Integration", handler),
            return_response=route_key in decl.reply_routes,
        )

    api = apigwv2.WebSocketApi(
        service,
        "WebSocketApi",
        api_name=Names.unique_resource_name(service, max_length=128, separator="-") + "-ws",
        description="videojobs: live job events",
        route_selection_expression="$request.body.action",
        connect_route_options=route("$connect") if "$connect" in decl.routes else None,
        disconnect_route_options=route("$disconnect") if "$disconnect" in decl.routes else None,
    )
    for route_key in decl.routes:
        if not route_key.startswith("$"):
            options = route(route_key)
            api.add_route(route_key, integration=options.integration, return_response=options.return_response)

    access_logs = logs.LogGroup(
        service,
        "WebSocketAccessLogs",
        retention=service.props.log_retention,
        removal_policy=service.props.removal_policy,
    )
    stage = apigwv2.WebSocketStage(
        service,
        "WebSocketStage",
        web_socket_api=api,
        stage_name=wiring.API_STAGE,
        auto_deploy=True,
        throttle=apigwv2.ThrottleSettings(
            rate_limit=service.props.api_rate_limit, burst_limit=service.props.api_burst_limit
        ),
        access_log_settings=_AccessLogs(access_logs),
    )

    for name, fn in wiring.FUNCTIONS.items():
        access = fn.uses.get(wiring.WEBSOCKET)
        if access is None:
            continue
        service.functions[name].add_environment(decl.env_var, stage.url)
        if access in ("write", "read_write"):
            stage.grant_management_api_access(service.functions[name])

    for child in api.node.find_all():
        if isinstance(child, apigwv2.CfnRoute):
            nag.acknowledge(
                child,
                "APIG4",
                "$connect authorizes each connection with a single-use ticket from POST /jobs/{id}/ws-ticket (an "
                "API-key-authorized route), checked by the handler; later routes only exist on such connections",
            )
    return stage
