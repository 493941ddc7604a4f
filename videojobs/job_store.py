"""DynamoDB adapters: jobs (with their state machine as conditional writes) and idempotency records (API keys
are in ``videojobs.api_keys``, apart, so that the authorizer imports no models).

Every change to a job is one conditional ``UpdateItem`` that also bumps ``version``: a transition that is
not allowed from the stored status, or a worker that no longer holds the lease, fails the condition instead
of overwriting someone else's work.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from videojobs.models import (
    TRANSITIONS,
    ErrorDetail,
    Job,
    JobStage,
    JobStatus,
    MediaMetadata,
    Parallelism,
    Priority,
    StoredOutput,
    isoformat,
    utcnow,
)
from videojobs.observability import logger

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

    from videojobs.usage import UsageLedger, UsageMeter

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# No live worker holds the job: its lease was released, or ran out.
_LEASE_FREE = "(attribute_not_exists(lease_owner) OR lease_expires_at < :now_iso)"
# What only a job being worked on has.
_WORKING = ("lease_owner", "lease_expires_at", "stage", "eta_seconds")
QUEUED_INDEX = "queued_by_tenant"
"""A sparse index: only queued jobs carry its keys, the tenant and ``<priority rank>#<created_key>``."""
_QUEUED = ("queued_tenant", "queued_rank")

