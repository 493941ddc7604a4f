"""Least privilege: one role per function, no managed policies, grants only on what each function uses."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from infra.construct import VideoJobs
from infra.nag import RESOURCELESS_ACTIONS
from tests.infra.conftest import Synth, Twice
from videojobs import wiring

LAMBDA_TRUST = {
    "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}],
    "Version": "2012-10-17",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(synth: Synth, role: IConstruct) -> list[dict[str, Any]]:
    """The Allow statements of every IAM policy attached to ``role``."""
    ref = {"Ref": synth.logical_id(role)}
    return [
        statement
        for res in synth.of_type("AWS::IAM::Policy").values()
        if ref in res["Properties"]["Roles"]
        for statement in res["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
    ]


def _mentions(statement: dict[str, Any], lid: str) -> bool:
    return f'"{lid}"' in json.dumps(statement["Resource"])


def _cfn_under(scope: IConstruct, cfn_type: type) -> list[Any]:
    return [node for node in scope.node.find_all() if isinstance(node, cfn_type)]


def test_every_function_has_a_role_of_its_own_trusting_only_lambda(synth: Synth, service: VideoJobs) -> None:
    roles = {name: synth.logical_id(fn.role) for name, fn in service.functions.items()}  # type: ignore[arg-type]
    assert len(set(roles.values())) == len(wiring.FUNCTIONS)
    for lid in roles.values():
        assert synth.raw["Resources"][lid]["Properties"]["AssumeRolePolicyDocument"] == LAMBDA_TRUST


def test_no_role_of_the_construct_has_a_managed_policy_but_api_gateways_logging_role(
    synth: Synth, service: VideoJobs
) -> None:
    # AWSLambdaBasicExecutionRole would let a function write to any log group; the functions' own grants do.
    logging_role = synth.logical_id(service.api.node.find_child("CloudWatchRole"))
    roles = [synth.stack.get_logical_id(role) for role in _cfn_under(service, iam.CfnRole)]
    assert len(roles) > len(wiring.FUNCTIONS)
    for lid in roles:
        managed = synth.raw["Resources"][lid]["Properties"].get("ManagedPolicyArns")
        assert managed is None or lid == logging_role, lid


def test_function_writes_logs_to_its_own_log_group_only(synth: Synth, service: VideoJobs) -> None:
    for name, fn in service.functions.items():
        log_group = synth.resource(fn)["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        logs = [
            s for s in _role_statements(synth, fn.role) if any(a.startswith("logs:") for a in _as_list(s["Action"]))
        ]  # type: ignore[arg-type]
        assert logs, name
        for statement in logs:
            assert set(_as_list(statement["Action"])) == {"logs:CreateLogStream", "logs:PutLogEvents"}
            assert statement["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}, name


def test_worker_reads_uploads_and_writes_outputs_and_nothing_else_in_s3(synth: Synth, service: VideoJobs) -> None:
    uploads = synth.logical_id(service.buckets["uploads"])
    outputs = synth.logical_id(service.buckets["outputs"])
    s3_statements = [
        s
        for s in _role_statements(synth, service.functions["process"].role)  # type: ignore[arg-type]
        if any(a.startswith("s3:") for a in _as_list(s["Action"]))
    ]
    assert s3_statements
    for statement in s3_statements:
        actions = set(_as_list(statement["Action"]))
        if _mentions(statement, uploads):
            assert not _mentions(statement, outputs)
            assert all(a.startswith(("s3:Get", "s3:List")) for a in actions), actions
        else:
            assert _mentions(statement, outputs), statement
            # Deleting too: a worker removes the partial outputs it wrote when its job is cancelled or lost.
            assert all(a.startswith(("s3:PutObject", "s3:Abort", "s3:DeleteObject")) for a in actions), actions


def test_only_actions_without_resource_level_permissions_are_granted_on_every_resource(twice: Twice) -> None:
    for service in (twice.defaults, twice.custom):
        for policy in _cfn_under(service, iam.CfnPolicy):
            document = Stack.of(policy).resolve(policy.policy_document)
            for statement in document["Statement"]:
                if statement["Effect"] == "Allow" and "*" in _as_list(statement["Resource"]):
                    assert set(_as_list(statement["Action"])) <= set(RESOURCELESS_ACTIONS), statement


def test_bucket_policies_let_in_only_log_delivery_from_this_account(twice: Twice) -> None:
    # Retained data (the default): no one but S3's log delivery, writing the data buckets' logs.
    defaults = twice.defaults_stack
    data_buckets = {defaults.logical_id(bucket) for bucket in twice.defaults.buckets.values()}
    policies = [
        defaults.raw["Resources"][defaults.stack.get_logical_id(node)]
        for node in twice.defaults.node.find_all()
        if isinstance(node, CfnResource) and node.cfn_resource_type == "AWS::S3::BucketPolicy"
    ]
    assert len(policies) == len(data_buckets) + 1
    sources = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny":
                assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                continue
            assert statement["Principal"] == {"Service": "logging.s3.amazonaws.com"}
            assert statement["Action"] == "s3:PutObject"
            assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
            sources.add(statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::GetAtt"][0])
    assert sources == data_buckets
