"""moto in-process: every declared resource, created as the local stack creates it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from functions.websocket import handler as websocket_handler
from infra.local.atomic_dynamodb import make_dynamodb_atomic
from infra.local.resources import Resources, create_resources
from infra.local.strict_sqs import make_sqs_visibility_strict
from videojobs.aws import client, reset_clients
from videojobs.notification_store import ConnectionStore, EventLog, TicketStore
from videojobs.service.websocket import WebSocketDeps
from videojobs.settings import WebSocketSettings
from videojobs.tenant_counters import OpenStreams
from videojobs.tenant_limits import TenantLimits, TenantLimitStore

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    """Fake credentials first, then the mock, then clients (the order moto's docs ask for)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    reset_clients()
    make_dynamodb_atomic()
    make_sqs_visibility_strict()
    with mock_aws():
        resources = create_resources(client, REGION)
        for name, value in resources.environment().items():
            monkeypatch.setenv(name, value)
        yield resources
    reset_clients()


@pytest.fixture
def websocket(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> WebSocketDeps:
    """The ``websocket`` function's dependencies on the moto tables, installed as its handler's."""
    dynamodb = client("dynamodb")
    deps = WebSocketDeps(
        TicketStore(dynamodb, aws.tables["ws_tickets"]),
        ConnectionStore(dynamodb, aws.tables["ws_connections"]),
        EventLog(dynamodb, aws.tables["job_events"]),
        TenantLimitStore(dynamodb, aws.tables["tenants"], TenantLimits.defaults(WebSocketSettings.from_env())),
        OpenStreams(dynamodb, aws.tables["tenants"]),
    )
    monkeypatch.setattr(websocket_handler, "get_deps", lambda: deps)
    return deps
