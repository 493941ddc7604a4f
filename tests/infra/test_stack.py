"""Properties of the synthesized template: what the wiring declares is what CloudFormation gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match
from constructs import IConstruct

from infra.construct import VideoJobs
from tests.infra.conftest import Synth, policy_documents
from videojobs import wiring
from videojobs.observability import TRACER_ENVIRONMENT
from videojobs.tenant_limits import TenantLimits

COMMON_ENV = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", *TRACER_ENVIRONMENT}
ZIP_FUNCTIONS = [name for name, fn in wiring.FUNCTIONS.items() if not fn.image]
IMAGE_FUNCTIONS = [name for name, fn in wiring.FUNCTIONS.items() if fn.image]


def _ref(lid: str) -> dict[str, str]:
    return {"Ref": lid}


def _arn(lid: str, attribute: str = "Arn") -> dict[str, list[str]]:
    return {"Fn::GetAtt": [lid, attribute]}


def _event_source_mappings(synth: Synth, function: str, source: dict[str, Any]) -> list[dict[str, Any]]:
    fn = synth.logical_id(synth.stack.service.functions[function])  # type: ignore[attr-defined]
    return [
        res["Properties"]
        for res in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if res["Properties"]["FunctionName"] == _ref(fn) and res["Properties"]["EventSourceArn"] == source
    ]


def _construct_of(service: VideoJobs, ref: wiring.ResourceRef) -> IConstruct | None:
    match ref:
        case wiring.TableRef(name):
            return service.tables[name]
        case wiring.BucketRef(name):
            return service.buckets[name]
        case wiring.QueueRef(name):
            return service.queues[name]
        case wiring.DeadLetterQueueRef(name):
            return service.dead_letter_queues[name]
        case wiring.WebSocketRef():
            return None
        case wiring.EventBusRef():
            return service.event_bus


def _actions_of(statement: dict[str, Any]) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else actions


def _actions_on(synth: Synth, function: str, resource_lid: str) -> set[str]:
    """Actions a function's role may perform on a resource (statements that name its logical ID)."""
    role = synth.logical_id(synth.stack.service.functions[function].role)  # type: ignore[attr-defined]
    actions: set[str] = set()
    for res in synth.of_type("AWS::IAM::Policy").values():
        if _ref(role) not in res["Properties"]["Roles"]:
            continue
        for statement in res["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow" and f'"{resource_lid}"' in json.dumps(statement["Resource"]):
                actions.update(_actions_of(statement))
    return actions


def _route_paths(synth: Synth) -> dict[str, str]:
    """Logical ID of every API resource (and of the root, as its RestApi's GetAtt) -> its path."""
    resources = synth.of_type("AWS::ApiGateway::Resource")

    def path_of(lid: str) -> str:
        props = resources[lid]["Properties"]
        parent = props["ParentId"]
        prefix = "" if "Fn::GetAtt" in parent else path_of(parent["Ref"])
        return f"{prefix}/{props['PathPart']}"

    return {lid: path_of(lid) for lid in resources}


# -- queues and triggers ----------------------------------------------------------------------------------


def test_jobs_queue_trigger_reports_batch_item_failures(synth: Synth, service: VideoJobs) -> None:
    for name, queue in wiring.QUEUES.items():
        if queue.consumer in wiring.SERVICES:  # polled by Fargate tasks: tests/infra/test_fargate.py
            continue
        mappings = _event_source_mappings(synth, queue.consumer, _arn(synth.logical_id(service.queues[name])))
        assert len(mappings) == 1, name
        assert mappings[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mappings[0].get("BatchSize", 10) == queue.batch_size
        assert mappings[0].get("ScalingConfig", {}).get("MaximumConcurrency") == queue.max_concurrency


def test_worker_and_delivery_event_sources_bound_their_concurrency(synth: Synth, service: VideoJobs) -> None:
    # A burst of jobs or deliveries must not take the concurrency the API functions need.
    for name in ("jobs", "deliveries"):
        [mapping] = _event_source_mappings(
            synth, wiring.QUEUES[name].consumer, _arn(synth.logical_id(service.queues[name]))
        )
        assert 2 <= mapping["ScalingConfig"]["MaximumConcurrency"] <= 20, name


def test_queues_with_a_lambda_consumer_allow_at_least_five_receives(synth: Synth, service: VideoJobs) -> None:
    # AWS's advice: a receive whose invocation was throttled still counts towards maxReceiveCount.
    for name, queue in wiring.QUEUES.items():
        if queue.consumer in wiring.FUNCTIONS:
            policy = synth.resource(service.queues[name])["Properties"]["RedrivePolicy"]
            assert policy["maxReceiveCount"] >= 5, name


def test_only_the_sse_function_reserves_concurrency_as_declared(synth: Synth, service: VideoJobs) -> None:
    reserved = {
        name: synth.resource(service.functions[name])["Properties"].get("ReservedConcurrentExecutions")
        for name in wiring.FUNCTIONS
    }
    assert reserved == {name: fn.reserved_concurrency for name, fn in wiring.FUNCTIONS.items()}
    assert {name for name, value in reserved.items() if value} == {"events"}


def test_dead_letter_consumer_reads_the_dlq_reporting_batch_item_failures(synth: Synth, service: VideoJobs) -> None:
    for name, queue in wiring.QUEUES.items():
        if not queue.dead_letter_consumer:
            continue
        dlq = _arn(synth.logical_id(service.dead_letter_queues[name]))
        mappings = _event_source_mappings(synth, queue.dead_letter_consumer, dlq)
        assert len(mappings) == 1, name
        assert mappings[0]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mappings[0].get("BatchSize", 10) == queue.dead_letter_batch_size


def test_every_queue_redrives_to_its_own_dlq_after_declared_receives(synth: Synth, service: VideoJobs) -> None:
    assert set(service.queues) == set(wiring.QUEUES) == set(service.dead_letter_queues)
    for name, queue in wiring.QUEUES.items():
        props = synth.resource(service.queues[name])["Properties"]
        assert props["RedrivePolicy"] == {
            "deadLetterTargetArn": _arn(synth.logical_id(service.dead_letter_queues[name])),
            "maxReceiveCount": queue.max_receive_count,
        }
        dlq = synth.resource(service.dead_letter_queues[name])["Properties"]
        assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_queue_visibility_is_at_least_six_times_its_consumers_timeout(synth: Synth, service: VideoJobs) -> None:
    for name, queue in wiring.QUEUES.items():
        # A service's consumer heartbeats the visibility instead (tests/infra/test_fargate.py).
        pairs = [(service.queues[name], queue.consumer)] if queue.consumer in wiring.FUNCTIONS else []
        if queue.dead_letter_consumer:
            pairs.append((service.dead_letter_queues[name], queue.dead_letter_consumer))
        for sqs_queue, consumer in pairs:
            visibility = synth.resource(sqs_queue)["Properties"]["VisibilityTimeout"]
            timeout = synth.resource(service.functions[consumer])["Properties"]["Timeout"]
            assert visibility >= 6 * timeout, (name, consumer)


def test_queues_are_encrypted_and_deny_insecure_transport(synth: Synth) -> None:
    queues = synth.of_type("AWS::SQS::Queue")
    assert queues
    for props in (res["Properties"] for res in queues.values()):
        assert props["SqsManagedSseEnabled"] is True
    for lid in queues:
        synth.template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [_ref(lid)],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_jobs_table_streams_new_and_old_images(synth: Synth, service: VideoJobs) -> None:
    for name, table in wiring.TABLES.items():
        stream = synth.resource(service.tables[name])["Properties"].get("StreamSpecification")
        expected = {"StreamViewType": "NEW_AND_OLD_IMAGES"} if table.stream else None
        assert stream == expected, name
    assert wiring.TABLES["jobs"].stream


def test_tables_are_on_demand_encrypted_with_point_in_time_recovery(synth: Synth, service: VideoJobs) -> None:
    for name, table in wiring.TABLES.items():
        props = synth.resource(service.tables[name])["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"] == {"SSEEnabled": True}
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["KeySchema"] == [{"AttributeName": table.partition_key, "KeyType": "HASH"}] + (
            [{"AttributeName": table.sort_key, "KeyType": "RANGE"}] if table.sort_key else []
        )
        if table.ttl_attribute:
            assert props["TimeToLiveSpecification"] == {"AttributeName": table.ttl_attribute, "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in props
        indexes = {index["IndexName"]: index for index in props.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {index.name for index in table.indexes}
        for index in table.indexes:
            assert indexes[index.name]["KeySchema"] == [
                {"AttributeName": index.partition_key, "KeyType": "HASH"},
                {"AttributeName": index.sort_key, "KeyType": "RANGE"},
            ]
            assert indexes[index.name]["Projection"] == (
                {"ProjectionType": "ALL"}
                if index.projection is None
                else {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(index.projection)}
                if index.projection
                else {"ProjectionType": "KEYS_ONLY"}
            )


def test_stream_trigger_bisects_retries_and_filters_on_event_name(synth: Synth, service: VideoJobs) -> None:
    assert service.stream_failures_queue is not None
    for trigger in wiring.STREAM_TRIGGERS:
        stream = _arn(synth.logical_id(service.tables[trigger.table]), "StreamArn")
        (mapping,) = _event_source_mappings(synth, trigger.function, stream)
        assert mapping["StartingPosition"] == "LATEST"
        assert mapping["BatchSize"] == trigger.batch_size
        assert mapping["BisectBatchOnFunctionError"] is True
        assert mapping["MaximumRetryAttempts"] == trigger.retry_attempts
        assert mapping["MaximumRecordAgeInSeconds"] == trigger.max_record_age_seconds
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["DestinationConfig"] == {
            "OnFailure": {"Destination": _arn(synth.logical_id(service.stream_failures_queue))}
        }
        (criteria,) = mapping["FilterCriteria"]["Filters"]
        # The record's own key: a snake_case "event_name" would synthesize fine and never match.
        assert json.loads(criteria["Pattern"]) == {"eventName": list(trigger.event_names)}


# -- functions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IMAGE_FUNCTIONS)
def test_process_function_is_an_x86_image_with_10_gib_of_scratch(synth: Synth, service: VideoJobs, name: str) -> None:
    props = synth.resource(service.functions[name])["Properties"]
    assert props["PackageType"] == "Image"
    assert props["Architectures"] == ["x86_64"]
    assert props["EphemeralStorage"] == {"Size": 10240}
    assert props["ImageConfig"] == {"Command": [wiring.FUNCTIONS[name].handler]}


@pytest.mark.parametrize("name", ZIP_FUNCTIONS)
def test_zip_functions_run_python_3_12_on_arm64_with_the_shared_layer(
    synth: Synth, service: VideoJobs, name: str
) -> None:
    props = synth.resource(service.functions[name])["Properties"]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    declared = wiring.FUNCTIONS[name]
    # A function whose responses API Gateway streams runs its stream_handler (tests/infra/test_response_streaming.py).
    assert props["Handler"] == (declared.stream_handler if service.streams(declared) else declared.handler)
    (layer,) = synth.of_type("AWS::Lambda::LayerVersion")
    assert props["Layers"] == [_ref(layer)]


def test_dependency_layer_targets_arm64_python_3_12(synth: Synth) -> None:
    (layer,) = synth.of_type("AWS::Lambda::LayerVersion").values()
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


@pytest.mark.parametrize("name", list(wiring.FUNCTIONS))
def test_function_has_declared_size_tracing_and_json_logs_with_retention(
    synth: Synth, service: VideoJobs, name: str
) -> None:
    declared = wiring.FUNCTIONS[name]
    props = synth.resource(service.functions[name])["Properties"]
    assert props["MemorySize"] == declared.memory_mb
    streamed = service.streams(declared)
    assert props["Timeout"] == (wiring.RESPONSE_STREAMING.max_seconds if streamed else declared.timeout_seconds)
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    log_group = synth.raw["Resources"][props["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == 30


@pytest.mark.parametrize("name", list(wiring.FUNCTIONS))
def test_function_environment_is_exactly_what_its_uses_need(synth: Synth, service: VideoJobs, name: str) -> None:
    declared = wiring.FUNCTIONS[name]
    variables = synth.resource(service.functions[name])["Properties"]["Environment"]["Variables"]
    streaming = (
        {*wiring.RESPONSE_STREAMING.settings(), "AWS_LAMBDA_EXEC_WRAPPER"} if service.streams(declared) else set()
    )
    assert set(variables) == COMMON_ENV | {ref.env_var for ref in wiring.refs(declared.uses)} | streaming
    for ref in wiring.refs(declared.uses):
        value = variables[ref.env_var]
        construct = _construct_of(service, ref)
        if construct is None:  # the stage's wss:// URL (tests/infra/test_notifications_stack.py)
            assert "Fn::Join" in value
        else:  # a table's and a bucket's name, a queue's URL: each its Ref
            assert value == _ref(synth.logical_id(construct))


@pytest.mark.parametrize("name", list(wiring.FUNCTIONS))
def test_function_environment_satisfies_its_settings_model(synth: Synth, service: VideoJobs, name: str) -> None:
    variables = synth.resource(service.functions[name])["Properties"]["Environment"]["Variables"]
    model = wiring.FUNCTIONS[name].settings
    assert model is not None, f"{name} declares no settings model"
    required = {field.alias for field in model.model_fields.values() if field.is_required()}
    assert required, model
    assert required <= set(variables), f"{name} lacks {required - set(variables)}"


@pytest.mark.parametrize("name", list(wiring.FUNCTIONS))
def test_function_policy_matches_declared_access(synth: Synth, service: VideoJobs, name: str) -> None:
    # One representative action per access level, and the one that must be missing.
    checks = {
        "table": {"read": "dynamodb:GetItem", "write": "dynamodb:PutItem"},
        "bucket": {"read": "s3:GetObject*", "write": "s3:PutObject"},
        "queue": {"read": "sqs:ReceiveMessage", "write": "sqs:SendMessage"},
        "bus": {"write": "events:PutEvents"},
    }
    for ref, access in wiring.refs(wiring.FUNCTIONS[name].uses).items():
        construct = _construct_of(service, ref)
        if construct is None:
            continue  # execute-api:ManageConnections: tests/infra/test_notifications_stack.py
        kind = {wiring.TableRef: "table", wiring.BucketRef: "bucket", wiring.EventBusRef: "bus"}.get(type(ref), "queue")
        actions = _actions_on(synth, name, synth.logical_id(construct))
        for level, action in checks[kind].items():
            assert (action in actions) == (level in access), (name, ref, access, action)


@pytest.mark.parametrize("template", ["synth", "twice_defaults", "twice_custom"])
def test_no_policy_document_allows_a_wildcard_action(template: str, request: pytest.FixtureRequest) -> None:
    # Every document: IAM policies and roles, bucket, queue and topic policies. Deny statements may (and the
    # enforceSSL ones do) deny "s3:*"; an Allow never grants "*" or "<service>:*".
    documents = policy_documents(request.getfixturevalue(template).raw)
    kinds = {request.getfixturevalue(template).raw["Resources"][lid]["Type"] for lid, _ in documents}
    assert {"AWS::IAM::Policy", "AWS::IAM::Role", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy"} <= kinds
    for lid, document in documents:
        for statement in document["Statement"]:
            if statement["Effect"] == "Allow":
                for action in _actions_of(statement):
                    assert action != "*" and not action.endswith(":*"), (lid, statement)


# -- buckets ----------------------------------------------------------------------------------------------


def test_buckets_block_public_access_and_deny_insecure_transport(synth: Synth) -> None:
    buckets = synth.of_type("AWS::S3::Bucket")
    assert len(buckets) >= len(wiring.BUCKETS)
    for lid, res in buckets.items():
        props = res["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
        assert "VersioningConfiguration" not in props
        synth.template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": _ref(lid),
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_buckets_expire_objects_and_abort_stale_multipart_uploads(synth: Synth, service: VideoJobs) -> None:
    for name, bucket in wiring.BUCKETS.items():
        (rule,) = synth.resource(service.buckets[name])["Properties"]["LifecycleConfiguration"]["Rules"]
        assert rule["AbortIncompleteMultipartUpload"] == {
            "DaysAfterInitiation": bucket.abort_incomplete_uploads_after_days
        }
        assert rule.get("ExpirationInDays") == bucket.expire_after_days


def test_browsers_may_upload_to_uploads_and_fetch_outputs_and_nothing_more(synth: Synth, service: VideoJobs) -> None:
    (upload,) = synth.resource(service.buckets["uploads"])["Properties"]["CorsConfiguration"]["CorsRules"]
    assert set(upload["AllowedMethods"]) == {"POST", "PUT"}
    assert upload["AllowedOrigins"] == ["*"]
    # hls.js fetches segments from presigned URLs with XHR, which needs CORS on the outputs bucket.
    (fetch,) = synth.resource(service.buckets["outputs"])["Properties"]["CorsConfiguration"]["CorsRules"]
    assert set(fetch["AllowedMethods"]) == {"GET", "HEAD"}


# -- API --------------------------------------------------------------------------------------------------


def test_every_route_is_a_method_with_the_declared_authorization(synth: Synth, service: VideoJobs) -> None:
    paths = _route_paths(synth)
    methods = {}
    for res in synth.of_type("AWS::ApiGateway::Method").values():
        props = res["Properties"]
        resource = props["ResourceId"]
        path = "/" if "Fn::GetAtt" in resource else paths[resource["Ref"]]
        methods[(props["HttpMethod"], path)] = props
    assert set(methods) == {(route.method, route.path) for route in wiring.ROUTES}
    authorizer = synth.logical_id(service.node.find_child("Authorizer"))
    for route in wiring.ROUTES:
        props = methods[(route.method, route.path)]
        fn = synth.logical_id(service.invocable(route.function))  # the SnapStart alias (tests/infra/test_snapstart.py)
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert f'"{fn}"' in json.dumps(props["Integration"]["Uri"])
        if route.authorized:
            assert props["AuthorizationType"] == "CUSTOM"
            assert props["AuthorizerId"] == _ref(authorizer)
        else:
            assert props["AuthorizationType"] == "NONE"
            assert "AuthorizerId" not in props
    assert methods[("GET", "/health")]["AuthorizationType"] == "NONE"


def test_authorizer_reads_the_authorization_header_and_caches_for_the_declared_ttl(
    synth: Synth, service: VideoJobs
) -> None:
    authorizer = synth.resource(service.node.find_child("Authorizer"))["Properties"]
    assert authorizer["Type"] == "REQUEST"
    assert authorizer["IdentitySource"] == "method.request.header.Authorization"
    assert authorizer["AuthorizerResultTtlInSeconds"] == wiring.AUTHORIZER_CACHE_SECONDS == 60
    assert f'"{synth.logical_id(service.invocable(wiring.AUTHORIZER))}"' in json.dumps(authorizer["AuthorizerUri"])


def test_api_stage_v1_logs_access_traces_and_throttles(synth: Synth) -> None:
    (stage,) = synth.of_type("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "v1"
    assert props["TracingEnabled"] is True
    assert "DestinationArn" in props["AccessLogSetting"]
    assert json.loads(props["AccessLogSetting"]["Format"])["requestId"] == "$context.requestId"
    (settings_,) = props["MethodSettings"]
    assert settings_["ThrottlingRateLimit"] == 100
    assert settings_["ThrottlingBurstLimit"] == 200


@pytest.mark.parametrize(
    ("response_type", "status", "code"),
    [
        ("UNAUTHORIZED", "401", "unauthorized"),
        ("ACCESS_DENIED", "401", "unauthorized"),
        ("MISSING_AUTHENTICATION_TOKEN", "404", "not_found"),
        ("THROTTLED", "429", "rate_limited"),
        ("INVALID_API_KEY", "403", "forbidden"),
        ("REQUEST_TOO_LARGE", "413", "payload_too_large"),
        ("DEFAULT_4XX", None, "bad_request"),
        ("DEFAULT_5XX", None, "internal_error"),
    ],
)
def test_gateway_errors_answer_our_json_error_shape(
    synth: Synth, response_type: str, status: str | None, code: str
) -> None:
    (props,) = [
        res["Properties"]
        for res in synth.of_type("AWS::ApiGateway::GatewayResponse").values()
        if res["Properties"]["ResponseType"] == response_type
    ]
    assert props.get("StatusCode") == status
    fixed_headers = {"Retry-After": "'1'"} if response_type == "THROTTLED" else {}
    assert props["ResponseParameters"] == {
        f"gatewayresponse.header.{name}": value
        for name, value in ({"Content-Type": "'application/json'"} | fixed_headers).items()
    }
    # API Gateway substitutes $context.error.messageString with the message as a quoted JSON string.
    body = props["ResponseTemplates"]["application/json"].replace("$context.error.messageString", '"Boom"')
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def test_stack_outputs_api_url_and_resource_names(synth: Synth) -> None:
    outputs = synth.raw["Outputs"]
    expected = {"ApiUrl", "RestApiId", "TenantUsagePlanId"}
    expected |= {f"{name.title().replace('_', '')}TableName" for name in wiring.TABLES}
    expected |= {f"{name.title().replace('_', '')}BucketName" for name in wiring.BUCKETS}
    expected |= {f"{name.title().replace('_', '')}QueueName" for name in wiring.QUEUES}
    assert expected <= set(outputs)


def test_each_tenant_is_throttled_by_its_usage_plan_before_any_function_runs(synth: Synth) -> None:
    """API Gateway applies a usage plan's token bucket to the API key of a method that requires one, before the
    integration: with the key taken from the authorizer, every authorized route is throttled per tenant."""
    (api,) = synth.of_type("AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"
    methods = [res["Properties"] for res in synth.of_type("AWS::ApiGateway::Method").values()]
    authorized = [method for method in methods if method["AuthorizationType"] == "CUSTOM"]
    assert len(authorized) == sum(route.authorized for route in wiring.ROUTES)
    assert all(method.get("ApiKeyRequired") is True for method in authorized)
    assert not any(method.get("ApiKeyRequired") for method in methods if method["AuthorizationType"] == "NONE")
    (plan,) = synth.of_type("AWS::ApiGateway::UsagePlan").values()
    defaults = TenantLimits.settings_defaults()
    assert plan["Properties"]["Throttle"] == {"RateLimit": defaults.requests_per_second, "BurstLimit": defaults.burst}
    (stage,) = plan["Properties"]["ApiStages"]
    assert stage["Stage"] == {"Ref": next(iter(synth.of_type("AWS::ApiGateway::Stage")))}


# CloudFormation refuses a stack of more than 500 resources (CDK already fails synth past it). A feature that
# would take the stack near that fails here first, while a split (nested stacks, a second stack) is still a choice.
RESOURCE_LIMIT = 500
RESOURCE_BUDGET = 450


def test_the_stack_stays_well_under_cloudformations_500_resources(synth: Synth) -> None:
    count = len(synth.raw["Resources"])
    assert count <= RESOURCE_BUDGET < RESOURCE_LIMIT, (
        f"the stack has {count} resources: over the budget of {RESOURCE_BUDGET} "
        f"(CloudFormation's limit is {RESOURCE_LIMIT} per stack)"
    )


# -- assets -----------------------------------------------------------------------------------------------


def _files(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


@pytest.mark.parametrize("name", ZIP_FUNCTIONS)
def test_zip_asset_holds_only_the_shared_package_and_the_functions_folder(
    synth: Synth, service: VideoJobs, name: str
) -> None:
    asset_hash = synth.resource(service.functions[name])["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    files = _files(synth.outdir / f"asset.{asset_hash}")
    own = wiring.FUNCTIONS[name].directory + "/"
    assert any(path.startswith(own) for path in files)
    assert "videojobs/wiring.py" in files
    strays = {path for path in files if not path.startswith(("videojobs/", own))}
    assert not strays
    assert not {path for path in files if "__pycache__" in path}


def test_image_asset_context_holds_only_what_the_dockerfile_copies(synth: Synth, service: VideoJobs) -> None:
    image_uri = synth.resource(service.functions["process"])["Properties"]["Code"]["ImageUri"]["Fn::Sub"]
    context = synth.outdir / f"asset.{image_uri.rsplit(':', 1)[1]}"
    files = _files(context)
    assert {"functions/process/Dockerfile", "requirements-worker.lock", "videojobs/wiring.py"} <= files
    allowed = ("videojobs/", "functions/process/", "requirements-worker.lock", ".dockerignore")
    assert {path for path in files if not path.startswith(allowed)} == set()
    size = sum((context / path).stat().st_size for path in files)
    assert size < 5 * 1024**2, "the image context should be a few hundred KB, not the .venv"
