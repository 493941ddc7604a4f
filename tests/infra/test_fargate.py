"""The long-jobs workers in the template: the worker image on Fargate, its queue, its grants and its scaling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.construct import VideoJobs
from infra.scaling import Scaling, backlog_scaling
from tests.infra.conftest import Synth
from videojobs import settings, wiring
from videojobs.metric_names import TASK_PROTECTION_FAILED

SERVICE = "long_worker"
ROOT = Path(__file__).resolve().parents[2]


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
    assert container["EntryPoint"][-3:] == ["python3", "-m", wiring.SERVICES[SERVICE].module]
    assert task["RuntimePlatform"] == {"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"}
    assert task["EphemeralStorage"] == {"SizeInGiB": wiring.SERVICES[SERVICE].ephemeral_storage_gib}
    assert container["StopTimeout"] == 120
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_tasks_do_not_believe_they_run_in_lambda_and_do_not_trace(task: dict[str, Any]) -> None:
    """The entry point run with the image's environment (its Lambda base sets LAMBDA_TASK_ROOT) and the task's."""
    (container,) = task["ContainerDefinitions"]
    *launcher, _, _, _ = container["EntryPoint"]
    environment = {var["Name"]: var["Value"] for var in container["Environment"] if isinstance(var["Value"], str)}
    assert environment["POWERTOOLS_TRACE_DISABLED"] == "true"
    image = {**os.environ, "LAMBDA_TASK_ROOT": "/var/task"}
    check = "import os; "
    check += (
        "from videojobs.observability import get_tracer; print(os.getenv('LAMBDA_TASK_ROOT'), get_tracer().disabled)"
    )
    done = subprocess.run(
        [*launcher, sys.executable, "-c", check], env=image | environment, cwd=ROOT, capture_output=True, text=True
    )
    assert done.stdout.split() == ["None", "True"], done.stderr


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


def test_task_role_may_set_its_own_scale_in_protection(synth: Synth, task: dict[str, Any]) -> None:
    statements = _statements(synth, task["TaskRoleArn"]["Fn::GetAtt"][0])
    (protection,) = [s for s in statements if "ecs:UpdateTaskProtection" in s["Action"]]
    assert set(protection["Action"]) == {"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}
    (cluster,) = synth.of_type("AWS::ECS::Cluster")
    resource = json.dumps(protection["Resource"])
    assert ":task/" in resource and cluster in resource  # this cluster's tasks only


def test_a_refused_protection_raises_an_alarm(synth: Synth, service: VideoJobs) -> None:
    alarms = [synth.resource(alarm)["Properties"] for alarm in service.monitoring.alarms]
    (alarm,) = [a for a in alarms if f'"MetricName": "{TASK_PROTECTION_FAILED}"' in json.dumps(a)]
    (metric,) = [m["MetricStat"] for m in alarm["Metrics"]]  # what the consumer emits
    assert (metric["Metric"]["Namespace"], metric["Stat"], alarm["Threshold"]) == ("VideoJobs", "Sum", 1)


def test_the_lambda_worker_may_hand_jobs_on_and_remove_its_partial_outputs(synth: Synth, service: VideoJobs) -> None:
    role = synth.logical_id(service.functions["process"].role)  # type: ignore[arg-type]
    statements = _statements(synth, role)
    long_jobs = _actions_on(statements, synth.logical_id(service.queues[wiring.SERVICES[SERVICE].queue]))
    assert "sqs:SendMessage" in long_jobs and "sqs:ReceiveMessage" not in long_jobs
    assert "s3:DeleteObject*" in _actions_on(statements, synth.logical_id(service.buckets["outputs"]))


def test_service_scales_on_the_backlog_of_jobs_waiting_and_running(synth: Synth) -> None:
    policies = [res["Properties"] for res in synth.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    assert {p["StepScalingPolicyConfiguration"]["AdjustmentType"] for p in policies} == {"ExactCapacity"}
    alarms = [
        res["Properties"]
        for res in synth.of_type("AWS::CloudWatch::Alarm").values()
        if any(m.get("Expression") == "visible + inflight" for m in res["Properties"].get("Metrics", []))
    ]
    assert len(alarms) == 2  # the scale-out and scale-in alarms
    for alarm in alarms:
        metric_names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}
        # In-flight messages count: a task busy with a job is never scaled away under it.
        assert metric_names == {"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible"}


def test_synthesized_scaling_gives_one_task_per_job_for_every_backlog(synth: Synth) -> None:
    """Evaluated with Application Auto Scaling's bound rules, from every starting capacity."""
    scaling = Scaling.from_template(synth.raw)
    max_tasks = wiring.SERVICES[SERVICE].max_tasks
    assert (scaling.min_capacity, scaling.max_capacity) == (0, max_tasks)
    for backlog in range(max_tasks + 2):
        assert len(scaling.firing(backlog)) == 1, f"backlog {backlog} is in {len(scaling.firing(backlog))} alarms"
        for current in range(max_tasks + 1):
            assert scaling.outcomes(backlog, current) == {min(backlog, max_tasks)}, (backlog, current)


def test_the_local_stack_scales_by_the_synthesized_policy(synth: Synth) -> None:
    # infra/local/services.py evaluates backlog_scaling: the template must say the same.
    assert Scaling.from_template(synth.raw) == backlog_scaling(wiring.SERVICES[SERVICE].max_tasks)


def test_tasks_get_public_ips_and_no_inbound_rule(synth: Synth) -> None:
    (fargate,) = synth.of_type("AWS::ECS::Service").values()
    network = fargate["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "ENABLED"
    for group in synth.of_type("AWS::EC2::SecurityGroup").values():
        assert not group["Properties"].get("SecurityGroupIngress")
    endpoints = [res["Properties"] for res in synth.of_type("AWS::EC2::VPCEndpoint").values()]
    assert {e["VpcEndpointType"] for e in endpoints} == {"Gateway"} and len(endpoints) == 2
