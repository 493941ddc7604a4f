"""The construct as a library: twice in one app, every prop reaching the template, bad props failing at synth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import CfnResource
from aws_cdk import aws_logs as logs
from constructs import IConstruct

from infra.construct import VideoJobsProps, settings_overrides
from tests.infra.conftest import CUSTOM, Synth, Twice
from videojobs import settings, wiring
from videojobs.tenant_limits import TenantLimits

PHYSICAL_NAMES = (
    "TableName",
    "BucketName",
    "QueueName",
    "FunctionName",
    "LogGroupName",
    "RoleName",
    "LayerName",
    "TopicName",
    "AlarmName",
    "DashboardName",
)


def _resources_under(twice: Twice, scope: IConstruct, cfn_type: str) -> dict[str, dict[str, Any]]:
    """The resources of ``cfn_type`` that ``scope`` defines, in its stack's template."""
    synth = twice.synth_of(scope)
    lids = {synth.stack.get_logical_id(node) for node in scope.node.find_all() if isinstance(node, CfnResource)}
    return {lid: res for lid, res in synth.of_type(cfn_type).items() if lid in lids}


def test_construct_can_be_instantiated_twice_without_name_clashes(twice: Twice) -> None:
    assert len(twice.of_type("AWS::DynamoDB::Table")) == 2 * len(wiring.TABLES)
    assert len(twice.of_type("AWS::Lambda::Function")) == 2 * len(wiring.FUNCTIONS)
    assert len(twice.of_type("AWS::CloudWatch::Dashboard")) == 2
    for synth in twice.stacks:
        for lid, res in synth.raw["Resources"].items():
            # A literal string is a hard-coded name; a Ref or GetAtt is a reference to another resource.
            named = [key for key in PHYSICAL_NAMES if isinstance(res.get("Properties", {}).get(key), str)]
            assert not named, f"{synth.stack.stack_name}/{lid} sets a physical name: {named}"
    api_names = [res["Properties"]["Name"] for res in twice.of_type("AWS::ApiGateway::RestApi").values()]
    assert len(api_names) == len(set(api_names)) == 2


