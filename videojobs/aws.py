"""boto3 clients, built when first needed (never at import time) and shared within a process.

The endpoint comes from the environment (``AWS_ENDPOINT_URL``), so the same code talks to AWS or to moto.
Each service the functions use has an overload, so callers get a typed client (``types-boto3``, a dev
dependency: the stubs are read by mypy only, never imported at run time).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Literal, cast, overload

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from types_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from types_boto3_dynamodb import DynamoDBClient
    from types_boto3_s3 import S3Client
    from types_boto3_sqs import SQSClient

    from videojobs.event_bus import PutEventsClient

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
# Without these, botocore presigns S3 with SigV2 on the global host, which buckets created since June 2020 refuse
# (and a bucket outside us-east-1 may answer with a redirect). Against an IP endpoint (the local stack) botocore
# falls back to path style by itself.
_S3_CONFIG = _CONFIG.merge(Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))


ServiceName = Literal["dynamodb", "s3", "sqs"]


@cache
def _client(service: ServiceName) -> DynamoDBClient | S3Client | SQSClient:
    return boto3.session.Session().client(service, config=_S3_CONFIG if service == "s3" else _CONFIG)


@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["sqs"]) -> SQSClient: ...
def client(service: ServiceName) -> DynamoDBClient | S3Client | SQSClient:
    """The process's shared client of ``service``."""
    return _client(service)


@cache
def websocket_management_client(websocket_url: str) -> ApiGatewayManagementApiClient:
    """A client of the management API (post to and close connections) of the WebSocket stage at
    ``websocket_url``: the stage's own URL over https (http for a local ``ws://`` stage). It overrides
    ``AWS_ENDPOINT_URL``, which points elsewhere (moto) in the local stack."""
    endpoint = "http" + websocket_url.removeprefix("ws") if websocket_url.startswith("ws") else websocket_url
    return boto3.session.Session().client("apigatewaymanagementapi", endpoint_url=endpoint, config=_CONFIG)


@cache
def events_client() -> PutEventsClient:
    """The process's EventBridge client (``events``)."""
    return cast("PutEventsClient", boto3.session.Session().client("events", config=_CONFIG))


def reset_clients() -> None:
    """Forget cached clients, e.g. after a test changed the endpoint or credentials."""
    _client.cache_clear()
    websocket_management_client.cache_clear()
    events_client.cache_clear()
