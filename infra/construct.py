"""``VideoJobs``: the whole service as one reusable construct, built from ``videojobs.wiring``.

Every table, bucket, queue, function, route and trigger comes from the declarations in ``wiring``; nothing is
listed here a second time. No physical names are set, so the construct can be instantiated twice in one app.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra import nag
from infra.cost_tags import add_cost_tags
from infra.fargate import add_fargate_workers
from infra.monitoring import Monitoring
from infra.websocket import add_websocket_api
from videojobs import settings as env
from videojobs import wiring
from videojobs.metric_names import METRICS_NAMESPACE, SERVICE_NAME
from videojobs.observability import TRACER_ENVIRONMENT
from videojobs.tenant_limits import TenantLimits

ROOT = Path(__file__).resolve().parents[1]
"""The repository root: every code asset is staged from it, filtered down to what each function needs."""

DEPLOYED_PYTHON = "3.12"
"""The Python every function and the worker image deploy on: the closest Lambda runtime to the 3.11 the test suite
runs on that has SnapStart (3.12+). ``tests/infra/test_runtime.py`` holds the Dockerfile, the lock files and the
Makefile to it."""
ZIP_RUNTIME = lambda_.Runtime.PYTHON_3_12
STREAM_BOOTSTRAP = "stream_bootstrap.sh"
"""In the folder of each function with a ``stream_handler``: its exec wrapper where API Gateway streams."""
LAYER_LOCK = "requirements-lambda.lock"
IMAGE_DOCKERFILE = "functions/process/Dockerfile"
DLQ_RETENTION = Duration.seconds(wiring.DEAD_LETTER_RETENTION_SECONDS)

# The wiring names these resources; the props below tune them.
PROCESS, CHUNK, OUTPUTS = "process", "chunk", "outputs"

FARGATE_CPU_UNITS = (256, 512, 1024, 2048, 4096, 8192, 16384)


@dataclass(frozen=True)
class CustomDomain:
    """Serve the API at ``https://<name>/v1`` as well as at its execute-api URL."""

    name: str
    certificate_arn: str
    """An ACM certificate for ``name`` in the stack's region (the API's endpoint is regional)."""
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None
    """With both, an alias record for ``name`` is made in that Route 53 zone; without, point your DNS yourself."""