IDEMPOTENCY_TTL = timedelta(hours=24)
TRANSACTION_ATTEMPTS = 7
TRANSACTION_RETRY_BASE_SECONDS = 0.05  # full jitter, doubling: at most ~3 s in all
MAX_PAGE_SIZE = 100
BATCH_GET_LIMIT = 100
"""Keys one ``BatchGetItem`` may name."""
MAX_FILTERED_READS = 500
"""Jobs one filtered list request reads at most (a few queries): a tenant with thousands of jobs and few matches
gets a short page and a cursor instead of a request that reads them all."""


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    """A JSON-able dict as a DynamoDB item (numbers as Decimal, ``None`` dropped)."""
    plain = json.loads(json.dumps(data), parse_float=Decimal)
    return {key: _serializer.serialize(value) for key, value in plain.items() if value is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item (also a stream image) as plain JSON types."""
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _condition_failed(error: ClientError) -> bool:
    return error.response["Error"]["Code"] == "ConditionalCheckFailedException"


class IdempotencyConflict(Exception):
    """The idempotency key was used before with a different request."""


class WriteContention(Exception):
    """Concurrent requests kept the write from going through; the client may retry."""


class TenantAtLimit(Exception):
    """A claim refused because the tenant already has ``max_active_jobs`` jobs processing."""


@dataclass(frozen=True)
class ActiveSlot:
    """Taking one of the tenant's ``max_active_jobs`` slots, written in one transaction with a claim: a marker item
    per processing job and a counter (``videojobs.tenant_counters.JobSlots``, built by
    ``videojobs.dispatch.ActiveJobs``)."""

    key: dict[str, Any]
    """The counter's key (what ``TenantAtLimit`` names)."""
    take: tuple[dict[str, Any], ...]
    """Put the job's marker (refused when it holds one) and count it (refused at the limit)."""
    keep: tuple[dict[str, Any], ...]
    """Check the job holds its marker already: a reclaim after its worker died keeps its slot."""


@dataclass(frozen=True)
class IdempotencyKey:
    tenant_id: str
    key: str
    request_hash: str

    @property
    def record_id(self) -> str:
        return composite_key(self.tenant_id, self.key)


def composite_key(*parts: str) -> str:
    """Parts joined with ``#``, each escaped so that no two different tuples give the same key (``a#b``+``c``
    vs ``a``+``b#c``). A part without ``#`` or ``%`` is unchanged, so keys written before stay the same."""
    return "#".join(part.replace("%", "%25").replace("#", "%23") for part in parts)


class JobStore:
    """Jobs in DynamoDB, and the idempotency records written atomically with them."""

    def __init__(
        self,
        client: DynamoDBClient,
        jobs_table: str,
        idempotency_table: str | None = None,
        *,
        max_filtered_reads: int = MAX_FILTERED_READS,
        ledger: UsageLedger | None = None,
    ):
        self._client = client
        self._table = jobs_table
        self._idempotency_table = idempotency_table
        self._max_filtered_reads = max_filtered_reads
        self._ledger = ledger
        """Told of every job this store ends (the per-tenant usage ledger)."""
        self._meter: UsageMeter | None = None

    def metered(self, meter: UsageMeter) -> JobStore:
        """This store as one worker's attempt uses it: each write that ends the attempt (complete, fail, cancel,
        release) also records the attempt's usage on the job."""
        view = copy.copy(self)
        view._meter = meter
        return view

    def _usage(self, outputs: list[StoredOutput] | None = None) -> dict[str, Any]:
        return {"usage": self._meter.usage(outputs).model_dump(mode="json")} if self._meter else {}

    def _idempotency_records(self) -> str:
        if self._idempotency_table is None:
            raise RuntimeError("this JobStore was built without an idempotency table")
        return self._idempotency_table

    # --- creation --------------------------------------------------------------------------------------

    def create(self, job: Job, idempotency: IdempotencyKey | None = None) -> Job:
        """Store a new job. With an idempotency key, the key and the job are written in one transaction,
        so a concurrent or repeated request with the same key gets this job back rather than a second one."""
        item = self._job_item(job)
        if idempotency is None:
            self._client.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(id)")
            return job
        now = utcnow()
        record = to_item(
            {
                "id": idempotency.record_id,
                "job_id": job.id,
                "request_hash": idempotency.request_hash,
                "expires_at": int((now + IDEMPOTENCY_TTL).timestamp()),
            }
        )
        existing: dict[str, Any] | None = None
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self._client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table,
                                "Item": item,
                                "ConditionExpression": "attribute_not_exists(id)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._idempotency_records(),
                                "Item": record,
                                # TTL deletes lazily: an expired record counts as absent.
                                "ConditionExpression": "attribute_not_exists(id) OR expires_at < :now",
                                "ExpressionAttributeValues": {":now": {"N": str(int(now.timestamp()))}},
                            }
                        },
                    ]
                )
                return job
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = {reason.get("Code") for reason in error.response.get("CancellationReasons", [])}
                if "TransactionConflict" not in reasons:  # a condition failed: the key is taken
                    existing = self._idempotency_record(idempotency)
                    break
            # Another request with this key is writing it right now and has not committed, so its record
            # cannot be read yet. Wait (jittered, so racing retries spread out), then look again.
            time.sleep(random.uniform(0, TRANSACTION_RETRY_BASE_SECONDS * 2**attempt))
            existing = self._idempotency_record(idempotency)
            if existing is not None:
                break
        else:
            raise WriteContention("the request kept conflicting with a concurrent one")
        if existing is None:  # the record expired and was deleted in between, or another request forgot it
            raise WriteContention("the idempotency record changed while the job was being created")
        stored = from_item(existing)
        if stored["request_hash"] != idempotency.request_hash:
            raise IdempotencyConflict(idempotency.key)
        found = self.get(stored["job_id"], consistent=True)
        if found is None:
            raise RuntimeError(f"idempotency record points at missing job {stored['job_id']}")
        return found

    def _idempotency_record(self, idempotency: IdempotencyKey) -> dict[str, Any] | None:
        """The key's live record (TTL deletes lazily: an expired one counts as absent)."""
        item = self._client.get_item(
            TableName=self._idempotency_records(), Key={"id": {"S": idempotency.record_id}}, ConsistentRead=True
        ).get("Item")
        if item is None or int(item["expires_at"]["N"]) < int(utcnow().timestamp()):
            return None
        return item

    def replay(self, idempotency: IdempotencyKey) -> Job | None:
        """The job an earlier request with this key created (None if none did): a replay is answered with it
        even when the tenant could not submit a new job now. ``IdempotencyConflict`` for another request."""
        existing = self._idempotency_record(idempotency)
        if existing is None:
            return None
        stored = from_item(existing)
        if stored["request_hash"] != idempotency.request_hash:
            raise IdempotencyConflict(idempotency.key)
        return self.get(stored["job_id"], consistent=True)

    def forget_idempotency(self, idempotency: IdempotencyKey) -> None:
        """Drop a key whose job could not be queued, so that the client's retry creates a new job."""
        self._client.delete_item(TableName=self._idempotency_records(), Key={"id": {"S": idempotency.record_id}})

    # --- reads -----------------------------------------------------------------------------------------

    def get(self, job_id: str, *, consistent: bool = False) -> Job | None:
        item = self._client.get_item(TableName=self._table, Key={"id": {"S": job_id}}, ConsistentRead=consistent)
        return self._job(item["Item"]) if "Item" in item else None

    def get_for_tenant(self, tenant_id: str, job_id: str) -> Job | None:
        """The job if it belongs to the tenant. Another tenant's job is reported as absent, like a missing one."""
        # Strongly consistent: a client reads its job right after the 202, before a lagging replica has it.
        job = self.get(job_id, consistent=True)
        return job if job is not None and job.tenant_id == tenant_id else None

    def list_for_tenant(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        status: JobStatus | None = None,
        priority: Priority | None = None,
    ) -> tuple[list[Job], str | None]:
        """The tenant's jobs, newest first, one page at a time (a query on the ``by_tenant`` index, which is
        eventually consistent: a job created a moment ago may be missing). The index holds only the keys and what
        lists filter on (``wiring``): the jobs themselves are read from the table, a batch per page.

        A status or priority filter is applied after the read, so a filtered page reads at most
        ``max_filtered_reads`` jobs: it may come back short (even empty) with a cursor, and the caller pages on."""
        start_key = _decode_cursor(cursor, tenant_id) if cursor else None
        jobs: list[Job] = []
        read = 0
        while len(jobs) < limit:
            wanted = limit - len(jobs)
            request: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "by_tenant",
                "KeyConditionExpression": "tenant_id = :tenant",
                "ExpressionAttributeValues": {":tenant": {"S": tenant_id}},
                "ScanIndexForward": False,
                "Limit": wanted,
            }
            filters = {name: value for name, value in (("status", status), ("priority", priority)) if value}
            if filters:
                request["FilterExpression"] = " AND ".join(f"#{name} = :{name}" for name in filters)
                request["ExpressionAttributeNames"] = {f"#{name}": name for name in filters}
                for name, value in filters.items():
                    request["ExpressionAttributeValues"][f":{name}"] = {"S": value.value}
                # Limit counts jobs read, not jobs matched: read more each time, within the budget.
                request["Limit"] = min(max(wanted, read), self._max_filtered_reads - read)
            if start_key:
                request["ExclusiveStartKey"] = start_key
            page = self._client.query(**request)
            read += page.get("ScannedCount", 0)
            found = self._full_jobs(page.get("Items", []))
            start_key = page.get("LastEvaluatedKey")
            if len(found) > wanted:  # more matches than the page holds: it ends at the last one shown
                found = found[:wanted]
                start_key = self._key_of(found[-1])
            jobs.extend(found)
            if not start_key or (filters and read >= self._max_filtered_reads):
                break
        return jobs, _encode_cursor(start_key) if start_key else None

    def _full_jobs(self, index_items: list[dict[str, Any]]) -> list[Job]:
        """The jobs that index entries name, in the entries' order (a job missing from the table is skipped)."""
        found: dict[str, Job] = {}
        wanted = [{"id": item["id"]} for item in index_items]
        for offset in range(0, len(wanted), BATCH_GET_LIMIT):
            keys: list[dict[str, Any]] = wanted[offset : offset + BATCH_GET_LIMIT]
            for attempt in range(TRANSACTION_ATTEMPTS):
                answer = self._client.batch_get_item(RequestItems={self._table: {"Keys": keys}})
                for item in answer.get("Responses", {}).get(self._table, []):
                    job = self._job(item)
                    found[job.id] = job
                unprocessed = answer.get("UnprocessedKeys", {}).get(self._table)
                keys = list(unprocessed["Keys"]) if unprocessed else []
                if not keys:
                    break
                # Throttled reads come back unprocessed: retry them after a jittered pause, as AWS advises.
                time.sleep(random.uniform(0, TRANSACTION_RETRY_BASE_SECONDS * 2**attempt))
            else:
                raise WriteContention("the jobs table kept throttling the list's reads")
        return [found[item["id"]["S"]] for item in index_items if item["id"]["S"] in found]

    # --- transitions -----------------------------------------------------------------------------------

    def claim(self, job_id: str, worker_id: str, lease: timedelta, slot: ActiveSlot | None = None) -> Job | None:
        """Take the job for processing: a queued job, or one whose previous worker's lease ran out (or was
        released). Returns None when it cannot be claimed (finished, or held by a live worker).

        With ``slot``, the claim and the tenant's active-job slot are one transaction: ``TenantAtLimit`` when the
        tenant has no slot free (nothing is written then)."""
        now = utcnow()
        update = self._update_request(
            job_id,
            set_values={
                "status": JobStatus.PROCESSING.value,
                "lease_owner": worker_id,
                "lease_expires_at": isoformat(now + lease),
            },
            extra_set="attempts = if_not_exists(attempts, :zero) + :one, "
            "started_at = if_not_exists(started_at, :now_iso)",
            remove=_QUEUED,
            condition=f"#status = :queued OR (#status = :processing AND {_LEASE_FREE})",
            values={":queued": JobStatus.QUEUED.value, ":processing": JobStatus.PROCESSING.value, ":zero": 0},
            now=now,
        )
        if slot is None:
            return self._send_update(update)
        slot_items = slot.take
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                items: list[Any] = [{"Update": update}, *slot_items]
                self._client.transact_write_items(TransactItems=items)
                return self.get(job_id, consistent=True)
            except ClientError as error:
                if error.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons", [])
                job_reason, marker_reason, count_reason = (
                    reasons[index].get("Code") if index < len(reasons) else None for index in range(3)
                )
                if job_reason == "ConditionalCheckFailed":
                    return None
                if marker_reason == "ConditionalCheckFailed":
                    # The job holds its slot (a reclaim), or lost it meanwhile (swept): try the other way at once.
                    slot_items = slot.keep if slot_items is slot.take else slot.take
                    continue
                if count_reason == "ConditionalCheckFailed":
                    raise TenantAtLimit(slot.key) from error
            # Another claim or release of this tenant is writing its slots right now: again, a moment later.
            time.sleep(random.uniform(0, TRANSACTION_RETRY_BASE_SECONDS * 2**attempt))
        raise WriteContention("the claim kept conflicting with the tenant's other claims")

    def set_priority(self, job_id: str, tenant_id: str, priority: Priority) -> Job | None:
        """Change a queued job's priority (None once it is no longer queued, or is not the tenant's)."""
        job = self.get(job_id, consistent=True)
        if job is None or job.tenant_id != tenant_id:
            return None
        return self._update(
            job_id,
            set_values={"priority": priority.value, "queued_rank": _queued_rank(priority, job)},
            condition="#status = :queued AND tenant_id = :tenant",
            values={":queued": JobStatus.QUEUED.value, ":tenant": tenant_id},
        )

    def has_more_urgent_queued(self, tenant_id: str, priority: Priority) -> bool:
        """Whether the tenant has a queued job of a higher priority than ``priority`` (a query on the sparse
        ``queued_by_tenant`` index, which is eventually consistent: a job claimed a moment ago may still show)."""
        if priority.rank == 0:
            return False
        page = self._client.query(
            TableName=self._table,
            IndexName=QUEUED_INDEX,
            KeyConditionExpression="queued_tenant = :tenant AND queued_rank < :rank",
            ExpressionAttributeValues={":tenant": {"S": tenant_id}, ":rank": {"S": str(priority.rank)}},
            Limit=1,
        )
        return bool(page.get("Items"))

    def record_probe(self, job_id: str, worker_id: str, metadata: MediaMetadata) -> Job | None:
        return self._held_update(job_id, worker_id, {"input_metadata": metadata.model_dump(mode="json")})

    def record_progress(
        self,
        job_id: str,
        worker_id: str,
        progress: int,
        lease: timedelta,
        *,
        stage: JobStage | None = None,
        eta_seconds: int | None = None,
    ) -> Job | None:
        """Write progress and extend the lease: progress doubles as the worker's heartbeat. Fails (None) once
        a cancel was requested, which is how the worker learns of it."""
        values: dict[str, Any] = {"progress": progress, "lease_expires_at": isoformat(utcnow() + lease)}
        if stage is not None:
            values["stage"] = stage.value
        if eta_seconds is not None:
            values["eta_seconds"] = eta_seconds
        return self._held_update(job_id, worker_id, values, remove=() if eta_seconds is not None else ("eta_seconds",))

    def record_parallelism(self, job_id: str, worker_id: str, parallelism: Parallelism) -> Job | None:
        """A chunked encode's chunks and how many are done (by the worker holding the job)."""
        return self._held_update(job_id, worker_id, {"parallelism": parallelism.model_dump(mode="json")})

    def record_outputs(self, job_id: str, worker_id: str, outputs: list[StoredOutput]) -> Job | None:
        """Write the outputs as they stand while the job runs: one more finished and uploaded (its keys set)
        is one write, hence one ``job.output.ready`` event."""
        return self._held_update(job_id, worker_id, {"outputs": [output.model_dump(mode="json") for output in outputs]})

    def complete(self, job_id: str, worker_id: str, outputs: list[StoredOutput]) -> Job | None:
        now = utcnow()
        return self._held_update(
            job_id,
            worker_id,
            {
                "status": JobStatus.COMPLETED.value,
                "progress": 100,
                "outputs": [output.model_dump(mode="json") for output in outputs],
                "completed_at": isoformat(now),
                **self._usage(outputs),
            },
            remove=_WORKING,
            now=now,
        )

    def fail(self, job_id: str, error: ErrorDetail, worker_id: str | None = None) -> Job | None:
        """End the job ``failed``. With ``worker_id``, only while that worker holds it (and no cancel was
        requested); without, from any status that is not terminal (a job that could not be queued)."""
        now = utcnow()
        values = {
            "status": JobStatus.FAILED.value,
            "error": error.model_dump(mode="json"),
            "completed_at": isoformat(now),
        }
        if worker_id is not None:
            return self._held_update(job_id, worker_id, values | self._usage(), remove=_WORKING, now=now)
        sources = sorted(status.value for status in JobStatus if JobStatus.FAILED in TRANSITIONS[status])
        placeholders = {f":from{index}": status for index, status in enumerate(sources)}
        return self._update(
            job_id,
            set_values=values,
            remove=_WORKING + _QUEUED,
            condition=f"#status IN ({', '.join(placeholders)})",
            values=placeholders,
            now=now,
        )

    def fail_abandoned(self, job_id: str, error: ErrorDetail) -> Job | None:
        """End the job ``failed`` unless a live worker holds it (its lease has not run out)."""
        now = utcnow()
        return self._update(
            job_id,
            set_values={
                "status": JobStatus.FAILED.value,
                "error": error.model_dump(mode="json"),
                "completed_at": isoformat(now),
            },
            remove=_WORKING + _QUEUED,
            condition=f"#status = :queued OR (#status = :processing AND {_LEASE_FREE})",
            values={":queued": JobStatus.QUEUED.value, ":processing": JobStatus.PROCESSING.value},
            now=now,
        )

    def release(
        self, job_id: str, worker_id: str, *, to_long_queue: bool = False, count_attempt: bool = True
    ) -> Job | None:
        """Give the job up so that the next delivery may claim it at once (a retry, or a shutdown). The try does
        not count when ``count_attempt`` is False (a worker told to stop) or the job goes to the long-jobs queue
        (it was only probed)."""
        extra = "attempts = attempts - :one" if to_long_queue or not count_attempt else ""
        return self._held_update(
            job_id,
            worker_id,
            ({"long_job": True} if to_long_queue else {}) | self._usage(),
            remove=_WORKING,
            extra_set=extra,
            allow_cancel_requested=True,
        )

    # --- cancel ----------------------------------------------------------------------------------------

    def cancel_queued(self, job_id: str) -> Job | None:
        """A queued job ends ``cancelled`` at once: no worker has it yet."""
        now = utcnow()
        return self._update(
            job_id,
            set_values={"status": JobStatus.CANCELLED.value, "completed_at": isoformat(now)},
            remove=_QUEUED,
            condition="#status = :queued",
            values={":queued": JobStatus.QUEUED.value},
            now=now,
        )

    def request_cancel(self, job_id: str) -> Job | None:
        """Ask the worker of a processing job to stop: its next write fails, and it ends the job ``cancelled``
        once ffmpeg is stopped and the partial outputs are removed."""
        return self._update(
            job_id,
            set_values={},
            extra_set="cancel_requested_at = if_not_exists(cancel_requested_at, :now_iso)",
            condition="#status = :processing",
            values={":processing": JobStatus.PROCESSING.value},
        )

    def cancel(self, job_id: str, worker_id: str | None = None) -> Job | None:
        """End a processing job ``cancelled``: by the worker holding it, or (no ``worker_id``) when no live
        worker holds it."""
        now = utcnow()
        values = {"status": JobStatus.CANCELLED.value, "completed_at": isoformat(now)}
        if worker_id is not None:
            return self._held_update(
                job_id, worker_id, values | self._usage(), remove=_WORKING, now=now, allow_cancel_requested=True
            )
        return self._update(
            job_id,
            set_values=values,
            remove=_WORKING,
            condition=f"#status = :processing AND {_LEASE_FREE}",
            values={":processing": JobStatus.PROCESSING.value},
            now=now,
        )

    def _held_update(
        self,
        job_id: str,
        worker_id: str,
        set_values: dict[str, Any],
        *,
        remove: tuple[str, ...] = (),
        now: datetime | None = None,
        extra_set: str = "",
        allow_cancel_requested: bool = False,
    ) -> Job | None:
        condition = "#status = :processing AND lease_owner = :worker"
        if not allow_cancel_requested:
            condition += " AND attribute_not_exists(cancel_requested_at)"
        return self._update(
            job_id,
            set_values=set_values,
            remove=remove,
            extra_set=extra_set,
            condition=condition,
            values={":processing": JobStatus.PROCESSING.value, ":worker": worker_id},
            now=now,
        )

    def _update(
        self,
        job_id: str,
        *,
        set_values: dict[str, Any],
        condition: str,
        values: dict[str, Any],
        extra_set: str = "",
        remove: tuple[str, ...] = (),
        now: datetime | None = None,
    ) -> Job | None:
        """One conditional write that also stamps ``updated_at`` and bumps ``version``.
        Returns the new job, or None when the condition did not hold."""
        job = self._send_update(
            self._update_request(
                job_id,
                set_values=set_values,
                condition=condition,
                values=values,
                extra_set=extra_set,
                remove=remove,
                now=now,
            )
        )
        if job is not None and self._ledger is not None and "status" in set_values and job.status.terminal:
            try:  # the job has ended whatever happens here: a lost count must not make a worker retry it
                self._ledger.job_finished(job)
            except Exception:
                logger.exception("could not count the job in the usage ledger", extra={"job_id": job.id})
        return job

    def _send_update(self, request: dict[str, Any]) -> Job | None:
        try:
            result = self._client.update_item(**request, ReturnValues="ALL_NEW")
        except ClientError as error:
            if _condition_failed(error):
                return None
            raise
        return self._job(result["Attributes"])

    def _update_request(
        self,
        job_id: str,
        *,
        set_values: dict[str, Any],
        condition: str,
        values: dict[str, Any],
        extra_set: str = "",
        remove: tuple[str, ...] = (),
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The ``UpdateItem`` of ``_update`` (also a transaction's ``Update``)."""
        now = now or utcnow()
        names = {"#status": "status"}
        assignments = ["version = version + :one", "updated_at = :now_iso"]
        all_values: dict[str, Any] = {**values, ":one": 1, ":now_iso": isoformat(now)}
        for index, (field, value) in enumerate(set_values.items()):
            names[f"#f{index}"] = field
            all_values[f":v{index}"] = value
            assignments.append(f"#f{index} = :v{index}")
        if extra_set:
            assignments.append(extra_set)
        expression = "SET " + ", ".join(assignments)
        if remove:
            expression += " REMOVE " + ", ".join(remove)
        # DynamoDB rejects unused placeholders; match whole tokens (":v1" must not match ":v10").
        tokens = set(re.findall(r":\w+", f"{expression} {condition}"))
        used_values = {key: value for key, value in all_values.items() if key in tokens}
        return {
            "TableName": self._table,
            "Key": {"id": {"S": job_id}},
            "UpdateExpression": expression,
            "ConditionExpression": f"attribute_exists(id) AND ({condition})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {
                key: _serializer.serialize(_dynamo_value(value)) for key, value in used_values.items()
            },
        }

    # --- mapping ---------------------------------------------------------------------------------------

    @staticmethod
    def _job_item(job: Job) -> dict[str, Any]:
        data = job.model_dump(mode="json")
        data["created_key"] = _created_key(job)
        if job.status is JobStatus.QUEUED:
            data["queued_tenant"] = job.tenant_id
            data["queued_rank"] = _queued_rank(job.priority, job)
        return to_item(data)

    @staticmethod
    def _key_of(job: Job) -> dict[str, Any]:
        """The index key of a job, as ``LastEvaluatedKey`` would give it."""
        item = JobStore._job_item(job)
        return {name: item[name] for name in ("tenant_id", "created_key", "id")}

    @staticmethod
    def _job(item: dict[str, Any]) -> Job:
        data = from_item(item)
        for derived in ("created_key", *_QUEUED):
            data.pop(derived, None)
        return Job.model_validate(data)


def _created_key(job: Job) -> str:
    """The ``by_tenant`` index's sort key: the creation time as the job's JSON spells it, then the id."""
    created: str = job.model_dump(mode="json", include={"created_at"})["created_at"]
    return f"{created}#{job.id}"


def _queued_rank(priority: Priority, job: Job) -> str:
    """The queued index's sort key: the most urgent priority first, then the oldest job."""
    return f"{priority.rank}#{_created_key(job)}"


def _dynamo_value(value: Any) -> Any:
    return json.loads(json.dumps(value), parse_float=Decimal)


def _encode_cursor(key: dict[str, Any]) -> str:
    plain = from_item(key)
    return base64.urlsafe_b64encode(json.dumps([plain["created_key"], plain["id"]]).encode()).decode().rstrip("=")


class InvalidCursor(ValueError):
    pass


def _decode_cursor(cursor: str, tenant_id: str) -> dict[str, Any]:
    """Rebuild the start key with the caller's own tenant, so a cursor can never page through another's jobs."""
    try:
        created_key, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(created_key, str) and isinstance(job_id, str)):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as error:
        raise InvalidCursor("cursor is not valid") from error
    return to_item({"tenant_id": tenant_id, "created_key": created_key, "id": job_id})
