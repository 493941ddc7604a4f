"""Contracts: the job, its state machine, the API request/response bodies and the queue message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl

MIN_HEIGHT, MAX_HEIGHT = 144, 4320
MAX_OUTPUTS = 10
MAX_METADATA_BYTES = 2048


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z``, to the millisecond: what clients in every language parse."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED})

# Which status may follow which: the store turns each arrow into a conditional write.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.FAILED}),
    # processing -> processing is a reclaim after an expired lease (a worker died mid-job).
    JobStatus.PROCESSING: frozenset({JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


class ErrorCode(StrEnum):
    """Stable, documented error codes: clients may branch on them."""

    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    VALIDATION_ERROR = "validation_error"
    UPLOAD_NOT_FOUND = "upload_not_found"
    UPLOAD_TOO_LARGE = "upload_too_large"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"
    # Job errors: why a job ended failed.
    INVALID_MEDIA = "invalid_media"
    PROCESSING_FAILED = "processing_failed"


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- Requests -------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateUploadRequest(_Strict):
    filename: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: Annotated[str, Field(pattern=r"^(video|audio)/[A-Za-z0-9.+-]{1,100}$")]
    size_bytes: Annotated[int, Field(gt=0)]


class Mp4Output(_Strict):
    type: Literal["mp4"]
    height: Annotated[int, Field(ge=MIN_HEIGHT, le=MAX_HEIGHT)]


OutputSpec = Annotated[Mp4Output, Field(discriminator="type")]


def _small_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


class JobInputRequest(_Strict):
    upload_id: Annotated[str, Field(pattern=r"^upl_[0-9a-f]{32}$")]


class CreateJobRequest(_Strict):
    input: JobInputRequest
    outputs: Annotated[list[OutputSpec], Field(min_length=1, max_length=MAX_OUTPUTS)]
    webhook_url: Annotated[HttpUrl, Field(max_length=2048)] | None = None
    metadata: Annotated[dict[str, Any] | None, AfterValidator(_small_json)] = None


# --- Responses ------------------------------------------------------------------------------------------


class UploadResponse(BaseModel):
    upload_id: str
    method: Literal["POST"] = "POST"
    url: str
    fields: dict[str, str]
    expires_at: str
    max_bytes: int


class MediaMetadata(BaseModel):
    """What probing found in the input."""

    format: str
    duration_seconds: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    bitrate: int | None = None
    size_bytes: int | None = None


class JobInput(BaseModel):
    upload_id: str
    metadata: MediaMetadata | None = None


class OutputResult(BaseModel):
    """A requested output and, once the job completed, where it is."""

    model_config = ConfigDict(extra="allow")

    type: str
    url: str | None = None
    size_bytes: int | None = None
    content_type: str | None = None


class JobResource(BaseModel):
    id: str
    status: JobStatus
    progress: int
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    input: JobInput
    outputs: list[OutputResult]
    error: ErrorDetail | None
    webhook_url: str | None
    metadata: dict[str, Any] | None
    version: int


class JobList(BaseModel):
    jobs: list[JobResource]
    next_cursor: str | None


# --- Stored job and queue message -----------------------------------------------------------------------


class StoredOutput(BaseModel):
    """An output as stored: the request, plus the object key and size once written."""

    spec: dict[str, Any]
    key: str | None = None
    size_bytes: int | None = None
    content_type: str | None = None


class Job(BaseModel):
    """A job as stored in DynamoDB (one item per job)."""

    id: str
    tenant_id: str
    status: JobStatus = JobStatus.QUEUED
    progress: int = 0
    version: int = 1
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    upload_id: str
    input_key: str
    input_metadata: MediaMetadata | None = None
    outputs: list[StoredOutput]
    error: ErrorDetail | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    request_hash: str | None = None


class JobMessage(BaseModel):
    """The SQS message that asks a worker to run a job. The job itself is read from DynamoDB."""

    job_id: str
