"""``VideoJobs``: the whole service as one reusable construct, built from ``videojobs.wiring``.

Every table, bucket, queue, function, route and trigger comes from the declarations in ``wiring``; nothing is
listed here a second time. No physical names are set, so the construct can be instantiated twice in one app.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    BundlingOptions,
    DockerImage,
    Duration,
    IgnoreMode,
    ILocalBundling,
    Names,
    RemovalPolicy,
    Size,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from videojobs import settings as env
from videojobs import wiring
from videojobs.models import ErrorCode

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: every code asset is staged from it, filtered down to what each function needs."""

ZIP_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAYER_LOCK = "requirements-lambda.lock"
IMAGE_DOCKERFILE = "functions/process/Dockerfile"
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
DLQ_RETENTION = Duration.days(14)

# The wiring names these resources; the props below tune them.
SUBMIT, PROCESS, OUTPUTS = "submit", "process", "outputs"


@dataclass(frozen=True)
class VideoJobsProps:
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    """Of the data: tables, buckets (DESTROY also empties them on delete) and log groups."""
    outputs_retention_days: int | None = None
    """Overrides the outputs bucket's ``expire_after_days`` from the wiring."""
    max_upload_bytes: int | None = None
    """Sets ``MAX_UPLOAD_BYTES`` on the submit function; None keeps the settings default (S3's 5 GB limit)."""
    process_memory_mb: int | None = None
    """Overrides the worker's memory (and with it its vCPUs) from the wiring."""


def _pip_install_args(output_dir: str) -> list[str]:
    # Wheels for Lambda's platform, whatever the build machine is: no compiler, no emulation.
    return [
        "-m", "pip", "install", "-r", LAYER_LOCK,
        "--platform", "manylinux2014_aarch64", "--only-binary=:all:",
        "--python-version", ZIP_RUNTIME.name.removeprefix("python"), "--implementation", "cp",
        "--target", f"{output_dir}/python", "--quiet", "--disable-pip-version-check", "--no-cache-dir", "--no-compile",
    ]  # fmt: skip


@jsii.implements(ILocalBundling)
class _PipLayerBundling:
    """Builds the dependency layer with this interpreter's pip, so synth needs no Docker daemon."""

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: Any) -> bool:
        subprocess.run([sys.executable, *_pip_install_args(output_dir)], cwd=ROOT, check=True)
        return True


