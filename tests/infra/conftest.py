"""Synthesize the project's stack once per session; the tests read the template and the staged assets."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# jsii unpacks ~200 MB at its first run: keep it inside the project (as the Makefile does), and quiet.
_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_RUNTIME_PACKAGE_CACHE_ROOT", str(_ROOT / ".cache" / "jsii"))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk import aws_events as events  # noqa: E402
from aws_cdk import aws_events_targets as targets  # noqa: E402
from aws_cdk import aws_logs as logs  # noqa: E402
from aws_cdk import aws_sns as sns  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402
from constructs import IConstruct  # noqa: E402

from infra import construct as infra_construct  # noqa: E402
from infra.app import build  # noqa: E402
from infra.construct import CustomDomain, VideoJobs, VideoJobsProps  # noqa: E402
from infra.stack import VideoJobsStack  # noqa: E402
from videojobs.tenant_limits import TenantLimits  # noqa: E402

# Synth must need no AWS account, credentials or environment.
_UNSET = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "CDK_DEFAULT_ACCOUNT",
    "CDK_DEFAULT_REGION",
)


@dataclass(frozen=True)
class Synth:
    stack: Stack
    template: Template
    raw: dict[str, Any]
    outdir: Path
    template_path: Path

    def logical_id(self, construct: IConstruct) -> str:
        """The logical ID of a construct's CloudFormation resource (its ``default_child`` for L2s)."""
        return self.stack.get_logical_id(construct.node.default_child or construct)  # type: ignore[arg-type]

    def resource(self, construct: IConstruct) -> dict[str, Any]:
        return self.raw["Resources"][self.logical_id(construct)]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.raw["Resources"].items() if res["Type"] == cfn_type}


def _bundling_must_not_run(*_: Any, **__: Any) -> bool:
    raise AssertionError("the dependency layer was bundled: tests must skip bundling (pip is slow)")


@pytest.fixture(scope="session")
def offline_synth() -> Iterator[pytest.MonkeyPatch]:
    """No credentials, no CDK environment, and a guard that fails synth if the layer's pip ever runs."""
    with pytest.MonkeyPatch.context() as patch:
        for name in _UNSET:
            patch.delenv(name, raising=False)
        patch.setattr(infra_construct._PipLayerBundling, "try_bundle", _bundling_must_not_run)
        yield patch


def new_app(outdir: Path) -> App:
    # An empty list of stacks to bundle makes CDK skip bundling: no pip run, no Docker.
    return App(outdir=str(outdir), context={"aws:cdk:bundling-stacks": []})


def synthesize(stack: Stack, outdir: Path) -> Synth:
    assembly = stack.node.root.synth()  # type: ignore[attr-defined]
    raw = assembly.get_stack_by_name(stack.stack_name).template
    return Synth(stack, Template.from_json(raw), raw, outdir, outdir / stack.template_file)


