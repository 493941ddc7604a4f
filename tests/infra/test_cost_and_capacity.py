"""Cost allocation tags on the synthesized template, and the ``by_tenant`` index's projection."""

from __future__ import annotations

from typing import Any

from infra.construct import VideoJobs
from infra.cost_tags import COMPONENT_TAG, COMPONENTS, PROJECT_TAG
from tests.infra.conftest import Synth
from videojobs import wiring

# CloudFormation has no Tags property for these types: Cost Explorer attributes their (tiny or nil) cost by the
# resources they belong to.
UNTAGGABLE = {
    "AWS::ApiGateway::Account",
    "AWS::ApiGateway::Authorizer",
    "AWS::ApiGateway::BasePathMapping",
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::GatewayResponse",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::UsagePlanKey",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::RouteResponse",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::IAM::Policy",
    "AWS::Lambda::Alias",
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::Permission",
    "AWS::Lambda::Version",
    "AWS::Route53::RecordSet",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::WAFv2::WebACLAssociation",
    "Custom::S3AutoDeleteObjects",
}


def test_the_stack_itself_carries_the_project_tag(synth: Synth) -> None:
    assert synth.stack.tags.tag_values().get(PROJECT_TAG) == "videojobs"


def _tags(resource: dict[str, Any]) -> dict[str, str] | None:
    tags = resource.get("Properties", {}).get("Tags")
    if tags is None:
        return None
    return {tag["Key"]: tag["Value"] for tag in tags} if isinstance(tags, list) else dict(tags)


# CDK's stack-wide provider that empties buckets (removal_policy DESTROY) is made of raw CfnResources, which
# Tags.of cannot reach; the stack's own tags (``project``, from infra/stack.py) reach it when CloudFormation deploys.
CDK_PROVIDERS = "CustomS3AutoDeleteObjectsCustomResourceProvider"


def test_every_taggable_resource_carries_project_and_a_component(synth: Synth) -> None:
    untagged = set()
    for logical_id, resource in synth.raw["Resources"].items():
        if logical_id.startswith(CDK_PROVIDERS):
            continue
        tags = _tags(resource)
        if tags is None:
            untagged.add(resource["Type"])
            continue
        assert tags.get(PROJECT_TAG) == "videojobs", logical_id
        assert tags.get(COMPONENT_TAG) in COMPONENTS, logical_id
    assert untagged <= UNTAGGABLE, untagged - UNTAGGABLE


def test_components_follow_the_concern_of_each_resource(synth: Synth, service: VideoJobs) -> None:
    def component(construct: Any) -> str | None:
        tags = _tags(synth.resource(construct))
        return tags[COMPONENT_TAG] if tags else None

    assert {component(table) for table in service.tables.values()} == {"storage"}
    assert {component(bucket) for bucket in service.buckets.values()} == {"storage"}
    functions = service.functions
    assert component(functions["process"]) == component(functions["fail_dead_jobs"]) == "worker"
    assert component(functions["submit"]) == component(functions[wiring.AUTHORIZER]) == "api"
    assert component(functions["notify"]) == component(functions["deliver"]) == "notifications"
    assert component(service.queues["jobs"]) == component(service.queues["long_jobs"]) == "worker"
    assert component(service.api) == "api"
    assert component(service.monitoring.topic) == "monitoring"
    [task] = synth.of_type("AWS::ECS::TaskDefinition").values()
    assert _tags(task)[COMPONENT_TAG] == "worker"  # type: ignore[index]


def test_by_tenant_projects_only_keys_status_and_priority(synth: Synth, service: VideoJobs) -> None:
    indexes = synth.resource(service.tables["jobs"])["Properties"]["GlobalSecondaryIndexes"]
    [by_tenant] = [index for index in indexes if index["IndexName"] == "by_tenant"]
    assert by_tenant["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status", "priority"]}
    # What progress and heartbeat writes change must not be projected: such a write then never reaches the index.
    progress = {"progress", "stage", "eta_seconds", "lease_expires_at", "lease_owner", "updated_at", "version"}
    assert not progress & set(by_tenant["Projection"]["NonKeyAttributes"])