def test_props_set_upload_limit_worker_size_and_outputs_retention(twice: Twice) -> None:
    submit = twice.resource(twice.custom.functions["submit"])["Properties"]["Environment"]["Variables"]
    assert submit[settings.MAX_UPLOAD_BYTES] == submit[settings.MAX_MULTIPART_UPLOAD_BYTES] == str(1024**3)
    process = twice.resource(twice.custom.functions["process"])["Properties"]
    assert process["MemorySize"] == CUSTOM.process_memory_mb
    assert process["EphemeralStorage"] == {"Size": CUSTOM.process_ephemeral_storage_mib}
    (rule,) = twice.resource(twice.custom.buckets["outputs"])["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == CUSTOM.outputs_retention_days
    default_submit = twice.resource(twice.defaults.functions["submit"])["Properties"]["Environment"]["Variables"]
    assert settings.MAX_UPLOAD_BYTES not in default_submit
    # Every prop that changes a setting reaches exactly the functions whose settings read it, as they parse it.
    overrides = settings_overrides(CUSTOM)
    assert set(overrides) == {
        settings.MAX_UPLOAD_BYTES,
        settings.MAX_MULTIPART_UPLOAD_BYTES,
        settings.LAMBDA_TIME_BUDGET_SECONDS,
        settings.WEBHOOK_RETRY_DELAYS,
        *TenantLimits.defaults(settings.TenantLimitSettings.from_env(_required(settings.TenantLimitSettings)))
        .as_environment()
        .keys(),
        settings.EVENT_RETENTION_DAYS,
        settings.ENDPOINT_DISABLE_AFTER_SECONDS,
    }
    for name, fn in twice.custom.functions.items():
        variables = twice.resource(fn)["Properties"]["Environment"]["Variables"]
        model = wiring.FUNCTIONS[name].settings or settings.FunctionSettings
        reads = {field.alias for field in model.model_fields.values()}
        for variable, value in overrides.items():
            assert variables.get(variable) == (value if variable in reads else None), (name, variable)
    process_settings = settings.WorkerSettings.from_env({**_required(settings.WorkerSettings), **overrides})
    assert process_settings.lambda_time_budget_seconds == CUSTOM.lambda_time_budget_seconds
    deliver = settings.DeliverSettings.from_env({**_required(settings.DeliverSettings), **overrides})
    assert tuple(deliver.retry_delays) == CUSTOM.webhook_retry_delays_seconds
    submit_settings = settings.SubmitSettings.from_env({**_required(settings.SubmitSettings), **overrides})
    assert TenantLimits.defaults(submit_settings) == CUSTOM.tenant_limits


def _required(model: type[settings.FunctionSettings]) -> dict[str, str]:
    return {field.alias: "name" for field in model.model_fields.values() if field.is_required() and field.alias}


def test_one_upload_limit_caps_single_posts_at_s3s_5_gib_and_multipart_uploads_at_the_limit() -> None:
    overrides = settings_overrides(VideoJobsProps(max_upload_bytes=20 * 1024**3))
    assert overrides == {
        settings.MAX_UPLOAD_BYTES: str(settings.S3_SINGLE_UPLOAD_LIMIT),
        settings.MAX_MULTIPART_UPLOAD_BYTES: str(20 * 1024**3),
    }
    # The settings models accept what the construct sets.
    required = {field.alias: "name" for field in settings.SubmitSettings.model_fields.values() if field.is_required()}
    submit = settings.SubmitSettings.from_env({**required, **overrides})
    assert (submit.max_upload_bytes, submit.max_multipart_upload_bytes) == (5 * 1024**3, 20 * 1024**3)
    assert settings_overrides(VideoJobsProps()) == {}


def test_data_is_retained_by_default_and_destroyed_in_the_dev_app(synth: Synth, twice: Twice) -> None:
    assert twice.resource(twice.defaults.tables["jobs"])["DeletionPolicy"] == "Retain"
    assert twice.resource(twice.defaults.buckets["uploads"])["DeletionPolicy"] == "Retain"
    assert not twice.of_type("Custom::S3AutoDeleteObjects")
    dev = synth.stack.service  # type: ignore[attr-defined]
    assert synth.resource(dev.tables["jobs"])["DeletionPolicy"] == "Delete"
    assert synth.of_type("Custom::S3AutoDeleteObjects")


@pytest.mark.parametrize(("which", "days"), [("defaults", 30), ("custom", 90)])
def test_every_log_group_keeps_logs_as_long_as_the_props_say(twice: Twice, which: str, days: int) -> None:
    assert CUSTOM.log_retention == logs.RetentionDays.THREE_MONTHS
    groups = _resources_under(twice, getattr(twice, which), "AWS::Logs::LogGroup")
    # One per function and the API's access logs, whoever added them.
    assert len(groups) >= len(wiring.FUNCTIONS) + 1
    assert {res["Properties"]["RetentionInDays"] for res in groups.values()} == {days}


def test_stage_throttling_follows_the_props(twice: Twice) -> None:
    stage = twice.resource(twice.custom.api.deployment_stage)["Properties"]
    (method_settings,) = stage["MethodSettings"]
    assert method_settings["ThrottlingRateLimit"] == CUSTOM.api_rate_limit
    assert method_settings["ThrottlingBurstLimit"] == CUSTOM.api_burst_limit


def test_custom_domain_serves_stage_v1_over_tls_1_2_with_an_alias_record(twice: Twice) -> None:
    assert CUSTOM.custom_domain is not None
    assert twice.defaults.domain is None and twice.custom.domain is not None
    (domain_lid, domain) = _resources_under(twice, twice.custom, "AWS::ApiGateway::DomainName").popitem()
    assert domain["Properties"] == {
        "DomainName": CUSTOM.custom_domain.name,
        "EndpointConfiguration": {"Types": ["REGIONAL"]},
        "RegionalCertificateArn": CUSTOM.custom_domain.certificate_arn,
        "SecurityPolicy": "TLS_1_2",
        "Tags": [{"Key": "component", "Value": "api"}, {"Key": "project", "Value": "videojobs"}],
    }
    (mapping,) = twice.of_type("AWS::ApiGateway::BasePathMapping").values()
    assert mapping["Properties"]["DomainName"] == {"Ref": domain_lid}
    assert mapping["Properties"]["BasePath"] == "v1"
    assert mapping["Properties"]["RestApiId"] == {"Ref": twice.logical_id(twice.custom.api)}
    assert mapping["Properties"]["Stage"] == {"Ref": twice.logical_id(twice.custom.api.deployment_stage)}
    (record,) = twice.of_type("AWS::Route53::RecordSet").values()
    assert record["Properties"]["Type"] == "A"
    assert record["Properties"]["HostedZoneId"] == CUSTOM.custom_domain.hosted_zone_id
    assert record["Properties"]["Name"] == f"{CUSTOM.custom_domain.name}."
    assert f'"{domain_lid}"' in json.dumps(record["Properties"]["AliasTarget"])


def test_web_acl_is_associated_with_the_stage_only_when_given(twice: Twice) -> None:
    (association,) = twice.of_type("AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == CUSTOM.web_acl_arn
    stage = twice.logical_id(twice.custom.api.deployment_stage)
    assert f'"{stage}"' in json.dumps(association["Properties"]["ResourceArn"])


def test_api_logs_role_is_left_alone_when_the_props_say_the_account_has_one(twice: Twice) -> None:
    assert twice.custom.api.node.try_find_child("CloudWatchRole") is None
    (account,) = twice.of_type("AWS::ApiGateway::Account").values()
    role = twice.defaults.api.node.find_child("CloudWatchRole")
    assert account["Properties"]["CloudWatchRoleArn"] == {"Fn::GetAtt": [twice.logical_id(role), "Arn"]}
    assert account["DeletionPolicy"] == "Retain"


def test_alarms_notify_the_given_topic_which_the_email_subscribes_to(twice: Twice) -> None:
    topic = {"Ref": twice.logical_id(twice.ops_topic)}
    assert twice.custom.monitoring.alarms
    for alarm in twice.custom.monitoring.alarms:
        assert twice.resource(alarm)["Properties"]["AlarmActions"] == [topic]
    assert not _resources_under(twice, twice.custom, "AWS::SNS::Topic")
    (subscription,) = twice.of_type("AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {"Endpoint": CUSTOM.alarm_email, "Protocol": "email", "TopicArn": topic}


def test_default_props_make_the_construct_its_own_alarm_topic(twice: Twice) -> None:
    (topic_lid,) = _resources_under(twice, twice.defaults, "AWS::SNS::Topic")
    for alarm in twice.defaults.monitoring.alarms:
        assert twice.resource(alarm)["Properties"]["AlarmActions"] == [{"Ref": topic_lid}]


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("outputs_retention_days", 0),
        ("max_upload_bytes", 0),
        ("max_upload_bytes", settings.S3_OBJECT_LIMIT + 1),
        ("process_memory_mb", 64),
        ("process_ephemeral_storage_mib", 20 * 1024),
        ("api_burst_limit", 10),
        ("lambda_time_budget_seconds", wiring.FUNCTIONS["process"].timeout_seconds),
        ("fargate_cpu", 3000),
        ("fargate_max_tasks", 0),
        ("webhook_retry_delays_seconds", (60, 0)),
    ],
)
def test_an_invalid_prop_fails_at_synth_naming_the_prop(prop: str, value: object) -> None:
    with pytest.raises(ValueError, match=prop):
        VideoJobsProps(**{prop: value})  # type: ignore[arg-type]


def test_the_tenant_limits_prop_sets_the_usage_plans_rate(twice: Twice) -> None:
    (plan,) = [
        res
        for res in twice.of_type("AWS::ApiGateway::UsagePlan").values()
        if res["Properties"]["Throttle"]["RateLimit"] == CUSTOM.tenant_limits.requests_per_second  # type: ignore[union-attr]
    ]
    assert plan["Properties"]["Throttle"]["BurstLimit"] == CUSTOM.tenant_limits.burst  # type: ignore[union-attr]
