"""cdk-nag's AwsSolutions checks for videojobs, and every finding the construct acknowledges, with its reason.

Each acknowledgement sits on the one CloudFormation resource that raises the finding (never on the stack or the
app), so a new resource that breaks a rule fails synth until someone writes down why it is acceptable.

The wildcards that CDK's own grants write (``bucket.grant_read`` allows ``s3:GetObject*`` on ``<bucket>/*``) are
recognised by their shape, on whichever IAM policy of the construct they appear (the wiring's functions, the
Fargate task, the WebSocket notifier), and only when they point at the construct's own resources. Any other
wildcard stays a finding.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jsii
from aws_cdk import Acknowledgment, Aspects, CfnResource, IAspect, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from constructs import Construct, IConstruct

if TYPE_CHECKING:
    from infra.construct import VideoJobs

PACK = "AwsSolutions"

PUBLIC_ROUTES = {
    ("GET", "/health"): "the liveness probe answers a constant and reads no data",
    ("GET", "/playback/{token}/{name}"): "HLS players send no Authorization header: the path's token (an expiring "
    "HMAC over the job and output, keyed per output) is the credential (videojobs/playback.py)",
}
"""Routes without an authorizer, each with the reason it may be public. Any other public route fails nag."""

API_KEYS_NOT_USERS = (
    "Clients are programs holding API keys, not users: a Lambda REQUEST authorizer checks the bearer key's "
    "hash against the api_keys table (results cached per key, 60 s by default), so a Cognito user pool has "
    "no one to hold"
)

RESOURCELESS_ACTIONS = {
    # Added by CDK for active tracing (Tracing.ACTIVE).
    "xray:PutTraceSegments": "X-Ray takes trace data only on Resource '*' (no resource-level permissions)",
    "xray:PutTelemetryRecords": "X-Ray takes trace data only on Resource '*' (no resource-level permissions)",
    # Added by CDK with a stream trigger; the records themselves are read on the one stream's ARN.
    "dynamodb:ListStreams": "DynamoDB's ListStreams has no resource-level permissions",
    # Added by CDK to a container task's execution role; the image layers are granted on the one repository.
    "ecr:GetAuthorizationToken": "the ECR registry login has no resource-level permissions",
}
"""Actions AWS authorizes only on ``Resource: "*"``."""

BUCKET_GRANT_ACTIONS = {"s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"}
"""The wildcard action groups of CDK's bucket grants: ``grant_read``, ``grant_put``, ``grant_delete``, etc."""

_OBJECTS = re.compile(r"<(\w+)\.Arn>/\*")
_BUCKET = re.compile(r"<(\w+)\.Arn>")
_INDEXES = re.compile(r"<(\w+)\.Arn>/index/\*")
# stage.grant_management_api_access: arn:…:execute-api:<region>:<account>:<api>/<stage>/*/@connections/*
_CONNECTIONS = re.compile(
    r"arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:<(\w+)>/[^/*]+/\*/@connections/\*"
)


def enable_checks(scope: Construct) -> None:
    """Run the AwsSolutions pack at synth: an unacknowledged finding makes synth fail with ``ValidationFailed``."""
    Validations.of(scope).add_plugins(AwsSolutionsChecks(scope))


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding (``"IAM5[Action::s3:List*]"``) on the CloudFormation resource that raises it."""
    default = scope.node.default_child
    target = default if isinstance(default, CfnResource) else scope
    Validations.of(target).acknowledge(Acknowledgment(id=f"{PACK}-{rule}", reason=reason))


def acknowledge_findings(service: VideoJobs) -> None:
    """Every acknowledgement of the ``VideoJobs`` construct; called last in its constructor."""
    Aspects.of(service).add(_GrantWildcards(service))
    _acknowledge_api(service)
    for function in service.functions.values():
        if function.runtime.name.startswith("python"):
            acknowledge(
                function,
                "L1",
                "Pinned on purpose to Python 3.12, one minor version from the 3.11 the test suite runs on, with "
                "SnapStart (README: Tested vs deployed Python); tests/infra/test_runtime.py holds every place to it",
            )
    if service.stream_failures_queue is not None:
        acknowledge(
            service.stream_failures_queue,
            "SQS3",
            "It is a dead-letter queue itself: the on-failure destination of the stream triggers, which "
            "receives the metadata of records that failed every retry (an alarm watches it)",
        )


def _acknowledge_api(service: VideoJobs) -> None:
    api = service.api
    acknowledge(
        api,
        "APIG2",
        "The handlers validate bodies, queries and paths (Powertools + pydantic) and answer 422 validation_error "
        "naming the field, the same locally and in AWS; a gateway validator would answer another shape, and "
        "only for bodies sent as application/json",
    )
    if service.props.web_acl_arn is None:
        acknowledge(
            api.deployment_stage,
            "APIG3",
            "No web ACL given (VideoJobsProps.web_acl_arn): WAF is billed per ACL and rule, and the stage's "
            "throttling and the per-key authorizer already guard it; pass an ACL's ARN to associate one",
        )
    role = api.node.try_find_child("CloudWatchRole")
    if role is not None:
        acknowledge(
            role,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "The account-level role API Gateway writes its logs with; AWS documents this managed policy for it "
            "(VideoJobsProps.api_logs_role=False leaves an existing account setting alone)",
        )
    for method in (child for child in api.node.find_all() if isinstance(child, apigw.Method)):
        public = PUBLIC_ROUTES.get((method.http_method, method.resource.path))
        if public is not None:
            acknowledge(method, "APIG4", f"Public by design: {public}")
            acknowledge(method, "COG4", f"Public by design: {public}")
        elif (
            isinstance(cfn_method := method.node.default_child, apigw.CfnMethod)
            and cfn_method.authorization_type == apigw.AuthorizationType.CUSTOM.value
        ):
            acknowledge(method, "COG4", API_KEYS_NOT_USERS)


# -- wildcards in CDK's grants -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owned:
    kind: str
    name: str


def owned_resources(owner: IConstruct) -> dict[str, Owned]:
    """Logical ID -> kind and name of the buckets, tables and WebSocket APIs defined inside ``owner``."""
    kinds = {s3.CfnBucket: "bucket", dynamodb.CfnTable: "table", apigwv2.CfnApi: "WebSocket API"}
    owned: dict[str, Owned] = {}
    for node in owner.node.find_all():
        for cfn_type, kind in kinds.items():
            if isinstance(node, cfn_type):
                owned[Stack.of(node).get_logical_id(node)] = Owned(kind, node.node.scope.node.id)
    return owned


def flatten(value: Any) -> str:
    """A resource as cdk-nag names it in a finding: ``{"Fn::GetAtt": ["Bucket", "Arn"]}`` -> ``<Bucket.Arn>``."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if "Fn::Join" in value:
            delimiter, items = value["Fn::Join"]
            return delimiter.join(flatten(item) for item in items)
        if "Fn::Sub" in value:
            return flatten(value["Fn::Sub"])
        if "Fn::GetAtt" in value:
            resource, attribute = value["Fn::GetAtt"]
            return f"<{flatten(resource)}.{flatten(attribute)}>"
        if "Fn::ImportValue" in value:
            return flatten(value["Fn::ImportValue"])
        if "Ref" in value:
            return f"<{flatten(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _owned(match: re.Match[str] | None, owned: dict[str, Owned], kind: str) -> Owned | None:
    found = owned.get(match[1]) if match else None
    return found if found is not None and found.kind == kind else None