@dataclass(frozen=True)
class VideoJobsProps:
    """What a deployment may change. None keeps the default of the wiring or of the function's settings."""

    project_tag: str = "videojobs"
    """The ``project`` cost-allocation tag on every resource (README "What a job costs")."""
    removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    """Of the data: tables, buckets (DESTROY also empties them on delete) and log groups."""
    outputs_retention_days: int | None = None
    """Overrides the outputs bucket's ``expire_after_days`` from the wiring."""
    max_upload_bytes: int | None = None
    """The largest file a client may upload, in one POST or in parts; None keeps the settings' limits (5 GiB in
    one POST, S3's 5 TiB object limit in parts)."""
    process_memory_mb: int | None = None
    """Overrides the Lambda worker's memory (and with it its vCPUs: one per 1,769 MB) from the wiring."""
    process_ephemeral_storage_mib: int = 10240
    """The Lambda worker's /tmp, which holds the input and every rendition of a job."""
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    api_rate_limit: int = 100
    """Requests per second across the stage, in steady state (API Gateway's token bucket)."""
    api_burst_limit: int = 200
    custom_domain: CustomDomain | None = None
    web_acl_arn: str | None = None
    """A regional WAFv2 web ACL to associate with the API's stage."""
    api_logs_role: bool = True
    """Set API Gateway's account-wide CloudWatch role (needed once per account and region for access logs);
    False when the account already has one."""
    alarm_topic: sns.ITopic | None = None
    """Where alarms go; None creates a topic (its ARN is a stack output)."""
    alarm_email: str | None = None
    """Subscribed to the alarm topic (the address must confirm the subscription)."""
    # The Fargate worker (infra/fargate.py) takes the jobs too long for the Lambda worker.
    lambda_time_budget_seconds: int | None = None
    """Jobs estimated to run longer than this go to Fargate instead of the Lambda worker."""
    fargate_cpu: int | None = None
    """CPU units of a Fargate worker task (1024 = 1 vCPU)."""
    fargate_memory_mib: int | None = None
    fargate_max_tasks: int | None = None
    # Notifications (infra/websocket.py and the notify function).
    webhook_retry_delays_seconds: tuple[int, ...] | None = None
    """Wait before each retry of a failed webhook delivery; its length is the number of retries."""
    tenant_limits: TenantLimits | None = None
    """The limits of every tenant without overrides (``videojobs admin set-limits`` sets those); None keeps
    the settings' defaults (``videojobs.settings.TenantLimitSettings``)."""
    event_bus: events.IEventBus | None = None
    """The EventBridge bus every job event is put on; None creates one (its name and ARN are attributes)."""
    event_retention_days: int | None = None
    """How long the event log keeps events (SSE resume, webhook endpoint replay): 1 to 30, default 7."""
    endpoint_disable_after_seconds: int | None = None
    """A webhook endpoint whose every delivery failed for this long is disabled (default 5 days)."""
    sse_transport: Literal["stream", "long_poll"] = "stream"
    """How ``GET /jobs/{id}/events`` answers: one streamed response per client (API Gateway's response
    streaming, up to 15 minutes, with its function's ``stream_handler``), or long polls of at most ~25 s each
    where streaming is not wanted (buffered responses; each reconnect is a new request)."""
    authorizer_cache_ttl_seconds: int = wiring.AUTHORIZER_CACHE_SECONDS
    """API Gateway caches the authorizer's answer per key this long (0 to 3600): a revoked key is refused at
    once if it was not used within this time, else at most this much later."""

    def __post_init__(self) -> None:
        # Fail at synth, with the prop's name, rather than at deploy time or in a function's cold start.
        checks = {
            "outputs_retention_days": self.outputs_retention_days is None or self.outputs_retention_days >= 1,
            "max_upload_bytes": self.max_upload_bytes is None or 0 < self.max_upload_bytes <= env.S3_OBJECT_LIMIT,
            "process_memory_mb": self.process_memory_mb is None or 128 <= self.process_memory_mb <= 10240,
            "process_ephemeral_storage_mib": 512 <= self.process_ephemeral_storage_mib <= 10240,
            "authorizer_cache_ttl_seconds": 0 <= self.authorizer_cache_ttl_seconds <= 3600,
            "api_rate_limit": self.api_rate_limit > 0,
            "api_burst_limit": self.api_burst_limit >= self.api_rate_limit,
            "lambda_time_budget_seconds": self.lambda_time_budget_seconds is None
            or 0 < self.lambda_time_budget_seconds < wiring.FUNCTIONS[PROCESS].timeout_seconds,
            "fargate_cpu": self.fargate_cpu is None or self.fargate_cpu in FARGATE_CPU_UNITS,
            "fargate_memory_mib": self.fargate_memory_mib is None or 512 <= self.fargate_memory_mib <= 122880,
            "fargate_max_tasks": self.fargate_max_tasks is None or self.fargate_max_tasks >= 1,
            "event_retention_days": self.event_retention_days is None
            or 1 <= self.event_retention_days <= env.MAX_EVENT_RETENTION_DAYS,
            "endpoint_disable_after_seconds": self.endpoint_disable_after_seconds is None
            or self.endpoint_disable_after_seconds > 0,
            "sse_transport": self.sse_transport in ("stream", "long_poll"),
            "webhook_retry_delays_seconds": self.webhook_retry_delays_seconds is None
            or all(delay > 0 for delay in self.webhook_retry_delays_seconds),
        }
        invalid = [name for name, valid in checks.items() if not valid]
        if invalid:
            raise ValueError(f"invalid VideoJobsProps: {', '.join(invalid)}")


