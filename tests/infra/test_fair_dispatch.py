"""Fair dispatch in the template: standard (fair-capable) job queues, a bounded worker pool, the queued index,
and the worker's right to take a tenant's active-job slot."""

from __future__ import annotations

import json
from typing import Any

from infra.construct import VideoJobs
from tests.infra.conftest import Synth
from tests.infra.test_least_privilege import _as_list, _role_statements
from tests.infra.test_stack import _arn, _event_source_mappings
from videojobs import wiring
from videojobs.job_store import QUEUED_INDEX

JOB_QUEUES = ("jobs", "long_jobs")


def test_job_queues_are_standard_queues_so_message_groups_make_them_fair(synth: Synth, service: VideoJobs) -> None:
    # SQS fair queues are standard queues whose messages carry a MessageGroupId; a FIFO queue would instead
    # serialize each tenant's jobs (one in flight per group).
    for name in JOB_QUEUES:
        properties = synth.resource(service.queues[name])["Properties"]
        assert not properties.get("FifoQueue"), name
        assert not properties["QueueName"].endswith(".fifo") if "QueueName" in properties else True


def test_the_worker_pool_is_bounded_by_the_event_sources_max_concurrency(synth: Synth, service: VideoJobs) -> None:
    # The pool fairness shares out: AWS's concurrency share needs enough consumers to see a noisy tenant.
    [mapping] = _event_source_mappings(synth, "process", _arn(synth.logical_id(service.queues["jobs"])))
    assert mapping["ScalingConfig"]["MaximumConcurrency"] == wiring.QUEUES["jobs"].max_concurrency == 10


def _gsi(synth: Synth, service: VideoJobs, name: str) -> dict[str, Any]:
    indexes = synth.resource(service.tables["jobs"])["Properties"]["GlobalSecondaryIndexes"]
    [index] = [index for index in indexes if index["IndexName"] == name]
    return index


def test_jobs_table_has_the_sparse_queued_index_the_store_queries(synth: Synth, service: VideoJobs) -> None:
    index = _gsi(synth, service, QUEUED_INDEX)
    assert index["KeySchema"] == [
        {"AttributeName": "queued_tenant", "KeyType": "HASH"},
        {"AttributeName": "queued_rank", "KeyType": "RANGE"},
    ]


def test_workers_may_write_the_tenants_table_to_take_a_slot(synth: Synth, service: VideoJobs) -> None:
    tenants = synth.logical_id(service.tables["tenants"])
    role = service.functions["process"].role
    assert role is not None
    writes = [
        statement
        for statement in _role_statements(synth, role)
        if f'"{tenants}"' in json.dumps(statement["Resource"])
        and "dynamodb:UpdateItem" in _as_list(statement["Action"])
    ]
    assert writes, "the worker cannot take an active-job slot"
