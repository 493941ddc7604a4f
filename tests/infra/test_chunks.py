"""The chunk path of the construct: the chunks queue (with its dead-letter queue and consumer), the chunk
function's concurrency and its grants, the chunks table, and alarms on all of it."""

from __future__ import annotations

import json
from typing import Any

from infra.construct import VideoJobs
from tests.infra.conftest import Synth
from tests.infra.test_least_privilege import _as_list, _mentions, _role_statements
from videojobs import wiring


def _mapping(synth: Synth, service: VideoJobs, queue_lid: str, function: str) -> dict[str, Any]:
    function_lid = synth.logical_id(service.functions[function])
    (found,) = [
        res["Properties"]
        for res in synth.of_type("AWS::Lambda::EventSourceMapping").values()
        if queue_lid in json.dumps(res["Properties"]["EventSourceArn"])
        and function_lid in json.dumps(res["Properties"]["FunctionName"])
    ]
    return found


def test_chunk_workers_consume_the_chunks_queue_with_their_own_concurrency(synth: Synth, service: VideoJobs) -> None:
    queue = synth.logical_id(service.queues["chunks"])
    mapping = _mapping(synth, service, queue, "chunk")
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": wiring.QUEUES["chunks"].max_concurrency}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == 1
    chunk = synth.resource(service.functions["chunk"])["Properties"]
    assert chunk["PackageType"] == "Image" and chunk["Timeout"] == 900
    # The same image as the job worker, with its own handler.
    process = synth.resource(service.functions["process"])["Properties"]
    assert chunk["Code"] == process["Code"]
    assert chunk["ImageConfig"]["Command"] == ["functions.process.chunk_handler.lambda_handler"]


def test_a_chunk_that_keeps_failing_ends_in_a_dead_letter_queue_that_fails_it(synth: Synth, service: VideoJobs) -> None:
    queue = synth.resource(service.queues["chunks"])["Properties"]
    dead = synth.logical_id(service.dead_letter_queues["chunks"])
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead, "Arn"]},
        "maxReceiveCount": wiring.QUEUES["chunks"].max_receive_count,
    }
    assert queue["VisibilityTimeout"] >= 6 * 900
    assert _mapping(synth, service, dead, "fail_dead_chunks")["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_chunk_worker_reads_jobs_and_uploads_and_writes_only_chunks_and_pieces(
    synth: Synth, service: VideoJobs
) -> None:
    statements = _role_statements(synth, service.functions["chunk"].role)  # type: ignore[arg-type]
    jobs = synth.logical_id(service.tables["jobs"])
    chunks = synth.logical_id(service.tables["chunks"])
    uploads = synth.logical_id(service.buckets["uploads"])
    outputs = synth.logical_id(service.buckets["outputs"])
    for statement in statements:
        actions = set(_as_list(statement["Action"]))
        if _mentions(statement, jobs):
            assert all(
                a.startswith(
                    (
                        "dynamodb:Get",
                        "dynamodb:Query",
                        "dynamodb:Scan",
                        "dynamodb:Batch",
                        "dynamodb:Condition",
                        "dynamodb:Describe",
                    )
                )
                for a in actions
            ), actions
            assert not {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} & actions
        elif _mentions(statement, uploads):
            assert all(a.startswith(("s3:Get", "s3:List")) for a in actions), actions
        elif _mentions(statement, outputs):
            assert all(a.startswith(("s3:PutObject", "s3:Abort", "s3:DeleteObject")) for a in actions), actions
        elif any(a.startswith("sqs:") for a in actions):
            assert all(
                a.startswith(("sqs:Receive", "sqs:Delete", "sqs:ChangeMessageVisibility", "sqs:GetQueue"))
                for a in actions
            ), actions
    assert any(_mentions(s, jobs) and "dynamodb:GetItem" in _as_list(s["Action"]) for s in statements)
    assert any(_mentions(s, chunks) and "dynamodb:UpdateItem" in _as_list(s["Action"]) for s in statements)
    # The job worker (the coordinator) sends chunks; the chunk worker never does.
    sends = [s for s in statements if "sqs:SendMessage" in _as_list(s["Action"])]
    assert sends == []
    process = _role_statements(synth, service.functions["process"].role)  # type: ignore[arg-type]
    queue = synth.logical_id(service.queues["chunks"])
    assert any(_mentions(s, queue) and "sqs:SendMessage" in _as_list(s["Action"]) for s in process)


def test_the_chunks_table_expires_its_items(synth: Synth, service: VideoJobs) -> None:
    table = synth.resource(service.tables["chunks"])["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"job_id": "HASH", "index": "RANGE"}


def test_the_chunk_path_has_alarms(synth: Synth, service: VideoJobs) -> None:
    alarms = json.dumps(synth.of_type("AWS::CloudWatch::Alarm"))
    for construct in (service.dead_letter_queues["chunks"], service.functions["chunk"], service.queues["chunks"]):
        assert synth.logical_id(construct) in alarms, construct.node.path
