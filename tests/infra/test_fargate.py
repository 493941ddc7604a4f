"""The long-jobs workers in the template: the worker image on Fargate, its queue, its grants and its scaling."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.construct import VideoJobs
from tests.infra.conftest import Synth
from videojobs import settings, wiring

SERVICE = "long_worker"


@pytest.fixture(scope="module")
def task(synth: Synth) -> dict[str, Any]:
    (definition,) = synth.of_type("AWS::ECS::TaskDefinition").values()
    return definition["Properties"]


def _statements(synth: Synth, role_lid: str) -> list[dict[str, Any]]:
    return [
        statement
        for res in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_lid} in res["Properties"]["Roles"]
        for statement in res["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions_on(statements: list[dict[str, Any]], lid: str) -> set[str]:
    actions: set[str] = set()
    for statement in statements:
        if f'"{lid}"' in json.dumps(statement["Resource"]):
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def test_tasks_run_the_lambda_workers_image_with_the_consumer_as_entry_point(
    synth: Synth, service: VideoJobs, task: dict[str, Any]
) -> None:
    (container,) = task["ContainerDefinitions"]
    lambda_image = synth.resource(service.functions["process"])["Properties"]["Code"]["ImageUri"]
    assert container["Image"] == lambda_image  # one asset: built and pushed once
    assert container["EntryPoint"] == ["python3", "-m", wiring.SERVICES[SERVICE].module]
    assert task["RuntimePlatform"] == {"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"}
    assert task["EphemeralStorage"] == {"SizeInGiB": wiring.SERVICES[SERVICE].ephemeral_storage_gib}
    assert container["StopTimeout"] == 120
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_task_environment_satisfies_the_worker_settings(task: dict[str, Any]) -> None:
    (container,) = task["ContainerDefinitions"]
    names = {variable["Name"] for variable in container["Environment"]}
    model = wiring.SERVICES[SERVICE].settings
    assert model is not None
    required = {field.alias for field in model.model_fields.values() if field.is_required()}
    assert required <= names
    assert settings.LONG_JOBS_QUEUE_URL in names


def test_the_long_jobs_queue_feeds_no_lambda_and_dead_letters_end_the_job(synth: Synth, service: VideoJobs) -> None:
    queue = wiring.SERVICES[SERVICE].queue
    queue_arn = {"Fn::GetAtt": [synth.logical_id(service.queues[queue]), "Arn"]}
    dlq_arn = {"Fn::GetAtt": [synth.logical_id(service.dead_letter_queues[queue]), "Arn"]}
    mappings = [res["Properties"] for res in synth.of_type("AWS::Lambda::EventSourceMapping").values()]
    assert not [m for m in mappings if m["EventSourceArn"] == queue_arn]
    (dead_letters,) = [m for m in mappings if m["EventSourceArn"] == dlq_arn]
    fail_dead_jobs = synth.logical_id(service.functions[wiring.QUEUES[queue].dead_letter_consumer or ""])
    assert dead_letters["FunctionName"] == {"Ref": fail_dead_jobs}
    assert synth.resource(service.queues[queue])["Properties"]["VisibilityTimeout"] == (
        wiring.SERVICES[SERVICE].visibility_timeout_seconds
    )


def test_task_role_reads_uploads_writes_and_deletes_outputs_and_consumes_only_its_queue(
    synth: Synth, service: VideoJobs, task: dict[str, Any]
) -> None:
    statements = _statements(synth, task["TaskRoleArn"]["Fn::GetAtt"][0])
    uploads = _actions_on(statements, synth.logical_id(service.buckets["uploads"]))
    outputs = _actions_on(statements, synth.logical_id(service.buckets["outputs"]))
    assert "s3:GetObject*" in uploads and not {a for a in uploads if a.startswith(("s3:Put", "s3:Delete"))}
    assert {"s3:PutObject", "s3:DeleteObject*"} <= outputs and "s3:GetObject*" not in outputs
    own_queue = _actions_on(statements, synth.logical_id(service.queues[wiring.SERVICES[SERVICE].queue]))
    assert {"sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:DeleteMessage"} <= own_queue
    assert not _actions_on(statements, synth.logical_id(service.queues["jobs"]))


def test_the_lambda_worker_may_hand_jobs_on_and_remove_its_partial_outputs(synth: Synth, service: VideoJobs) -> None:
    role = synth.logical_id(service.functions["process"].role)  # type: ignore[arg-type]
    statements = _statements(synth, role)
    long_jobs = _actions_on(statements, synth.logical_id(service.queues[wiring.SERVICES[SERVICE].queue]))
    assert "sqs:SendMessage" in long_jobs and "sqs:ReceiveMessage" not in long_jobs
    assert "s3:DeleteObject*" in _actions_on(statements, synth.logical_id(service.buckets["outputs"]))


def test_service_scales_from_zero_to_one_task_per_job_waiting_or_running(synth: Synth) -> None:
    (target,) = synth.of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (
        0,
        wiring.SERVICES[SERVICE].max_tasks,
    )
    policies = [res["Properties"] for res in synth.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    assert {p["StepScalingPolicyConfiguration"]["AdjustmentType"] for p in policies} == {"ExactCapacity"}
    alarms = [
        res["Properties"]
        for res in synth.of_type("AWS::CloudWatch::Alarm").values()
        if any(m.get("Expression") == "visible + inflight" for m in res["Properties"].get("Metrics", []))
    ]
    assert len(alarms) == 2  # the scale-in and scale-out alarms of the step policy
    metric_names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarms[0]["Metrics"] if "MetricStat" in m}
    # In-flight messages count: a task busy with a job is never scaled away under it.
    assert metric_names == {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"}


def test_tasks_get_public_ips_and_no_inbound_rule(synth: Synth) -> None:
    (fargate,) = synth.of_type("AWS::ECS::Service").values()
    network = fargate["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "ENABLED"
    for group in synth.of_type("AWS::EC2::SecurityGroup").values():
        assert not group["Properties"].get("SecurityGroupIngress")
    endpoints = [res["Properties"] for res in synth.of_type("AWS::EC2::VPCEndpoint").values()]
    assert {e["VpcEndpointType"] for e in endpoints} == {"Gateway"} and len(endpoints) == 2
