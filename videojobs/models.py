"""Contracts: the job, its state machine, the API request/response bodies and the queue message."""

from __future__ import annotations

import decimal
import json
from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, TypeAdapter, model_validator

from videojobs.clock import isoformat as isoformat
from videojobs.clock import utcnow as utcnow
from videojobs.tenant_limits import TenantLimits

MIN_HEIGHT, MAX_HEIGHT = 144, 4320
MAX_OUTPUTS = 10
MAX_RENDITIONS = 8
MAX_THUMBNAILS = 100
MAX_THUMBNAIL_WIDTH = 7680
MAX_SECONDS = 24 * 3600
MAX_METADATA_BYTES = 2048
MAX_UPLOAD_PARTS = 10_000  # S3's limit for one multipart upload


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

# Which status may follow which: the store turns each arrow into a conditional write.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING, JobStatus.FAILED, JobStatus.CANCELLED}),
    # processing -> processing is a reclaim after an expired lease (a worker died mid-job).
    JobStatus.PROCESSING: frozenset({JobStatus.PROCESSING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class Priority(StrEnum):
    """Within a tenant, a queued job waits for its tenant's more urgent queued jobs (``videojobs.dispatch``)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 is the most urgent."""
        return list(Priority).index(self)


class JobStage(StrEnum):
    """What a processing job is doing now."""

    PROBING = "probing"
    TRANSCODING = "transcoding"
    UPLOADING = "uploading"


# Job events: one per status (``status_event_type``; a unit test holds them to ``JobStatus``), one for progress
# within a status, one for each output finished and uploaded before the job completes (with its
# ``output_index``), and one for each HLS output playable early (split and stitch; with its ``output_index``).
# A comment, not a docstring: the docstring would enter the API document.
class JobEventType(StrEnum):
    QUEUED = "job.queued"
    PROCESSING = "job.processing"
    COMPLETED = "job.completed"
    FAILED = "job.failed"
    CANCELLED = "job.cancelled"
    PROGRESS = "job.progress"
    OUTPUT_READY = "job.output.ready"
    PLAYABLE = "job.playable"


def status_event_type(status: JobStatus) -> JobEventType:
    """The event that announces a job entering ``status``."""
    return JobEventType(f"job.{status.value}")


def default_webhook_events() -> list[str]:
    """What a webhook receives when the job names no ``webhook_events``: how the job ended."""
    return sorted(status_event_type(status).value for status in TERMINAL_STATUSES)


class ErrorCode(StrEnum):
    """Stable, documented error codes: clients may branch on them."""

    BAD_REQUEST = "bad_request"
    INVALID_JSON = "invalid_json"
    VALIDATION_ERROR = "validation_error"
    UPLOAD_NOT_FOUND = "upload_not_found"
    UPLOAD_TOO_LARGE = "upload_too_large"
    UPLOAD_INCOMPLETE = "upload_incomplete"
    INVALID_UPLOAD_PARTS = "invalid_upload_parts"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    TOO_MANY_STREAMS = "too_many_streams"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_ERROR = "internal_error"
    INVALID_WEBHOOK_URL = "invalid_webhook_url"
    JOB_FINISHED = "job_finished"
    JOB_STARTED = "job_started"
    FORBIDDEN = "forbidden"
    # Job errors: why a job ended failed.
    INVALID_MEDIA = "invalid_media"
    UNSUPPORTED_FORMAT = "unsupported_format"
    INPUT_TOO_LARGE = "input_too_large"
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


class CompletedPart(_Strict):
    part_number: Annotated[int, Field(ge=1, le=MAX_UPLOAD_PARTS)]
    # Visible ASCII as S3 sends it (RFC 9110 etagc, quotes included): anything else would make the
    # CompleteMultipartUpload XML malformed, or not even encodable, and S3's refusal a 500.
    etag: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    """The ``ETag`` header S3 answered to the part's PUT."""


class CompleteUploadRequest(_Strict):
    parts: Annotated[list[CompletedPart], Field(min_length=1, max_length=MAX_UPLOAD_PARTS)]


# Even: H.264 in 4:2:0 needs even dimensions.
Height = Annotated[int, Field(ge=MIN_HEIGHT, le=MAX_HEIGHT, multiple_of=2)]


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("values must be unique")
    return values


class RefreshPartsRequest(_Strict):
    """Parts whose URLs expired (S3 answered 403, or 400 ``ExpiredToken``) and are still to be sent."""

    part_numbers: Annotated[
        list[Annotated[int, Field(ge=1, le=MAX_UPLOAD_PARTS)]],
        Field(min_length=1, max_length=MAX_UPLOAD_PARTS),
        AfterValidator(_unique),
    ]


class Mp4Output(_Strict):
    """H.264/AAC MP4 at ``height`` (never above the input's height)."""

    type: Literal["mp4"]
    height: Height
    quality: Literal["low", "medium", "high"] = "medium"


class HlsOutput(_Strict):
    """One adaptive-bitrate ladder: a rendition per height the input reaches, and a master playlist."""

    type: Literal["hls"]
    heights: Annotated[list[Height], Field(min_length=1, max_length=MAX_RENDITIONS), AfterValidator(_unique)]


class ThumbnailsOutput(_Strict):
    """JPEGs: ``count`` evenly spaced, or one at each of ``at_seconds``."""

    type: Literal["thumbnails"]
    count: Annotated[int, Field(ge=1, le=MAX_THUMBNAILS)] | None = None
    at_seconds: (
        Annotated[
            list[Annotated[float, Field(ge=0, le=MAX_SECONDS)]],
            Field(min_length=1, max_length=MAX_THUMBNAILS),
            AfterValidator(_unique),
        ]
        | None
    ) = None
    width: Annotated[int, Field(ge=16, le=MAX_THUMBNAIL_WIDTH)] | None = None

    @model_validator(mode="after")
    def _count_or_times(self) -> ThumbnailsOutput:
        if (self.count is None) == (self.at_seconds is None):
            raise ValueError("give either count or at_seconds")
        return self


class AudioOutput(_Strict):
    """The first audio track: MP3, or AAC in an MPEG-4 (``.m4a``) file."""

    type: Literal["audio"]
    format: Literal["mp3", "aac"]


OutputSpec = Annotated[Mp4Output | HlsOutput | ThumbnailsOutput | AudioOutput, Field(discriminator="type")]


def _small_json(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    if value is not None and not all(_storable(number) for number in _numbers(value)):
        raise ValueError(
            "metadata numbers must fit DynamoDB: at most 38 significant digits, magnitudes from 1e-130 to 1e126"
        )
    return value


# DynamoDB's precision, as boto3's serializer enforces it (boto3.dynamodb.types.DYNAMODB_CONTEXT).
_DYNAMODB_NUMBERS = decimal.Context(
    prec=38,
    Emax=126,
    Emin=-128,
    traps=[decimal.Clamped, decimal.Overflow, decimal.Inexact, decimal.Rounded, decimal.Underflow],
)


def _numbers(value: Any) -> Iterator[int | float]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def _storable(number: int | float) -> bool:
    """Whether the store can write ``number`` (it goes through its JSON text, as ``store.to_item`` does)."""
    try:
        exact = _DYNAMODB_NUMBERS.create_decimal(json.dumps(number))
    except (decimal.DecimalException, ValueError):
        return False
    # boto3 lets a little more through than DynamoDB's documented range: 1e-130 <= |n| < 1e126.
    return exact.is_zero() or (exact.is_finite() and -130 <= exact.adjusted() <= 125)


class JobInputRequest(_Strict):
    upload_id: Annotated[str, Field(pattern=r"^upl_[0-9a-f]{32}$")]


class CreateJobRequest(_Strict):
    input: JobInputRequest
    outputs: Annotated[list[OutputSpec], Field(min_length=1, max_length=MAX_OUTPUTS)]
    webhook_url: Annotated[HttpUrl, Field(max_length=2048)] | None = None
    webhook_events: Annotated[list[JobEventType], Field(min_length=1, max_length=len(JobEventType))] | None = None
    """Which events the webhook receives; default: ``default_webhook_events()``."""
    metadata: Annotated[dict[str, Any] | None, AfterValidator(_small_json)] = None
    priority: Priority = Priority.NORMAL
    """Within the caller's jobs, a queued job starts after the caller's more urgent queued jobs."""
    dry_run: bool = False
    """Validate and look at the upload, answer an estimate (200), create nothing."""
    parallel: Literal["auto", "off"] = "auto"
    """``auto``: a long input (``chunked_min_seconds``) is encoded in chunks by many workers at once, then
    stitched; ``off``: always one encode."""


class UpdateJobRequest(_Strict):
    """What may change on a job while it is ``queued``."""

    priority: Priority


# --- Responses ------------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class UploadResponse(BaseModel):
    upload_id: str
    method: Literal["POST"] = "POST"
    url: str
    fields: dict[str, str]
    expires_at: str
    max_bytes: int


class UploadPart(BaseModel):
    part_number: int
    url: str
    """A presigned ``PUT`` for this part; S3 answers its ``ETag``, which completing the upload needs."""
    size_bytes: int
    """The part's exact size: its URL is signed for this ``Content-Length`` and refuses any other."""


class MultipartUploadResponse(BaseModel):
    """Files above the multipart threshold: PUT each part (bytes ``(n-1)*part_size`` up to ``n*part_size``)
    to its URL, then ``POST /uploads/{upload_id}/complete`` with every part's ETag. A part URL refused once it
    expired is replaced by ``POST /uploads/{upload_id}/parts``."""

    upload_id: str
    method: Literal["MULTIPART"] = "MULTIPART"
    part_size: int
    parts: list[UploadPart]
    expires_at: str
    max_bytes: int


class CompletedUpload(BaseModel):
    upload_id: str
    size_bytes: int


class IgnoredStream(BaseModel):
    """A stream of the input whose codec is not on the allowlist: never decoded, never in an output."""

    index: int
    codec: str


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
    rotation: int | None = None
    """Degrees the player turns the picture; ``width`` and ``height`` are as displayed (already turned)."""
    audio_channels: int | None = None
    audio_sample_rate: int | None = None
    stream_count: int | None = None
    ignored_streams: list[IgnoredStream] = []


class JobInput(BaseModel):
    upload_id: str
    metadata: MediaMetadata | None = None


class OutputStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"


class OutputResult(BaseModel):
    """A requested output and, once it is ready (finished and uploaded, possibly before the job completes),
    where it is."""

    model_config = ConfigDict(extra="allow")

    type: str
    status: OutputStatus = OutputStatus.PENDING
    url: str | None = None
    size_bytes: int | None = None
    content_type: str | None = None
    playable_url: Annotated[str | None, Field(exclude_if=lambda value: value is None)] = None
    """An HLS output encoded in chunks, once ``job.playable`` was sent: its master playlist, playable while
    the job still runs (``EVENT`` playlists that grow until the final ``VOD`` ones replace them at completion);
    absent otherwise."""


class JobUsage(BaseModel):
    """What a job used, as its workers measured it, and what that costs at list prices (``videojobs.pricing``)."""

    processing_seconds: float
    """Wall-clock seconds workers held the job, over every attempt that gave it back or ended it."""
    gb_seconds: float
    """Those seconds times the worker's memory in GB (Lambda's billing unit; Fargate tasks likewise)."""
    input_bytes: int
    output_bytes: int
    estimated_cost_usd: float


class Parallelism(BaseModel):
    chunks: int
    completed_chunks: int


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
    webhook_events: list[str] | None = None
    stage: JobStage | None = None
    """While processing: probing, transcoding or uploading."""
    eta_seconds: int | None = None
    """While transcoding or uploading: the estimated seconds left."""
    cancel_requested_at: str | None = None
    priority: Priority = Priority.NORMAL
    usage: JobUsage | None = None
    """Once the job ended after a worker ran it."""
    parallelism: Annotated[Parallelism | None, Field(exclude_if=lambda value: value is None)] = None
    """A chunked encode: how many chunks, and how many are done (absent for a single encode)."""


class JobList(BaseModel):
    jobs: list[JobResource]
    next_cursor: str | None


class JobEvent(BaseModel):
    """One change of a job, as every channel (webhook, WebSocket, SSE) carries it. ``data.version`` orders
    events, identifies duplicates and is where a client resumes."""

    type: JobEventType
    timestamp: str
    data: JobResource
    output_index: int | None = None
    """Which output of ``data.outputs`` a ``job.output.ready`` or ``job.playable`` event announces."""

    @property
    def version(self) -> int:
        return self.data.version


# --- Stored job and queue message -----------------------------------------------------------------------


class StoredOutput(BaseModel):
    """An output as stored: the request, plus the object key and size once written."""

    spec: dict[str, Any]
    key: str | None = None
    """The main object: the MP4, the audio file, the HLS master playlist."""
    keys: list[str] | None = None
    """Every thumbnail, in the order requested."""
    size_bytes: int | None = None
    content_type: str | None = None
    details: dict[str, Any] | None = None
    """What the worker made, shown with the output (e.g. the resolution, the HLS renditions)."""
    secret: str | None = None
    """Signs the output's playback links (HLS); never shown."""
    playable_key: str | None = None
    """HLS with split and stitch: the master playlist of the ``EVENT`` playlists that grow as chunks finish,
    set once the first chunk of every rung is uploaded (the final output overwrites it in place)."""

    @property
    def ready(self) -> bool:
        """Finished and uploaded: the worker writes its object keys only then."""
        return self.key is not None or self.keys is not None


OUTPUT_SPEC: TypeAdapter[Mp4Output | HlsOutput | ThumbnailsOutput | AudioOutput] = TypeAdapter(OutputSpec)
"""Parses a stored ``spec`` back into its output model."""


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
    webhook_events: list[str] | None = None
    metadata: dict[str, Any] | None = None
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    request_hash: str | None = None
    stage: JobStage | None = None
    eta_seconds: int | None = None
    cancel_requested_at: datetime | None = None
    long_job: bool = False
    """Handed to the long-jobs queue: the Lambda worker estimated it would not finish in its time."""
    priority: Priority = Priority.NORMAL
    input_bytes: int | None = None
    """The upload's size when the job was submitted."""
    usage: JobUsage | None = None
    """Added to by every attempt that ends (a hand-off, a retry, the end of the job)."""
    parallel: Literal["auto", "off"] = "auto"
    parallelism: Parallelism | None = None


class Estimate(BaseModel):
    processing_seconds: float
    estimated_cost_usd: float
    route: Literal["lambda", "fargate"]
    """Which worker would run it: the Lambda worker, or the long-jobs Fargate service."""


class DryRun(BaseModel):
    """A dry run's answer: what the job would take; nothing was created."""

    estimate: Estimate


class UsageTotals(BaseModel):
    jobs_submitted: int = 0
    jobs_completed: int = 0
    jobs_failed: int = 0
    processing_seconds: float = 0
    gb_seconds: float = 0
    bytes_uploaded: int = 0
    """The inputs of the jobs submitted (an upload used by two jobs counts twice)."""
    bytes_output: int = 0
    estimated_cost_usd: float = 0


class UsageDay(UsageTotals):
    date: str
    """A UTC day, ``YYYY-MM-DD``: submissions count on the day they were made, the rest on the day a job ended."""


class CurrentUsage(BaseModel):
    """Now, against the limits. A counter this deployment does not keep is null."""

    pending_jobs: int | None = None
    active_jobs: int | None = None
    open_streams: int | None = None
    upload_bytes_today: int | None = None


class AccountUsage(BaseModel):
    days: list[UsageDay]
    totals: UsageTotals
    limits: TenantLimits
    """The limits in force for the tenant (its overrides over the defaults)."""
    current: CurrentUsage


class JobMessage(BaseModel):
    """The SQS message that asks a worker to run a job. The job itself is read from DynamoDB."""

    job_id: str
    deferrals: int = 0
    """How often the job was deferred for its tenant's ``max_active_jobs`` (``videojobs.dispatch``): each time it
    waits longer before it asks again. Left out of the body while 0."""


class ChunkMessage(BaseModel):
    """The SQS message that asks a chunk worker to encode one chunk of a job (``videojobs.chunk_store``)."""

    job_id: str
    index: int


class SubscribeRequest(BaseModel):
    """A WebSocket ``subscribe`` frame: catch up on the job's events after ``since_version``."""

    action: Literal["subscribe"]
    job_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
    since_version: Annotated[int, Field(ge=0, le=2**53)] = 0
