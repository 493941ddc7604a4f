"""The local stack and the CDK stack configure every resource the same way.

The local side is what the local stack really creates: ``infra.local.resources.create_resources`` on moto, read
back through the AWS APIs, and the event sources it polls (``infra.local.stack.sqs_subscriptions``, the stream
triggers). The other side is the synthesized template. Both are built from ``videojobs.wiring``, so a setting
spelled in one backend instead of declared there shows up here as a difference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.construct import VideoJobs
from infra.local import gateway as local_gateway
from infra.local import websocket as local_websocket
from infra.local.resources import Resources, create_resources
from infra.local.stack import sqs_subscriptions
from tests.infra.conftest import Synth
from videojobs import wiring

REGION = "eu-west-1"
SQS_DEFAULT_VISIBILITY_SECONDS = 30
SQS_DEFAULT_RETENTION_SECONDS = 4 * 24 * 3600
SQS_DEFAULT_BATCH_SIZE = 10
"""What CloudFormation applies when the template leaves a property out."""


@dataclass(frozen=True)
class Local:
    resources: Resources
    tables: dict[str, dict[str, Any]]
    time_to_live: dict[str, dict[str, Any]]
    lifecycle: dict[str, list[dict[str, Any]]]
    cors: dict[str, list[dict[str, Any]] | None]
    queues: dict[str, dict[str, str]]
    dead_letter_queues: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    """Every resource of the local stack, created on moto with the deployed settings and described back."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    with mock_aws():
        resources = create_resources(session.client, REGION)  # no visibility override: the deployed values
        dynamodb, s3, sqs = session.client("dynamodb"), session.client("s3"), session.client("sqs")
        cors: dict[str, list[dict[str, Any]] | None] = {}
        for name, bucket in resources.buckets.items():
            try:
                cors[name] = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
            except s3.exceptions.ClientError as error:
                assert error.response["Error"]["Code"] == "NoSuchCORSConfiguration"
                cors[name] = None
        yield Local(
            resources=resources,
            tables={
                name: dynamodb.describe_table(TableName=table)["Table"] for name, table in resources.tables.items()
            },
            time_to_live={
                name: dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
                for name, table in resources.tables.items()
            },
            lifecycle={
                name: s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
                for name, bucket in resources.buckets.items()
            },
            cors=cors,
            queues={
                name: sqs.get_queue_attributes(QueueUrl=ref.url, AttributeNames=["All"])["Attributes"]
                for name, ref in resources.queues.items()
            },
            dead_letter_queues={
                name: sqs.get_queue_attributes(QueueUrl=ref.dlq_url, AttributeNames=["All"])["Attributes"]
                for name, ref in resources.queues.items()
            },
        )


def _props(synth: Synth, construct: Any) -> dict[str, Any]:
    return synth.resource(construct)["Properties"]


# -- tables -------------------------------------------------------------------------------------------------


def _keys(schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(key["AttributeName"], key["KeyType"]) for key in schema]


@pytest.mark.parametrize("name", list(wiring.TABLES))
def test_table_keys_indexes_and_stream_agree(synth: Synth, service: VideoJobs, local: Local, name: str) -> None:
    deployed, created = _props(synth, service.tables[name]), local.tables[name]
    assert _keys(created["KeySchema"]) == _keys(deployed["KeySchema"])
    assert {(a["AttributeName"], a["AttributeType"]) for a in created["AttributeDefinitions"]} == {
        (a["AttributeName"], a["AttributeType"]) for a in deployed["AttributeDefinitions"]
    }
    assert created["BillingModeSummary"]["BillingMode"] == deployed["BillingMode"]

    def indexes(declared: list[dict[str, Any]]) -> dict[str, tuple[list[tuple[str, str]], dict[str, Any]]]:
        return {index["IndexName"]: (_keys(index["KeySchema"]), index["Projection"]) for index in declared}

    assert indexes(created.get("GlobalSecondaryIndexes", [])) == indexes(deployed.get("GlobalSecondaryIndexes", []))
    created_stream = created.get("StreamSpecification", {})
    deployed_stream = deployed.get("StreamSpecification", {})
    assert created_stream.get("StreamViewType") == deployed_stream.get("StreamViewType")


