"""cdk-nag (AwsSolutions): no unacknowledged finding, and every acknowledgement on one resource with its reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, CfnResource, Stack, Validations
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from infra import nag
from infra.app import build
from infra.construct import VideoJobs
from tests.infra.conftest import Synth, Twice, new_app


def _violations(report_file: Path) -> list[str]:
    report = json.loads(report_file.read_text())
    return [
        f"{violation['ruleName']} at {construct['constructPath']}"
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]


@pytest.fixture(scope="module")
def nag_outdir(offline_synth: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nag")


def test_project_app_synthesizes_with_the_awssolutions_checks(nag_outdir: Path) -> None:
    # Exactly what `make synth` and `cdk deploy` run (infra/app.py main), which fail on any finding.
    app = new_app(nag_outdir)
    nag.enable_checks(app)
    build(app)
    try:
        app.synth()
    except RuntimeError as error:
        assert "ValidationFailed" in str(error)
        pytest.fail(
            "unacknowledged cdk-nag findings:\n" + "\n".join(_violations(nag_outdir / "validation-report.json"))
        )


def test_construct_with_every_prop_set_has_no_unacknowledged_finding(twice: Twice) -> None:
    # Both stacks: the construct with default props, and with every prop set.
    reports = [AwsSolutionsChecks().validate_scope(synth.stack) for synth in twice.stacks]
    found = [
        f"{violation.rule_name} at {resource.construct_path}"  # type: ignore[attr-defined]
        for report in reports
        for violation in report.violations
        for resource in violation.violating_resources
    ]
    assert found == []


def test_synth_fails_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    # The gate itself: a queue with no DLQ and no TLS policy must stop synth.
    app = App(outdir=str(tmp_path))
    nag.enable_checks(app)
    sqs.CfnQueue(Stack(app, "Careless"), "Queue")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    assert {line.split(" at ")[0] for line in _violations(tmp_path / "validation-report.json")} >= {
        "AwsSolutions-SQS3",
        "AwsSolutions-SQS4",
    }


# -- acknowledgements ---------------------------------------------------------------------------------------


def _acknowledgements(root: IConstruct) -> Iterator[tuple[IConstruct, str, str]]:
    """cdk-nag acknowledgements (CDK's own, like W3010 for a VPC's literal zones, are not ours to review)."""
    for node in root.node.find_all():
        for entry in node.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, reason in entry.data.items():
                    if rule.removeprefix("Annotation::").startswith(f"{nag.PACK}-"):
                        yield node, rule.removeprefix("Annotation::"), reason


@pytest.mark.parametrize("template", ["synth", "twice_defaults", "twice_custom"])
def test_every_acknowledgement_sits_on_one_resource_and_says_why(template: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(template)
    acknowledged = list(_acknowledgements(synth.stack))
    assert acknowledged
    for node, rule, reason in acknowledged:
        # A CloudFormation resource, never a stack, an app or a construct holding many resources.
        assert isinstance(node, CfnResource), (node.node.path, rule)
        assert len(reason.split()) >= 8, (node.node.path, rule, reason)


def test_acknowledged_rules_are_the_reviewed_ones(synth: Synth, service: VideoJobs) -> None:
    # A new kind of acknowledgement is a decision for review: list it here and in the README.
    rules = {rule.split("[")[0] for _, rule, _ in _acknowledgements(service)}
    assert rules <= {
        "AwsSolutions-IAM5",  # CDK grant wildcards on our own resources; X-Ray and ListStreams on "*"
        "AwsSolutions-IAM4",  # API Gateway's account-level logging role
        "AwsSolutions-APIG2",  # bodies validated by the handlers
        "AwsSolutions-APIG3",  # no WAF unless a web ACL is given
        "AwsSolutions-APIG4",  # GET /health; WebSocket routes (ticket checked at $connect)
        "AwsSolutions-COG4",  # API keys through a Lambda authorizer, not Cognito users
        "AwsSolutions-SQS3",  # the stream triggers' failure queue is a DLQ itself
        "AwsSolutions-ECS2",  # the Fargate task's environment: resource names and tuning, no secret
        "AwsSolutions-VPC7",  # the workers' VPC: no inbound traffic, AWS APIs only, so no flow logs
        "AwsSolutions-L1",  # zip functions pinned to Python 3.12, next to the tested 3.11 (test_runtime.py)
    }


# -- grant wildcards ----------------------------------------------------------------------------------------

OWNED = {
    "UploadsBucket1": nag.Owned("bucket", "UploadsBucket"),
    "JobsTable1": nag.Owned("table", "JobsTable"),
    "WebSocketApi1": nag.Owned("WebSocket API", "WebSocketApi"),
}
OBJECTS = {"Fn::Join": ["", [{"Fn::GetAtt": ["UploadsBucket1", "Arn"]}, "/*"]]}
BUCKET = {"Fn::GetAtt": ["UploadsBucket1", "Arn"]}
CONNECTIONS = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":execute-api:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
            ":",
            {"Ref": "WebSocketApi1"},
            "/v1/*/@connections/*",
        ],
    ]
}


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **s} for s in statements]}


def test_flatten_names_resources_as_cdk_nag_does() -> None:
    assert nag.flatten(OBJECTS) == "<UploadsBucket1.Arn>/*"
    assert nag.flatten(CONNECTIONS) == (
        "arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<WebSocketApi1>/v1/*/@connections/*"
    )
    assert nag.flatten({"Fn::Sub": "arn:${AWS::Partition}:s3:::x/*"}) == "arn:<AWS::Partition>:s3:::x/*"


def test_bucket_grant_wildcards_on_our_bucket_are_acknowledged() -> None:
    document = _document({"Action": ["s3:GetObject*", "s3:GetBucket*", "s3:List*"], "Resource": [BUCKET, OBJECTS]})
    reasons = nag.grant_wildcard_reasons(document, OWNED)
    assert set(reasons) == {
        "Action::s3:GetObject*",
        "Action::s3:GetBucket*",
        "Action::s3:List*",
        "Resource::<UploadsBucket1.Arn>/*",
    }
    assert all("UploadsBucket" in reason for reason in reasons.values())


@pytest.mark.parametrize(
    "statement",
    [
        {"Action": "s3:GetObject*", "Resource": "arn:aws:s3:::someone-elses-bucket/*"},
        {"Action": "s3:*", "Resource": OBJECTS},
        {"Action": "s3:GetObject", "Resource": "*"},
        {"Action": ["xray:PutTraceSegments", "s3:PutObject"], "Resource": "*"},
        {"Action": "dynamodb:Query", "Resource": "arn:aws:dynamodb:us-east-1:111122223333:table/Other/index/*"},
        {"Action": "execute-api:Invoke", "Resource": CONNECTIONS},
    ],
)
def test_other_wildcards_are_left_as_findings(statement: dict[str, Any]) -> None:
    assert nag.grant_wildcard_reasons(_document(statement), OWNED) == {}


def test_a_wildcard_is_acknowledged_only_if_every_statement_raising_it_is_a_grant() -> None:
    document = _document(
        {"Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
        {"Action": "sqs:SendMessage", "Resource": "*"},
    )
    assert "Resource::*" not in nag.grant_wildcard_reasons(document, OWNED)
    assert "Resource::*" in nag.grant_wildcard_reasons(_document(document["Statement"][0]), OWNED)


def test_table_indexes_stream_listing_and_websocket_connections_are_acknowledged() -> None:
    document = _document(
        {
            "Action": ["dynamodb:Query", "dynamodb:GetItem"],
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["JobsTable1", "Arn"]}, "/index/*"]]},
        },
        {"Action": "dynamodb:ListStreams", "Resource": "*"},
        {"Action": "execute-api:ManageConnections", "Resource": CONNECTIONS},
    )
    assert set(nag.grant_wildcard_reasons(document, OWNED)) == {
        "Resource::<JobsTable1.Arn>/index/*",
        "Resource::*",
        "Resource::" + nag.flatten(CONNECTIONS),
    }


def test_deny_statements_raise_no_finding() -> None:
    document = {"Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}
    assert nag.grant_wildcard_reasons(document, OWNED) == {}