@pytest.fixture(scope="session")
def synth(offline_synth: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The project's own stack, exactly as ``python -m infra.app`` builds it."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    stack = build(new_app(outdir))
    return synthesize(stack, outdir)


@pytest.fixture(scope="session")
def service(synth: Synth) -> infra_construct.VideoJobs:
    assert isinstance(synth.stack, VideoJobsStack)
    return synth.stack.service


# Every prop away from its default, to prove each one reaches the template (and passes nag and cfn-lint).
CUSTOM = VideoJobsProps(
    outputs_retention_days=3,
    max_upload_bytes=1024**3,
    process_memory_mb=4096,
    process_ephemeral_storage_mib=4096,
    log_retention=logs.RetentionDays.THREE_MONTHS,
    api_rate_limit=20,
    api_burst_limit=40,
    custom_domain=CustomDomain(
        name="media.example.com",
        certificate_arn="arn:aws:acm:eu-west-1:111122223333:certificate/0a1b2c3d-0000-4000-8000-000000000000",
        hosted_zone_id="Z0123456789EXAMPLE",
        hosted_zone_name="example.com",
    ),
    web_acl_arn="arn:aws:wafv2:eu-west-1:111122223333:regional/webacl/edge/0a1b2c3d-0000-4000-8000-000000000000",
    api_logs_role=False,
    alarm_email="ops@example.com",
    lambda_time_budget_seconds=300,
    tenant_limits=TenantLimits(
        max_active_jobs=2,
        max_pending_jobs=20,
        max_upload_bytes_per_day=10 * 1024**3,
        requests_per_second=5,
        burst=10,
        max_open_streams=3,
    ),
    webhook_retry_delays_seconds=(10, 60),
    event_retention_days=14,
    endpoint_disable_after_seconds=2 * 24 * 3600,
    sse_transport="long_poll",
)


@dataclass(frozen=True)
class Twice:
    """The construct twice in one app, each in a stack of its own (the two together would pass CloudFormation's
    500 resources per stack): ``Defaults`` with default props, ``Custom`` with ``CUSTOM`` and its own topic, event
    bus and the README's rule example."""

    defaults_stack: Synth
    custom_stack: Synth
    defaults: VideoJobs
    custom: VideoJobs
    ops_topic: sns.Topic
    ops_bus: events.EventBus

    @property
    def stacks(self) -> tuple[Synth, Synth]:
        return (self.defaults_stack, self.custom_stack)

    def synth_of(self, construct: IConstruct) -> Synth:
        """The synthesized stack that holds ``construct``."""
        (found,) = [synth for synth in self.stacks if synth.stack is Stack.of(construct)]
        return found

    def logical_id(self, construct: IConstruct) -> str:
        return self.synth_of(construct).logical_id(construct)

    def resource(self, construct: IConstruct) -> dict[str, Any]:
        return self.synth_of(construct).resource(construct)

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        """The app's resources of ``cfn_type``, in both stacks, keyed ``<stack name>/<logical ID>``."""
        return {
            f"{synth.stack.stack_name}/{lid}": res
            for synth in self.stacks
            for lid, res in synth.of_type(cfn_type).items()
        }


@pytest.fixture(scope="session")
def twice(offline_synth: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Twice:
    """One app holding the construct twice, in two stacks: once with default props, once with ``CUSTOM`` (and its
    own topic and event bus)."""
    outdir = tmp_path_factory.mktemp("twice")
    app = new_app(outdir)
    defaults_stack = Stack(app, "TwiceDefaults")
    defaults = VideoJobs(defaults_stack, "Defaults")
    custom_stack = Stack(app, "TwiceCustom")
    ops_topic = sns.Topic(custom_stack, "OpsTopic", enforce_ssl=True)
    ops_bus = events.EventBus(custom_stack, "OpsBus")
    custom = VideoJobs(
        custom_stack, "Custom", props=dataclasses.replace(CUSTOM, alarm_topic=ops_topic, event_bus=ops_bus)
    )
    # The README's rule example, verbatim: one tenant's failed jobs to a topic.
    events.Rule(
        custom_stack,
        "AcmeFailedJobs",
        event_bus=custom.event_bus,
        event_pattern=events.EventPattern(
            source=["videojobs"], detail_type=["job.failed"], detail={"tenant_id": ["acme"]}
        ),
        targets=[targets.SnsTopic(ops_topic)],
    )
    return Twice(
        defaults_stack=synthesize(defaults_stack, outdir),
        custom_stack=synthesize(custom_stack, outdir),
        defaults=defaults,
        custom=custom,
        ops_topic=ops_topic,
        ops_bus=ops_bus,
    )


@pytest.fixture(scope="session")
def twice_defaults(twice: Twice) -> Synth:
    """The stack of ``twice`` holding the construct with default props."""
    return twice.defaults_stack


@pytest.fixture(scope="session")
def twice_custom(twice: Twice) -> Synth:
    """The stack of ``twice`` holding the construct with every prop set, its topic, bus and rule."""
    return twice.custom_stack


def policy_documents(raw: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every policy document in a template (IAM, bucket, queue, topic, key…) with its resource's logical ID."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(lid: str, value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("Statement"), list):
                found.append((lid, value))
            for item in value.values():
                walk(lid, item)
        elif isinstance(value, list):
            for item in value:
                walk(lid, item)

    for lid, res in raw["Resources"].items():
        walk(lid, res.get("Properties", {}))
    return found