def _pascal(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


def _zip_code(directory: str) -> lambda_.Code:
    # Only the shared package and the function's own folder: editing another function does not redeploy this one.
    keep = ["videojobs", "videojobs/**", "functions", "functions/__init__.py", directory, f"{directory}/**"]
    return lambda_.Code.from_asset(
        str(ROOT), exclude=["*", ".*", *(f"!{path}" for path in keep), "__pycache__", "*.pyc"]
    )


def _image_code(fn: wiring.Function) -> lambda_.DockerImageCode:
    # The context is filtered by the allowlist in .dockerignore (docker semantics), so only what the image
    # copies is staged and hashed: .venv and friends never reach cdk.out, and unrelated edits keep the image.
    return lambda_.DockerImageCode.from_image_asset(
        directory=str(ROOT),
        file=IMAGE_DOCKERFILE,
        platform=ecr_assets.Platform.LINUX_AMD64,
        ignore_mode=IgnoreMode.DOCKER,
        cmd=[fn.handler],
    )


def _error_body(code: str, message: str | None = None) -> dict[str, str]:
    # Gateway errors answer with the same body as our handlers; $context.error.messageString is already quoted.
    quoted = json.dumps(message) if message else "$context.error.messageString"
    return {"application/json": f'{{"error": {{"code": "{code}", "message": {quoted}}}}}'}


class VideoJobs(Construct):
    """Tables, buckets, queues, functions, triggers and the REST API of videojobs."""

    def __init__(self, scope: Construct, construct_id: str, *, props: VideoJobsProps | None = None) -> None:
        super().__init__(scope, construct_id)
        # Log delivery through a bucket policy, not the legacy ACL (which needs ObjectWriter ownership). Set
        # on this construct, so the behaviour does not depend on the app's feature flags.
        self.node.set_context("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", True)
        self.props = props or VideoJobsProps()
        self.tables: dict[str, dynamodb.Table] = self._tables()
        self.buckets: dict[str, s3.Bucket] = self._buckets()
        self.queues, self.dead_letter_queues = self._queues()
        self.functions: dict[str, lambda_.Function] = self._functions()
        self.stream_failures_queue: sqs.Queue | None = None
        self._triggers()
        self.api: apigw.RestApi = self._api()

    # -- data ---------------------------------------------------------------------------------------------

    def _tables(self) -> dict[str, dynamodb.Table]:
        tables = {}
        for name, decl in wiring.TABLES.items():
            table = dynamodb.Table(
                self,
                f"{_pascal(name)}Table",
                partition_key=dynamodb.Attribute(name=decl.partition_key, type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                encryption=dynamodb.TableEncryption.AWS_MANAGED,
                time_to_live_attribute=decl.ttl_attribute,
                stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES if decl.stream else None,
                removal_policy=self.props.removal_policy,
            )
            for index in decl.indexes:
                table.add_global_secondary_index(
                    index_name=index.name,
                    partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
                    sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.STRING),
                    projection_type=dynamodb.ProjectionType.ALL,
                )
            tables[name] = table
        return tables

    def _buckets(self) -> dict[str, s3.Bucket]:
        destroy = self.props.removal_policy == RemovalPolicy.DESTROY
        common: dict[str, Any] = dict(
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=False,
            removal_policy=self.props.removal_policy,
            auto_delete_objects=destroy,
        )
        # S3 server access logs of the data buckets (who read or wrote what), kept 90 days.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            **common,
        )
        buckets = {}
        for name, decl in wiring.BUCKETS.items():
            days = decl.expire_after_days
            if name == OUTPUTS and self.props.outputs_retention_days is not None:
                days = self.props.outputs_retention_days
            cors = None
            if decl.browser_uploads:
                cors = [
                    s3.CorsRule(
                        allowed_methods=[s3.HttpMethods.POST, s3.HttpMethods.PUT],
                        allowed_origins=["*"],
                        allowed_headers=["*"],
                        exposed_headers=["ETag"],
                        max_age=3000,
                    )
                ]
            buckets[name] = s3.Bucket(
                self,
                f"{_pascal(name)}Bucket",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        expiration=Duration.days(days) if days else None,
                        abort_incomplete_multipart_upload_after=Duration.days(1),
                    )
                ],
                cors=cors,
                server_access_logs_bucket=self.access_logs_bucket,
                server_access_logs_prefix=f"{name}/",
                **common,
            )
        return buckets

    def _queues(self) -> tuple[dict[str, sqs.Queue], dict[str, sqs.Queue]]:
        queues, dead_letter_queues = {}, {}
        for name, decl in wiring.QUEUES.items():
            dlq_visibility = wiring.dead_letter_visibility_timeout_seconds(decl)
            dlq = sqs.Queue(
                self,
                f"{_pascal(name)}DeadLetterQueue",
                retention_period=DLQ_RETENTION,
                # Lambda refuses an event source whose visibility is shorter than the function's timeout.
                visibility_timeout=Duration.seconds(dlq_visibility) if dlq_visibility else None,
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
            )
            dead_letter_queues[name] = dlq
            queues[name] = sqs.Queue(
                self,
                f"{_pascal(name)}Queue",
                visibility_timeout=Duration.seconds(wiring.visibility_timeout_seconds(decl)),
                dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=decl.max_receive_count),
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
            )
        return queues, dead_letter_queues

    # -- compute ------------------------------------------------------------------------------------------

    def _functions(self) -> dict[str, lambda_.Function]:
        layer: lambda_.LayerVersion | None = None
        functions = {}
        for name, decl in wiring.FUNCTIONS.items():
            common: dict[str, Any] = dict(
                memory_size=decl.memory_mb,
                timeout=Duration.seconds(decl.timeout_seconds),
                tracing=lambda_.Tracing.ACTIVE,
                logging_format=lambda_.LoggingFormat.JSON,
                log_group=logs.LogGroup(
                    self, f"{_pascal(name)}Logs", retention=LOG_RETENTION, removal_policy=self.props.removal_policy
                ),
                environment=self._environment(name, decl),
            )
            if decl.image:
                if name == PROCESS and self.props.process_memory_mb is not None:
                    common["memory_size"] = self.props.process_memory_mb
                # x86_64: imageio-ffmpeg ships no aarch64 wheel. /tmp holds the input and every rendition.
                fn: lambda_.Function = lambda_.DockerImageFunction(
                    self,
                    f"{_pascal(name)}Function",
                    code=_image_code(decl),
                    architecture=lambda_.Architecture.X86_64,
                    ephemeral_storage_size=Size.gibibytes(10),
                    **common,
                )
            else:
                layer = layer or self._dependencies_layer()
                fn = lambda_.Function(
                    self,
                    f"{_pascal(name)}Function",
                    runtime=ZIP_RUNTIME,
                    architecture=lambda_.Architecture.ARM_64,
                    handler=decl.handler,
                    code=_zip_code(decl.directory),
                    layers=[layer],
                    **common,
                )
            functions[name] = fn
        for name, decl in wiring.FUNCTIONS.items():
            self._grant(functions[name], decl)
        return functions

    def _dependencies_layer(self) -> lambda_.LayerVersion:
        # One layer for every zip function, built from the lock file alone (the exclude keeps its hash to it).
        return lambda_.LayerVersion(
            self,
            "DependenciesLayer",
            code=lambda_.Code.from_asset(
                str(ROOT),
                exclude=["*", f"!{LAYER_LOCK}"],
                bundling=BundlingOptions(
                    local=_PipLayerBundling(),
                    image=ZIP_RUNTIME.bundling_image,
                    command=["bash", "-c", " ".join(["python", *_pip_install_args("/asset-output")])],
                ),
            ),
            compatible_runtimes=[ZIP_RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description=f"videojobs dependencies from {LAYER_LOCK}",
        )

    def _environment(self, name: str, decl: wiring.Function) -> dict[str, str]:
        environment = {"POWERTOOLS_SERVICE_NAME": "videojobs", "POWERTOOLS_METRICS_NAMESPACE": "VideoJobs"}
        for resource in decl.uses:
            environment[wiring.env_var_of(resource)] = self._location(resource)
        if name == SUBMIT and self.props.max_upload_bytes is not None:
            environment[env.MAX_UPLOAD_BYTES] = str(self.props.max_upload_bytes)
        return environment

    def _location(self, resource: str) -> str:
        if resource in self.tables:
            return self.tables[resource].table_name
        if resource in self.buckets:
            return self.buckets[resource].bucket_name
        return self.queues[wiring.queue_for(resource) or ""].queue_url

    def _grant(self, fn: lambda_.Function, decl: wiring.Function) -> None:
        for resource, access in decl.uses.items():
            if resource in self.tables:
                table = self.tables[resource]
                grants = {
                    "read": table.grant_read_data,
                    "write": table.grant_write_data,
                    "read_write": table.grant_read_write_data,
                }
                grants[access](fn)
            elif resource in self.buckets:
                bucket = self.buckets[resource]
                grants = {"read": bucket.grant_read, "write": bucket.grant_put, "read_write": bucket.grant_read_write}
                grants[access](fn)
            else:
                queue = self.queues[wiring.queue_for(resource) or ""]
                if access in ("write", "read_write"):
                    queue.grant_send_messages(fn)
                if access in ("read", "read_write"):
                    queue.grant_consume_messages(fn)

    def _triggers(self) -> None:
        # Event sources grant their own read access (SQS consume, stream read) to the function.
        for name, decl in wiring.QUEUES.items():
            self.functions[decl.consumer].add_event_source(
                sources.SqsEventSource(self.queues[name], batch_size=decl.batch_size, report_batch_item_failures=True)
            )
            if decl.dead_letter_consumer:
                self.functions[decl.dead_letter_consumer].add_event_source(
                    sources.SqsEventSource(self.dead_letter_queues[name], report_batch_item_failures=True)
                )
        if not wiring.STREAM_TRIGGERS:
            return
        # A record that keeps failing is dropped after bounded retries; its metadata lands here for inspection.
        self.stream_failures_queue = sqs.Queue(
            self,
            "StreamFailuresQueue",
            retention_period=DLQ_RETENTION,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        for trigger in wiring.STREAM_TRIGGERS:
            self.functions[trigger.function].add_event_source(
                sources.DynamoEventSource(
                    self.tables[trigger.table],
                    starting_position=lambda_.StartingPosition.LATEST,
                    batch_size=trigger.batch_size,
                    bisect_batch_on_error=True,
                    retry_attempts=trigger.retry_attempts,
                    max_record_age=Duration.seconds(trigger.max_record_age_seconds),
                    report_batch_item_failures=True,
                    on_failure=sources.SqsDlq(self.stream_failures_queue),
                    # The key is the record's own field name, "eventName" (a snake_case key never matches).
                    filters=[
                        lambda_.FilterCriteria.filter({"eventName": lambda_.FilterRule.or_(*trigger.event_names)})
                    ],
                )
            )

    # -- HTTP ---------------------------------------------------------------------------------------------

    def _api(self) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self, "ApiAccessLogs", retention=LOG_RETENTION, removal_policy=self.props.removal_policy
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=Names.unique_resource_name(self, max_length=128, separator="-"),
            description="videojobs: long-running media jobs",
            # Access logging needs the account's CloudWatch role; kept on stack deletion (other APIs use it).
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name="v1",
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                tracing_enabled=True,
                throttling_rate_limit=100,
                throttling_burst_limit=200,
            ),
        )
        self._gateway_responses(api)

        authorizer = None
        if any(route.authorized for route in wiring.ROUTES):
            authorizer = apigw.RequestAuthorizer(
                self,
                "Authorizer",
                handler=self.functions[wiring.AUTHORIZER],
                identity_sources=[apigw.IdentitySource.header("Authorization")],
                results_cache_ttl=Duration.minutes(5),
            )
        integrations: dict[str, apigw.LambdaIntegration] = {}
        for route in wiring.ROUTES:
            if route.function not in integrations:
                integrations[route.function] = apigw.LambdaIntegration(self.functions[route.function])
            api.root.resource_for_path(route.path).add_method(
                route.method,
                integrations[route.function],
                authorizer=authorizer if route.authorized else None,
                authorization_type=apigw.AuthorizationType.CUSTOM if route.authorized else apigw.AuthorizationType.NONE,
            )
        return api

    @staticmethod
    def _gateway_responses(api: apigw.RestApi) -> None:
        # Errors API Gateway answers itself (before or instead of our handlers) keep our JSON error shape.
        responses = [
            (apigw.ResponseType.UNAUTHORIZED, "401", ErrorCode.UNAUTHORIZED, "missing or invalid API key"),
            # The authorizer answers Deny for an unknown key: to the client that is the same as no key.
            (apigw.ResponseType.ACCESS_DENIED, "401", ErrorCode.UNAUTHORIZED, "missing or invalid API key"),
            # A REST API answers an unknown route with "Missing Authentication Token" (403).
            (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "404", ErrorCode.NOT_FOUND, "route not found"),
            (apigw.ResponseType.THROTTLED, "429", ErrorCode.RATE_LIMITED, "too many requests"),
            (apigw.ResponseType.REQUEST_TOO_LARGE, "413", ErrorCode.PAYLOAD_TOO_LARGE, "request too large"),
            (apigw.ResponseType.DEFAULT_4_XX, None, ErrorCode.BAD_REQUEST, None),
            (apigw.ResponseType.DEFAULT_5_XX, None, ErrorCode.INTERNAL_ERROR, None),
        ]
        for response_type, status, code, message in responses:
            api.add_gateway_response(
                f"{response_type.response_type}Response",
                type=response_type,
                status_code=status,
                response_headers={"Content-Type": "'application/json'"},
                templates=_error_body(str(code), message),
            )