def settings_overrides(props: VideoJobsProps) -> dict[str, str]:
    """The function settings the props change, as environment variables: each goes to every function whose
    settings model reads it (``VideoJobs._environment``). The one way a prop reaches a function's environment."""
    overrides = {}
    if props.max_upload_bytes is not None:
        # One limit for every upload, whichever way it comes: a single POST can carry at most 5 GiB anyway.
        overrides[env.MAX_UPLOAD_BYTES] = str(min(props.max_upload_bytes, env.S3_SINGLE_UPLOAD_LIMIT))
        overrides[env.MAX_MULTIPART_UPLOAD_BYTES] = str(props.max_upload_bytes)
    if props.lambda_time_budget_seconds is not None:
        overrides[env.LAMBDA_TIME_BUDGET_SECONDS] = str(props.lambda_time_budget_seconds)
    if props.webhook_retry_delays_seconds is not None:
        overrides[env.WEBHOOK_RETRY_DELAYS] = ",".join(str(delay) for delay in props.webhook_retry_delays_seconds)
    if props.tenant_limits is not None:
        overrides |= props.tenant_limits.as_environment()
    if props.event_retention_days is not None:
        overrides[env.EVENT_RETENTION_DAYS] = str(props.event_retention_days)
    if props.endpoint_disable_after_seconds is not None:
        overrides[env.ENDPOINT_DISABLE_AFTER_SECONDS] = str(props.endpoint_disable_after_seconds)
    return overrides


def settings_reads(settings: type[env.FunctionSettings] | None) -> set[str]:
    """The environment variables a settings model reads."""
    return {field.alias for field in settings.model_fields.values() if field.alias} if settings else set()