@pytest.mark.parametrize("name", list(wiring.TABLES))
def test_table_time_to_live_agrees(synth: Synth, service: VideoJobs, local: Local, name: str) -> None:
    deployed = _props(synth, service.tables[name]).get("TimeToLiveSpecification")
    created = local.time_to_live[name]
    if deployed is None:
        assert created["TimeToLiveStatus"] == "DISABLED"
    else:
        assert deployed["Enabled"] is True
        assert (created["TimeToLiveStatus"], created["AttributeName"]) == ("ENABLED", deployed["AttributeName"])


# -- buckets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(wiring.BUCKETS))
def test_bucket_lifecycle_rules_agree(synth: Synth, service: VideoJobs, local: Local, name: str) -> None:
    def normalized(expiration_days: int | None, abort_days: int, status: str) -> dict[str, Any]:
        return {"expire_days": expiration_days, "abort_multipart_days": abort_days, "status": status}

    deployed = [
        normalized(
            rule.get("ExpirationInDays"), rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"], rule["Status"]
        )
        for rule in _props(synth, service.buckets[name])["LifecycleConfiguration"]["Rules"]
    ]
    created = [
        normalized(
            rule.get("Expiration", {}).get("Days"),
            rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"],
            rule["Status"],
        )
        for rule in local.lifecycle[name]
    ]
    assert created == deployed


@pytest.mark.parametrize("name", list(wiring.BUCKETS))
def test_bucket_cors_agrees(synth: Synth, service: VideoJobs, local: Local, name: str) -> None:
    deployed = _props(synth, service.buckets[name]).get("CorsConfiguration", {}).get("CorsRules")
    created = local.cors[name]
    assert (created is None) == (deployed is None)
    renamed = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds"}  # CloudFormation's names -> S3's
    if deployed is not None:
        assert created == [{renamed.get(key, key): value for key, value in rule.items()} for rule in deployed]


# -- queues -------------------------------------------------------------------------------------------------


def _seconds(properties: dict[str, Any], name: str, default: int) -> int:
    return int(properties.get(name, default))


