"""The chunks of a chunked encode (split and stitch), one DynamoDB item per chunk: ``(job_id, index)``.

A chunk is a time range of the job's input that one chunk worker encodes into every video rendition. Its item
is its state machine, each change one conditional write: ``pending`` -> ``running`` (a claim with a lease, as a
job's) -> ``done`` (by the lease holder only, with the keys of the files it wrote) or ``failed`` (permanently,
with the reason the job then fails with). A delivery that finds the chunk held by a live worker, or already
done, writes nothing: a chunk delivered twice produces one result. A worker that dies leaves a lease that runs
out; the next delivery reclaims the chunk.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from videojobs.job_store import from_item, to_item
from videojobs.models import ErrorDetail, isoformat, utcnow

if TYPE_CHECKING:
    from types_boto3_dynamodb import DynamoDBClient

CHUNK_RETENTION = timedelta(days=7)
"""Chunk items expire (TTL) a while after their job: they are only bookkeeping."""


class ChunkStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ChunkFile(BaseModel):
    rendition: str
    """Which video rendition (``videojobs.chunk_plan.Rendition.name``)."""
    key: str
    """Where the chunk's piece of it is, in the outputs bucket."""


class Chunk(BaseModel):
    job_id: str
    index: int
    start_seconds: float
    end_seconds: float | None = None
    """None: to the end of the input."""
    status: ChunkStatus = ChunkStatus.PENDING
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    progress: float = 0.0
    """0..1 of the chunk's encode."""
    files: list[ChunkFile] = []
    error: ErrorDetail | None = None
    encode_seconds: float | None = None
    """How long the last attempt's encode took (what the benchmark's projection is made of)."""


class ChunkStore:
    def __init__(self, client: DynamoDBClient, table: str):
        self._client = client
        self._table = table

    def create(self, job_id: str, ranges: list[tuple[float, float | None]]) -> None:
        """The job's chunks, ``pending``; an existing chunk (a coordinator that runs again) is kept as it is."""
        expires = int((utcnow() + CHUNK_RETENTION).timestamp())
        for index, (start, end) in enumerate(ranges):
            chunk = Chunk(job_id=job_id, index=index, start_seconds=start, end_seconds=end)
            item = to_item({**chunk.model_dump(mode="json"), "expires_at": expires}) | self._key(job_id, index)
            try:
                self._client.put_item(
                    TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(job_id)"
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def of_job(self, job_id: str) -> list[Chunk]:
        """Every chunk of the job, by index (a consistent read: a completion is seen at once)."""
        chunks: list[Chunk] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "job_id = :job",
            "ExpressionAttributeValues": {":job": {"S": job_id}},
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**request)
            chunks += [self._chunk(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(chunks, key=lambda chunk: chunk.index)
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get(self, job_id: str, index: int) -> Chunk | None:
        found = self._client.get_item(TableName=self._table, Key=self._key(job_id, index), ConsistentRead=True)
        return self._chunk(found["Item"]) if "Item" in found else None

    def claim(self, job_id: str, index: int, worker_id: str, lease: timedelta) -> Chunk | None:
        """Take a pending chunk, or a running one whose worker's lease ran out. None: done, failed or held."""
        now = utcnow()
        return self._update(
            job_id,
            index,
            "SET #status = :running, lease_owner = :worker, lease_expires_at = :lease, attempts = attempts + :one, "
            "progress = :zero",
            "#status = :pending OR (#status = :running AND lease_expires_at < :now)",
            {
                ":running": ChunkStatus.RUNNING.value,
                ":pending": ChunkStatus.PENDING.value,
                ":worker": worker_id,
                ":lease": isoformat(now + lease),
                ":now": isoformat(now),
                ":one": 1,
                ":zero": 0,
            },
        )

    def record_progress(
        self, job_id: str, index: int, worker_id: str, progress: float, lease: timedelta
    ) -> Chunk | None:
        """Progress, and the lease extended (the chunk worker's heartbeat). None: the chunk is no longer ours."""
        return self._held(
            job_id,
            index,
            worker_id,
            "SET progress = :progress, lease_expires_at = :lease",
            {":progress": round(progress, 4), ":lease": isoformat(utcnow() + lease)},
        )

    def complete(
        self, job_id: str, index: int, worker_id: str, files: list[ChunkFile], encode_seconds: float
    ) -> Chunk | None:
        return self._held(
            job_id,
            index,
            worker_id,
            "SET #status = :done, files = :files, progress = :whole, encode_seconds = :seconds "
            "REMOVE lease_owner, lease_expires_at",
            {
                ":done": ChunkStatus.DONE.value,
                ":files": [file.model_dump() for file in files],
                ":whole": 1,
                ":seconds": round(encode_seconds, 3),
            },
        )

    def fail(self, job_id: str, index: int, error: ErrorDetail, worker_id: str | None = None) -> Chunk | None:
        """Fail the chunk for good (the job fails with ``error``): by its worker, or by anyone while no live
        worker holds it (its dead letter)."""
        values = {":failed": ChunkStatus.FAILED.value, ":error": error.model_dump()}
        expression = "SET #status = :failed, #error = :error REMOVE lease_owner, lease_expires_at"
        if worker_id is not None:
            return self._held(job_id, index, worker_id, expression, values)
        condition = "#status = :pending OR (#status = :running AND lease_expires_at < :now)"
        pending, running = ChunkStatus.PENDING.value, ChunkStatus.RUNNING.value
        values |= {":pending": pending, ":running": running, ":now": isoformat(utcnow())}
        return self._update(job_id, index, expression, condition, values)

    def release(self, job_id: str, index: int, worker_id: str) -> Chunk | None:
        """Give the chunk back (a retry): the next delivery claims it at once."""
        return self._held(
            job_id,
            index,
            worker_id,
            "SET #status = :pending REMOVE lease_owner, lease_expires_at",
            {":pending": ChunkStatus.PENDING.value},
        )

    def _held(self, job_id: str, index: int, worker_id: str, expression: str, values: dict[str, Any]) -> Chunk | None:
        return self._update(
            job_id,
            index,
            expression,
            "#status = :running_now AND lease_owner = :holder",
            {**values, ":running_now": ChunkStatus.RUNNING.value, ":holder": worker_id},
        )

    def _update(self, job_id: str, index: int, expression: str, condition: str, values: dict[str, Any]) -> Chunk | None:
        names = {name: name[1:] for name in ("#status", "#error") if name in f"{expression} {condition}"}
        serialized = to_item(values)
        try:
            result = self._client.update_item(
                TableName=self._table,
                Key=self._key(job_id, index),
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(job_id) AND ({condition})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialized,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return self._chunk(result["Attributes"])

    @staticmethod
    def _key(job_id: str, index: int) -> dict[str, Any]:
        # The table's sort key is a string (as every key of the wiring): zero-padded, so it sorts by number.
        return {"job_id": {"S": job_id}, "index": {"S": f"{index:06d}"}}

    @staticmethod
    def _chunk(item: dict[str, Any]) -> Chunk:
        return Chunk.model_validate(from_item(item))