def _granted(action: str, service: str, wildcard_groups: frozenset[str] | set[str] = frozenset()) -> bool:
    """An action of ``service`` as CDK's grants write it: named, or one of that service's grant groups."""
    return action.startswith(service) and ("*" not in action or action in wildcard_groups)


def _resource_reason(resource: str, actions: list[str], owned: dict[str, Owned]) -> str | None:
    if resource == "*":
        if actions and all(action in RESOURCELESS_ACTIONS for action in actions):
            return "; ".join(sorted({RESOURCELESS_ACTIONS[action] for action in actions}))
        return None
    bucket = _owned(_OBJECTS.fullmatch(resource), owned, "bucket")
    if bucket and all(_granted(action, "s3:", BUCKET_GRANT_ACTIONS) for action in actions):
        return f"The objects of this construct's {bucket.name}: their keys (per tenant and job) exist only at run time"
    table = _owned(_INDEXES.fullmatch(resource), owned, "table")
    if table and all(_granted(action, "dynamodb:") for action in actions):
        return f"The indexes of this construct's {table.name}: CDK's table grants cover the table's own indexes"
    api = _owned(_CONNECTIONS.fullmatch(resource), owned, "WebSocket API")
    if api and actions == ["execute-api:ManageConnections"]:
        return f"The connections of this construct's {api.name} stage: connection ids exist only at run time"
    return None


def _action_reason(action: str, resources: list[str], owned: dict[str, Owned]) -> str | None:
    buckets = [
        _owned(_OBJECTS.fullmatch(resource) or _BUCKET.fullmatch(resource), owned, "bucket") for resource in resources
    ]
    if action not in BUCKET_GRANT_ACTIONS or not buckets or None in buckets:
        return None
    names = ", ".join(sorted({bucket.name for bucket in buckets if bucket}))
    return f"{action} is an action group of CDK's bucket grants, here on this construct's {names} only"


def grant_wildcard_reasons(document: dict[str, Any], owned: dict[str, Owned]) -> dict[str, str]:
    """The IAM5 findings of a policy document that are CDK grant wildcards on ``owned`` resources -> reason.

    A finding that some statement raises for any other cause is left out, so it still fails synth.
    """
    reasons: dict[str, set[str | None]] = {}
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow":
            continue
        actions = _as_list(statement.get("Action", []))
        resources = [flatten(resource) for resource in _as_list(statement.get("Resource", []))]
        for action in (action for action in actions if "*" in action):
            reasons.setdefault(f"Action::{action}", set()).add(_action_reason(action, resources, owned))
        for resource in (resource for resource in resources if "*" in resource):
            reasons.setdefault(f"Resource::{resource}", set()).add(_resource_reason(resource, actions, owned))
    return {finding: " / ".join(sorted(r for r in why if r)) for finding, why in reasons.items() if None not in why}


@jsii.implements(IAspect)
class _GrantWildcards:
    """At synth, when every grant has been made, acknowledges the grant wildcards on each IAM policy."""

    def __init__(self, owner: Construct) -> None:
        self._owner = owner
        self._owned: dict[str, Owned] | None = None

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, iam.CfnPolicy):
            return
        if self._owned is None:
            self._owned = owned_resources(self._owner)
        document = Stack.of(node).resolve(node.policy_document)
        for finding, reason in grant_wildcard_reasons(document, self._owned).items():
            acknowledge(node, f"IAM5[{finding}]", reason)