@pytest.mark.parametrize("name", list(wiring.QUEUES))
def test_queue_visibility_redrive_and_retention_agree(
    synth: Synth, service: VideoJobs, local: Local, name: str
) -> None:
    deployed, created = _props(synth, service.queues[name]), local.queues[name]
    assert int(created["VisibilityTimeout"]) == _seconds(deployed, "VisibilityTimeout", SQS_DEFAULT_VISIBILITY_SECONDS)
    assert int(created["MessageRetentionPeriod"]) == _seconds(
        deployed, "MessageRetentionPeriod", SQS_DEFAULT_RETENTION_SECONDS
    )
    redrive = json.loads(created["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == deployed["RedrivePolicy"]["maxReceiveCount"]
    # Each to its own dead-letter queue, on both sides.
    assert redrive["deadLetterTargetArn"] == local.resources.queues[name].dlq_arn
    dlq = synth.logical_id(service.dead_letter_queues[name])
    assert deployed["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}


@pytest.mark.parametrize("name", list(wiring.QUEUES))
def test_dead_letter_queue_visibility_and_retention_agree(
    synth: Synth, service: VideoJobs, local: Local, name: str
) -> None:
    deployed, created = _props(synth, service.dead_letter_queues[name]), local.dead_letter_queues[name]
    assert int(created["VisibilityTimeout"]) == _seconds(deployed, "VisibilityTimeout", SQS_DEFAULT_VISIBILITY_SECONDS)
    assert int(created["MessageRetentionPeriod"]) == _seconds(
        deployed, "MessageRetentionPeriod", SQS_DEFAULT_RETENTION_SECONDS
    )
    assert "RedrivePolicy" not in created and "RedrivePolicy" not in deployed


# -- event sources ------------------------------------------------------------------------------------------


def _mappings(synth: Synth) -> list[dict[str, Any]]:
    return [res["Properties"] for res in synth.of_type("AWS::Lambda::EventSourceMapping").values()]


def test_sqs_event_sources_agree(synth: Synth, service: VideoJobs) -> None:
    """Which function each queue feeds, with which batch size and batching window."""
    function_of = {synth.logical_id(fn): name for name, fn in service.functions.items()}
    queue_of: dict[str, wiring.QueueRef | wiring.DeadLetterQueueRef] = {
        synth.logical_id(queue): wiring.QueueRef(name) for name, queue in service.queues.items()
    } | {synth.logical_id(queue): wiring.DeadLetterQueueRef(name) for name, queue in service.dead_letter_queues.items()}
    deployed = {}
    for mapping in _mappings(synth):
        source = mapping["EventSourceArn"].get("Fn::GetAtt", [None])[0]
        if source not in queue_of:
            continue  # the stream trigger: test_stream_event_sources_agree
        # The local pollers hand a batch over as soon as a receive returns: no batching window is emulated.
        assert "MaximumBatchingWindowInSeconds" not in mapping
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]  # the pollers honour them
        key = (function_of[mapping["FunctionName"]["Ref"]], queue_of[source])
        deployed[key] = mapping.get("BatchSize", SQS_DEFAULT_BATCH_SIZE)
    polled = {(sub.function, sub.source): sub.batch_size for sub in sqs_subscriptions()}
    assert polled == deployed


def test_stream_event_sources_agree(synth: Synth, service: VideoJobs, local: Local) -> None:
    """The local stack's stream pollers run ``wiring.STREAM_TRIGGERS`` as they are (``StreamPoller``)."""
    table_of = {synth.logical_id(table): name for name, table in service.tables.items()}
    deployed = {}
    for mapping in _mappings(synth):
        source = mapping["EventSourceArn"].get("Fn::GetAtt", [None, None])
        if source[1] != "StreamArn":
            continue
        assert "MaximumBatchingWindowInSeconds" not in mapping and "TumblingWindowInSeconds" not in mapping
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        patterns = [json.loads(item["Pattern"]) for item in mapping["FilterCriteria"]["Filters"]]
        deployed[(table_of[source[0]], mapping["FunctionName"]["Ref"])] = {
            "batch_size": mapping["BatchSize"],
            "retry_attempts": mapping["MaximumRetryAttempts"],
            "max_record_age_seconds": mapping["MaximumRecordAgeInSeconds"],
            "bisect": mapping["BisectBatchOnFunctionError"],
            "event_names": [set(pattern["eventName"]) for pattern in patterns],
        }
    polled = {
        (trigger.table, synth.logical_id(service.functions[trigger.function])): {
            "batch_size": trigger.batch_size,
            "retry_attempts": trigger.retry_attempts,
            "max_record_age_seconds": trigger.max_record_age_seconds,
            "bisect": True,  # StreamPoller always splits a batch whose handler raised
            "event_names": [set(trigger.event_names)],
        }
        for trigger in wiring.STREAM_TRIGGERS
    }
    assert polled == deployed
    assert set(local.resources.stream_arns) == {trigger.table for trigger in wiring.STREAM_TRIGGERS}


def test_stream_failures_queue_keeps_records_as_long_as_dead_letter_queues(synth: Synth, service: VideoJobs) -> None:
    # Locally a record past its retries is logged instead (StreamPoller): only the retention is shared.
    assert service.stream_failures_queue is not None
    deployed = _props(synth, service.stream_failures_queue)
    assert deployed["MessageRetentionPeriod"] == wiring.DEAD_LETTER_RETENTION_SECONDS


# -- API Gateway ----------------------------------------------------------------------------------------------


def test_stage_names_agree(synth: Synth) -> None:
    (rest,) = synth.of_type("AWS::ApiGateway::Stage").values()
    (websocket,) = synth.of_type("AWS::ApiGatewayV2::Stage").values()
    assert rest["Properties"]["StageName"] == websocket["Properties"]["StageName"] == local_gateway.STAGE
    assert local_websocket.STAGE == local_gateway.STAGE


def test_authorizer_cache_agrees(synth: Synth) -> None:
    (authorizer,) = synth.of_type("AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["AuthorizerResultTtlInSeconds"] == local_gateway.AUTHORIZER_CACHE_SECONDS


def test_gateway_error_answers_agree(synth: Synth) -> None:
    """Each gateway response with a fixed answer is what the local gateway sends for the same error."""
    responses = {
        res["Properties"]["ResponseType"]: res["Properties"]
        for res in synth.of_type("AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == set(wiring.GATEWAY_ERRORS)
    fixed = 0
    for response_type, deployed in responses.items():
        if "StatusCode" not in deployed:
            continue  # DEFAULT_4XX / DEFAULT_5XX keep API Gateway's own status and message
        answer = local_gateway.gateway_error(response_type)
        assert answer.status_code == int(deployed["StatusCode"])
        assert json.loads(answer.body) == json.loads(deployed["ResponseTemplates"]["application/json"])
        sent = {name: answer.headers[name] for name in ("content-type", "retry-after") if name in answer.headers}
        assert {f"gatewayresponse.header.{name.title()}": f"'{value}'" for name, value in sent.items()} == deployed[
            "ResponseParameters"
        ]
        fixed += 1
    assert fixed == 6