@dataclass(frozen=True)
class BoundResource:
    """A resource of the wiring as CDK made it: what a consumer's environment variable holds, and its grants."""

    location: str
    grants: dict[wiring.Access, Callable[[iam.IGrantable], object]]


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
    keep = ["videojobs", "videojobs/**", "functions", directory, f"{directory}/**"]
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
        # Every job event is also put here (the notify function); integrators route them with rules.
        self.event_bus: events.IEventBus = self.props.event_bus or events.EventBus(self, "EventBus")
        self.functions: dict[str, lambda_.Function] = self._functions()
        self.aliases: dict[str, lambda_.Alias] = self._snap_start_aliases()
        self.stream_failures_queue: sqs.Queue | None = None
        self._triggers()
        self.domain: apigw.DomainName | None = None
        self.api: apigw.RestApi = self._api()
        self.websocket_stage = add_websocket_api(self)
        self.fargate_services = add_fargate_workers(self)
        # A chunk worker removes the pieces it wrote when its job is cancelled or its chunk taken from it.
        self.buckets[OUTPUTS].grant_delete(self.functions[CHUNK])

        # Feature modules (infra/fargate.py, infra/websocket.py) add their resources above this comment, one call
        # each. Monitoring and the cdk-nag acknowledgements below find everything in this construct by walking
        # it, so what they add gets alarms, a place on the dashboard and the same nag scrutiny without an edit.
        self.monitoring = Monitoring(
            self, "Monitoring", watched=self, api=self.api, topic=self.props.alarm_topic, email=self.props.alarm_email
        )
        nag.acknowledge_findings(self)
        add_cost_tags(self, self.props.project_tag)

    # -- data ---------------------------------------------------------------------------------------------

    def _tables(self) -> dict[str, dynamodb.Table]:
        tables = {}
        for name, decl in wiring.TABLES.items():
            table = dynamodb.Table(
                self,
                f"{_pascal(name)}Table",
                partition_key=dynamodb.Attribute(name=decl.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=decl.sort_key, type=dynamodb.AttributeType.STRING)
                if decl.sort_key
                else None,
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
                    projection_type=dynamodb.ProjectionType[index.projection_type],
                    non_key_attributes=list(index.projection) if index.projection else None,
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
            if decl.browser_methods:
                rule = wiring.BROWSER_CORS
                cors = [
                    s3.CorsRule(
                        allowed_methods=[s3.HttpMethods(method) for method in decl.browser_methods],
                        allowed_origins=list(rule.origins),
                        allowed_headers=list(rule.headers),
                        exposed_headers=list(rule.exposed_headers),
                        max_age=rule.max_age_seconds,
                    )
                ]
            buckets[name] = s3.Bucket(
                self,
                f"{_pascal(name)}Bucket",
                lifecycle_rules=[
                    s3.LifecycleRule(
                        expiration=Duration.days(days) if days else None,
                        abort_incomplete_multipart_upload_after=Duration.days(decl.abort_incomplete_uploads_after_days),
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
            log_group = logs.LogGroup(
                self,
                f"{_pascal(name)}Logs",
                retention=self.props.log_retention,
                removal_policy=self.props.removal_policy,
            )
            common: dict[str, Any] = dict(
                role=self._role(name, log_group),
                memory_size=decl.memory_mb,
                timeout=Duration.seconds(decl.timeout_seconds),
                tracing=lambda_.Tracing.ACTIVE,
                logging_format=lambda_.LoggingFormat.JSON,
                log_group=log_group,
                environment=self._environment(decl),
                reserved_concurrent_executions=decl.reserved_concurrency,
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
                    ephemeral_storage_size=Size.mebibytes(self.props.process_ephemeral_storage_mib),
                    **common,
                )
            else:
                layer = layer or self._dependencies_layer()
                handler = decl.handler
                if self.streams(decl):
                    # Python has no streaming handler: videojobs.lambda_streaming runs as the runtime (the exec
                    # wrapper starts it instead of the managed loop) and streams what stream_handler returns.
                    handler = str(decl.stream_handler)
                    common["timeout"] = Duration.seconds(wiring.RESPONSE_STREAMING.max_seconds)
                    common["environment"] = {
                        **common["environment"],
                        **wiring.RESPONSE_STREAMING.settings(),
                        "AWS_LAMBDA_EXEC_WRAPPER": f"/var/task/{decl.directory}/{STREAM_BOOTSTRAP}",
                    }
                fn = lambda_.Function(
                    self,
                    f"{_pascal(name)}Function",
                    snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if self.snap_starts(name) else None,
                    current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
                    runtime=ZIP_RUNTIME,
                    architecture=lambda_.Architecture.ARM_64,
                    handler=handler,
                    code=_zip_code(decl.directory),
                    layers=[layer],
                    **common,
                )
            functions[name] = fn
        for name, decl in wiring.FUNCTIONS.items():
            self.grant(functions[name], decl.uses)
        return functions

    def _snap_start_aliases(self) -> dict[str, lambda_.Alias]:
        # SnapStart snapshots a version when it is published and restores only versions, so API Gateway must
        # invoke an alias of the current version ($LATEST would start cold). A superseded version is deleted
        # on deploy: each kept version's snapshot is billed (caching) for as long as it exists.
        aliases = {}
        for name, fn in self.functions.items():
            if self.snap_starts(name):
                version = fn.current_version
                aliases[name] = lambda_.Alias(
                    self, f"{_pascal(name)}Live", alias_name=wiring.LIVE_ALIAS, version=version
                )
        return aliases

    def invocable(self, name: str) -> lambda_.IFunction:
        """What a caller (API Gateway, its authorizer) invokes: the SnapStart alias, or else the function."""
        return self.aliases.get(name) or self.functions[name]

    def streams(self, decl: wiring.Function) -> bool:
        """Whether API Gateway streams this function's responses in this deployment."""
        return decl.stream_handler is not None and self.props.sse_transport == "stream"

    def snap_starts(self, name: str) -> bool:
        """SnapStart as the wiring says, except where the function streams: its runtime is then
        videojobs.lambda_streaming, not the managed one SnapStart snapshots and restores (and a stream's one
        init serves up to 15 minutes)."""
        return wiring.snap_start(name) and not self.streams(wiring.FUNCTIONS[name])

    def _role(self, name: str, log_group: logs.LogGroup) -> iam.Role:
        # One role per function, with no managed policy: AWSLambdaBasicExecutionRole would let it write to any
        # log group. It may write its own; the wiring's grants (and tracing) add the rest.
        role = iam.Role(
            self,
            f"{_pascal(name)}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"videojobs {name} function",
        )
        log_group.grant_write(role)
        return role

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

    def _environment(self, decl: wiring.Function) -> dict[str, str]:
        environment = {"POWERTOOLS_SERVICE_NAME": SERVICE_NAME, "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE}
        environment |= TRACER_ENVIRONMENT
        environment |= self.locations(decl.uses)
        reads = settings_reads(decl.settings)
        environment |= {
            variable: value for variable, value in settings_overrides(self.props).items() if variable in reads
        }
        return environment

    def bound(self, ref: wiring.ResourceRef) -> BoundResource | None:
        """A resource of the wiring as made here; None for the WebSocket API, which ``infra/websocket.py``
        creates later and wires itself (its URL and its grants)."""
        match ref:
            case wiring.TableRef(name):
                table = self.tables[name]
                return BoundResource(
                    table.table_name,
                    {
                        "read": table.grant_read_data,
                        "write": table.grant_write_data,
                        "read_write": table.grant_read_write_data,
                    },
                )
            case wiring.BucketRef(name):
                bucket = self.buckets[name]
                return BoundResource(
                    bucket.bucket_name,
                    {"read": bucket.grant_read, "write": bucket.grant_put, "read_write": bucket.grant_read_write},
                )
            case wiring.QueueRef(name):
                return _bound_queue(self.queues[name])
            case wiring.DeadLetterQueueRef(name):
                return _bound_queue(self.dead_letter_queues[name])
            case wiring.WebSocketRef():
                return None
            case wiring.EventBusRef():
                # PutEvents on this bus only (``grant_put_events_to`` scopes the statement to its ARN).
                return BoundResource(self.event_bus.event_bus_name, {"write": self.event_bus.grant_put_events_to})

    def locations(self, uses: dict[str, wiring.Access]) -> dict[str, str]:
        """The environment variables that tell a consumer with these ``uses`` where its resources are."""
        bound = {ref: self.bound(ref) for ref in wiring.refs(uses)}
        return {ref.env_var: resource.location for ref, resource in bound.items() if resource is not None}

    def grant(self, grantee: iam.IGrantable, uses: dict[str, wiring.Access]) -> None:
        """The IAM grants of these ``uses`` (a function's or a container service's)."""
        for ref, access in wiring.refs(uses).items():
            resource = self.bound(ref)
            if resource is not None:
                resource.grants[access](grantee)

    def _triggers(self) -> None:
        # Event sources grant their own read access (SQS consume, stream read) to the function.
        for name, decl in wiring.QUEUES.items():
            if decl.consumer in self.functions:  # else a container service polls it (infra/fargate.py)
                self.functions[decl.consumer].add_event_source(
                    sources.SqsEventSource(
                        self.queues[name],
                        batch_size=decl.batch_size,
                        max_concurrency=decl.max_concurrency,
                        report_batch_item_failures=True,
                    )
                )
            if decl.dead_letter_consumer:
                self.functions[decl.dead_letter_consumer].add_event_source(
                    sources.SqsEventSource(
                        self.dead_letter_queues[name],
                        batch_size=decl.dead_letter_batch_size,
                        report_batch_item_failures=True,
                    )
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
            self, "ApiAccessLogs", retention=self.props.log_retention, removal_policy=self.props.removal_policy
        )
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=Names.unique_resource_name(self, max_length=128, separator="-"),
            description="videojobs: long-running media jobs",
            binary_media_types=list(wiring.BINARY_MEDIA_TYPES) or None,
            # Each tenant's key comes from the authorizer (usageIdentifierKey), never from a client's x-api-key.
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            # Access logging needs the account's CloudWatch role; kept on stack deletion (other APIs use it).
            cloud_watch_role=self.props.api_logs_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if self.props.api_logs_role else None,
            deploy_options=apigw.StageOptions(
                stage_name=wiring.API_STAGE,
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
                throttling_rate_limit=self.props.api_rate_limit,
                throttling_burst_limit=self.props.api_burst_limit,
            ),
        )
        self._gateway_responses(api)
        if self.props.custom_domain is not None:
            self.domain = self._custom_domain(api, self.props.custom_domain)
        if self.props.web_acl_arn is not None:
            wafv2.CfnWebACLAssociation(
                self,
                "WebAclAssociation",
                resource_arn=api.deployment_stage.stage_arn,
                web_acl_arn=self.props.web_acl_arn,
            )

        authorizer = None
        if any(route.authorized for route in wiring.ROUTES):
            authorizer = apigw.RequestAuthorizer(
                self,
                "Authorizer",
                handler=self.invocable(wiring.AUTHORIZER),
                identity_sources=[apigw.IdentitySource.header("Authorization")],
                results_cache_ttl=Duration.seconds(self.props.authorizer_cache_ttl_seconds),
            )
        integrations: dict[str, apigw.LambdaIntegration] = {}
        for route in wiring.ROUTES:
            if route.function not in integrations:
                # One invoke permission per function for this API, not one per method (nor one more per method
                # for the console's test-invoke stage): with every route and the SnapStart versions and aliases,
                # those alone would add tens of resources to a stack CloudFormation caps at 500.
                streamed = self.streams(wiring.FUNCTIONS[route.function])
                integrations[route.function] = apigw.LambdaIntegration(
                    self.invocable(route.function),
                    scope_permission_to_method=False,
                    allow_test_invoke=False,
                    # Streamed: InvokeWithResponseStream, and the response may last up to 15 minutes.
                    response_transfer_mode=apigw.ResponseTransferMode.STREAM if streamed else None,
                    timeout=Duration.seconds(wiring.RESPONSE_STREAMING.max_seconds) if streamed else None,
                )
            api.root.resource_for_path(route.path).add_method(
                route.method,
                integrations[route.function],
                authorizer=authorizer if route.authorized else None,
                authorization_type=apigw.AuthorizationType.CUSTOM if route.authorized else apigw.AuthorizationType.NONE,
                # The tenant's usage plan throttles it here, before the function is invoked.
                api_key_required=route.authorized,
            )
        self.tenant_usage_plan = self._tenant_usage_plan(api)
        return api

    def _tenant_usage_plan(self, api: apigw.RestApi) -> apigw.UsagePlan:
        """The request rate of every tenant without its own (``videojobs.usage_plans``): API Gateway's token
        bucket per tenant key, checked before any function runs; past it, THROTTLED (429 ``rate_limited``)."""
        limits = self.props.tenant_limits or TenantLimits.settings_defaults()
        return api.add_usage_plan(
            "TenantUsagePlan",
            description="videojobs: each tenant's request rate (tenants with their own rate have their own plan)",
            throttle=apigw.ThrottleSettings(rate_limit=limits.requests_per_second, burst_limit=limits.burst),
            api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
        )

    def _custom_domain(self, api: apigw.RestApi, domain: CustomDomain) -> apigw.DomainName:
        # The base path repeats the stage name, so URLs read the same on both hosts: https://<host>/v1/jobs.
        name = api.add_domain_name(
            "Domain",
            domain_name=domain.name,
            certificate=acm.Certificate.from_certificate_arn(self, "Certificate", domain.certificate_arn),
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
            base_path=wiring.API_BASE_PATH,
        )
        if domain.hosted_zone_id and domain.hosted_zone_name:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "HostedZone", hosted_zone_id=domain.hosted_zone_id, zone_name=domain.hosted_zone_name
            )
            route53.ARecord(
                self,
                "DomainRecord",
                zone=zone,
                record_name=domain.name,
                target=route53.RecordTarget.from_alias(route53_targets.ApiGatewayDomain(name)),
            )
        return name

    @staticmethod
    def _gateway_responses(api: apigw.RestApi) -> None:
        for error in wiring.GATEWAY_ERRORS.values():
            response_type = apigw.ResponseType.of(error.response_type)
            api.add_gateway_response(
                f"{response_type.response_type}Response",
                type=response_type,
                status_code=str(error.status) if error.status else None,
                response_headers={"Content-Type": "'application/json'"}
                | {name: f"'{value}'" for name, value in error.headers},
                templates=_error_body(str(error.code), error.message),
            )


def _bound_queue(queue: sqs.IQueue) -> BoundResource:
    def read_write(grantee: iam.IGrantable) -> None:
        queue.grant_send_messages(grantee)
        queue.grant_consume_messages(grantee)

    return BoundResource(
        queue.queue_url,
        {"read": queue.grant_consume_messages, "write": queue.grant_send_messages, "read_write": read_write},
    )
