"""Environment variable names (``infra`` imports them, so they cannot drift) and one settings model per function.

Each model is validated once from ``os.environ`` when a function builds its dependencies: a missing variable
fails the cold start with a clear message instead of the first request that needs it.
"""

from __future__ import annotations

import os
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

JOBS_TABLE = "JOBS_TABLE"
API_KEYS_TABLE = "API_KEYS_TABLE"
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
USAGE_TABLE = "USAGE_TABLE"
UPLOADS_BUCKET = "UPLOADS_BUCKET"
OUTPUTS_BUCKET = "OUTPUTS_BUCKET"
JOBS_QUEUE_URL = "JOBS_QUEUE_URL"
MAX_UPLOAD_BYTES = "MAX_UPLOAD_BYTES"
UPLOAD_URL_TTL_SECONDS = "UPLOAD_URL_TTL_SECONDS"
MULTIPART_THRESHOLD_BYTES = "MULTIPART_THRESHOLD_BYTES"
MULTIPART_PART_BYTES = "MULTIPART_PART_BYTES"
MAX_MULTIPART_UPLOAD_BYTES = "MAX_MULTIPART_UPLOAD_BYTES"
MULTIPART_URL_TTL_SECONDS = "MULTIPART_URL_TTL_SECONDS"
DOWNLOAD_URL_TTL_SECONDS = "DOWNLOAD_URL_TTL_SECONDS"
SCRATCH_DIR = "SCRATCH_DIR"
# The media worker (Lambda and the long-jobs container consumer).
LONG_JOBS_QUEUE_URL = "LONG_JOBS_QUEUE_URL"
LAMBDA_TIME_BUDGET_SECONDS = "LAMBDA_TIME_BUDGET_SECONDS"
WORK_PIXELS_PER_SECOND = "WORK_PIXELS_PER_SECOND"
LEASE_SECONDS = "LEASE_SECONDS"
MAX_ATTEMPTS = "MAX_ATTEMPTS"
JOB_TIME_LIMIT_SECONDS = "JOB_TIME_LIMIT_SECONDS"
MAX_INPUT_DIMENSION = "MAX_INPUT_DIMENSION"
MAX_INPUT_PIXELS = "MAX_INPUT_PIXELS"
MAX_INPUT_DURATION_SECONDS = "MAX_INPUT_DURATION_SECONDS"
MAX_INPUT_STREAMS = "MAX_INPUT_STREAMS"
INPUT_READ_RATE = "INPUT_READ_RATE"
# Chunked encoding (split and stitch).
CHUNKS_TABLE = "CHUNKS_TABLE"
CHUNKS_QUEUE_URL = "CHUNKS_QUEUE_URL"
CHUNK_SECONDS = "CHUNK_SECONDS"
CHUNKED_MIN_SECONDS = "CHUNKED_MIN_SECONDS"
HLS_SEGMENT_SECONDS = 6
"""The HLS segment duration (``videojobs.outputs`` cuts on it): a chunk is a whole number of segments."""
# Notifications: webhooks, WebSockets and Server-Sent Events.
JOB_EVENTS_TABLE = "JOB_EVENTS_TABLE"
WEBHOOK_SECRETS_TABLE = "WEBHOOK_SECRETS_TABLE"
WEBHOOK_DELIVERIES_TABLE = "WEBHOOK_DELIVERIES_TABLE"
WS_CONNECTIONS_TABLE = "WS_CONNECTIONS_TABLE"
WS_TICKETS_TABLE = "WS_TICKETS_TABLE"
DELIVERIES_QUEUE_URL = "DELIVERIES_QUEUE_URL"
DELIVERIES_DLQ_URL = "DELIVERIES_DLQ_URL"
WEBSOCKET_URL = "WEBSOCKET_URL"
WEBHOOK_ALLOW_LOOPBACK_HTTP = "WEBHOOK_ALLOW_LOOPBACK_HTTP"
WEBHOOK_RETRY_DELAYS = "WEBHOOK_RETRY_DELAYS"
WEBHOOK_TIMEOUT_SECONDS = "WEBHOOK_TIMEOUT_SECONDS"
SSE_WAIT_SECONDS = "SSE_WAIT_SECONDS"
SSE_STREAM_SECONDS = "SSE_STREAM_SECONDS"
SSE_KEEPALIVE_SECONDS = "SSE_KEEPALIVE_SECONDS"
WS_TICKET_TTL_SECONDS = "WS_TICKET_TTL_SECONDS"
# Per-tenant limits: the table holding each tenant's overrides and counters, and the defaults in force for a
# tenant without an override (``videojobs.tenant_limits``; the CDK prop ``tenant_limits`` sets them).
TENANTS_TABLE = "TENANTS_TABLE"
AT_LIMIT_RETRY_SECONDS = "AT_LIMIT_RETRY_SECONDS"
PRIORITY_AGING_SECONDS = "PRIORITY_AGING_SECONDS"
TENANT_MAX_ACTIVE_JOBS = "TENANT_MAX_ACTIVE_JOBS"
TENANT_MAX_PENDING_JOBS = "TENANT_MAX_PENDING_JOBS"
TENANT_MAX_UPLOAD_BYTES_PER_DAY = "TENANT_MAX_UPLOAD_BYTES_PER_DAY"
TENANT_REQUESTS_PER_SECOND = "TENANT_REQUESTS_PER_SECOND"
TENANT_BURST = "TENANT_BURST"
TENANT_MAX_OPEN_STREAMS = "TENANT_MAX_OPEN_STREAMS"
# Webhook endpoints (per tenant) and the event bus.
WEBHOOK_ENDPOINTS_TABLE = "WEBHOOK_ENDPOINTS_TABLE"
ENDPOINT_DELIVERIES_TABLE = "ENDPOINT_DELIVERIES_TABLE"
EVENT_BUS_NAME = "EVENT_BUS_NAME"
EVENT_RETENTION_DAYS = "EVENT_RETENTION_DAYS"
ENDPOINT_DISABLE_AFTER_SECONDS = "ENDPOINT_DISABLE_AFTER_SECONDS"
# Where the operator's CLI puts each tenant's API Gateway key (videojobs.usage_plans): stack outputs in AWS.
REST_API_ID = "REST_API_ID"
USAGE_PLAN_ID = "USAGE_PLAN_ID"

# A single presigned POST is limited to 5 GB by S3; larger files need multipart uploads.
S3_SINGLE_UPLOAD_LIMIT = 5 * 1024**3
S3_OBJECT_LIMIT = 5 * 1024**4
S3_MIN_PART_BYTES = 5 * 1024**2

Name = Annotated[str, Field(min_length=1)]


class FunctionSettings(BaseModel):
    """Base of every function's settings: validated once from the environment."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        return cls.model_validate(dict(os.environ if environ is None else environ))


MAX_PENDING_JOBS_LIMIT = 10_000
"""The highest ``max_pending_jobs``: the pending job ids of a tenant are one DynamoDB item (400 KB at most)."""


class TenantLimitSettings(FunctionSettings):
    """The tenants table and the limits of a tenant without overrides. A function that enforces or reports
    per-tenant limits has settings derived from this one."""

    tenants_table: Name = Field(alias=TENANTS_TABLE)
    default_max_active_jobs: int = Field(5, alias=TENANT_MAX_ACTIVE_JOBS, ge=1)
    default_max_pending_jobs: int = Field(1000, alias=TENANT_MAX_PENDING_JOBS, ge=1, le=MAX_PENDING_JOBS_LIMIT)
    # Two of the largest files S3 holds (5 TiB each): operators set a real figure (CDK prop tenant_limits).
    default_max_upload_bytes_per_day: int = Field(2 * S3_OBJECT_LIMIT, alias=TENANT_MAX_UPLOAD_BYTES_PER_DAY, ge=1)
    # Under the stage's own throttle (the CDK props api_rate_limit/api_burst_limit: 100/200 by default), so one
    # tenant cannot take the whole stage.
    default_requests_per_second: float = Field(50, alias=TENANT_REQUESTS_PER_SECOND, gt=0)
    default_burst: int = Field(100, alias=TENANT_BURST, ge=1)
    # Each SSE long poll holds a Lambda execution environment for up to 25 s (the events function reserves 50).
    default_max_open_streams: int = Field(10, alias=TENANT_MAX_OPEN_STREAMS, ge=1)


class AuthorizerSettings(FunctionSettings):
    api_keys_table: Name = Field(alias=API_KEYS_TABLE)


class SubmitSettings(TenantLimitSettings):
    jobs_table: Name = Field(alias=JOBS_TABLE)
    usage_table: Name = Field(alias=USAGE_TABLE)
    idempotency_table: Name = Field(alias=IDEMPOTENCY_TABLE)
    uploads_bucket: Name = Field(alias=UPLOADS_BUCKET)
    jobs_queue_url: Name = Field(alias=JOBS_QUEUE_URL)
    max_upload_bytes: int = Field(S3_SINGLE_UPLOAD_LIMIT, alias=MAX_UPLOAD_BYTES, gt=0, le=S3_SINGLE_UPLOAD_LIMIT)
    upload_url_ttl_seconds: int = Field(900, alias=UPLOAD_URL_TTL_SECONDS, gt=0, le=7 * 24 * 3600)
    # Files above the threshold are uploaded in parts (presigned PUTs), up to S3's 5 TiB object limit.
    multipart_threshold_bytes: int = Field(
        100 * 1024**2, alias=MULTIPART_THRESHOLD_BYTES, ge=S3_MIN_PART_BYTES, le=S3_SINGLE_UPLOAD_LIMIT
    )
    multipart_part_bytes: int = Field(
        64 * 1024**2, alias=MULTIPART_PART_BYTES, ge=S3_MIN_PART_BYTES, le=S3_SINGLE_UPLOAD_LIMIT
    )
    max_multipart_upload_bytes: int = Field(S3_OBJECT_LIMIT, alias=MAX_MULTIPART_UPLOAD_BYTES, gt=0, le=S3_OBJECT_LIMIT)
    # Longer than a single POST's: a big file takes hours. URLs signed with a role's temporary credentials stop
    # working when those credentials expire, which can be sooner.
    multipart_url_ttl_seconds: int = Field(12 * 3600, alias=MULTIPART_URL_TTL_SECONDS, gt=0, le=7 * 24 * 3600)
    # A developer setting (the local stack turns it on): webhooks to http://127.0.0.1 pass the SSRF guard.
    webhook_allow_loopback_http: bool = Field(False, alias=WEBHOOK_ALLOW_LOOPBACK_HTTP)
    # A dry run's estimate routes as the worker would (WorkerSettings has the same two, from the same variables).
    lambda_time_budget_seconds: float = Field(600, alias=LAMBDA_TIME_BUDGET_SECONDS, gt=0)
    work_pixels_per_second: float = Field(60e6, alias=WORK_PIXELS_PER_SECOND, gt=0)


class StatusSettings(TenantLimitSettings):
    """Also the tenant's limits: ``GET /account/usage`` shows them."""

    jobs_table: Name = Field(alias=JOBS_TABLE)
    usage_table: Name = Field(alias=USAGE_TABLE)
    outputs_bucket: Name = Field(alias=OUTPUTS_BUCKET)
    download_url_ttl_seconds: int = Field(3600, alias=DOWNLOAD_URL_TTL_SECONDS, gt=0, le=7 * 24 * 3600)


class WorkerSettings(TenantLimitSettings):
    jobs_table: Name = Field(alias=JOBS_TABLE)
    usage_table: Name = Field(alias=USAGE_TABLE)
    uploads_bucket: Name = Field(alias=UPLOADS_BUCKET)
    outputs_bucket: Name = Field(alias=OUTPUTS_BUCKET)
    scratch_dir: str = Field("/tmp", alias=SCRATCH_DIR)
    long_jobs_queue_url: Name = Field(alias=LONG_JOBS_QUEUE_URL)
    # Routing: the Lambda worker hands a job to the long-jobs queue when its estimated work (pixels decoded
    # and encoded, at this rate) would take longer than the budget.
    lambda_time_budget_seconds: float = Field(600, alias=LAMBDA_TIME_BUDGET_SECONDS, gt=0)
    work_pixels_per_second: float = Field(60e6, alias=WORK_PIXELS_PER_SECOND, gt=0)
    # A worker holds a job for this long without a heartbeat (it beats every quarter of it); then another may
    # take it over. The queue message is kept invisible for twice as long.
    lease_seconds: float = Field(60, alias=LEASE_SECONDS, ge=2, le=3600)
    max_attempts: int = Field(3, alias=MAX_ATTEMPTS, ge=1)
    # The long-jobs consumer's wall-clock limit for one job (the Lambda worker stops at its own timeout). Below
    # SQS's 12 h (queues.MAX_VISIBILITY_SECONDS), which count from the message's receive, with 5 minutes for the
    # claim and the hand-back: the job's message must stay hidden until the job ends.
    job_time_limit_seconds: float = Field(11 * 3600, alias=JOB_TIME_LIMIT_SECONDS, gt=0, le=12 * 3600 - 300)
    # Inputs above these fail with input_too_large before any decoding.
    max_input_dimension: int = Field(8192, alias=MAX_INPUT_DIMENSION, gt=0)
    max_input_pixels: int = Field(8192 * 4320, alias=MAX_INPUT_PIXELS, gt=0)
    max_input_duration_seconds: float = Field(4 * 3600, alias=MAX_INPUT_DURATION_SECONDS, gt=0)
    max_input_streams: int = Field(16, alias=MAX_INPUT_STREAMS, gt=0)
    # Read the input at most this many times faster than real time (ffmpeg's -readrate); unset: as fast as
    # possible. The tests use it to make short clips take long enough to cancel or kill mid-encode.
    input_read_rate: float | None = Field(None, alias=INPUT_READ_RATE, gt=0)
    # Dispatch (videojobs/dispatch.py): a job whose tenant is at max_active_jobs is queued again about this much
    # later; a job waits behind its tenant's more urgent queued jobs at most this long.
    at_limit_retry_seconds: float = Field(10, alias=AT_LIMIT_RETRY_SECONDS, gt=0, le=600)
    priority_aging_seconds: float = Field(300, alias=PRIORITY_AGING_SECONDS, ge=0)
    # Inputs at least this long are encoded in chunks of about chunk_seconds by the chunk workers, in parallel.
    chunks_table: Name = Field(alias=CHUNKS_TABLE)
    chunks_queue_url: Name = Field(alias=CHUNKS_QUEUE_URL)
    chunk_seconds: int = Field(30, alias=CHUNK_SECONDS, ge=HLS_SEGMENT_SECONDS, multiple_of=HLS_SEGMENT_SECONDS)
    chunked_min_seconds: float = Field(60, alias=CHUNKED_MIN_SECONDS, gt=0)


class ChunkWorkerSettings(FunctionSettings):
    """The chunk worker: encodes one time range of a job's input into every video rendition."""

    jobs_table: Name = Field(alias=JOBS_TABLE)
    chunks_table: Name = Field(alias=CHUNKS_TABLE)
    uploads_bucket: Name = Field(alias=UPLOADS_BUCKET)
    outputs_bucket: Name = Field(alias=OUTPUTS_BUCKET)
    scratch_dir: str = Field("/tmp", alias=SCRATCH_DIR)
    # As the job worker's (WorkerSettings): the chunk's lease, its tries, the input's limits and read rate.
    lease_seconds: float = Field(60, alias=LEASE_SECONDS, ge=2, le=3600)
    max_attempts: int = Field(3, alias=MAX_ATTEMPTS, ge=1)
    max_input_dimension: int = Field(8192, alias=MAX_INPUT_DIMENSION, gt=0)
    max_input_pixels: int = Field(8192 * 4320, alias=MAX_INPUT_PIXELS, gt=0)
    max_input_duration_seconds: float = Field(4 * 3600, alias=MAX_INPUT_DURATION_SECONDS, gt=0)
    max_input_streams: int = Field(16, alias=MAX_INPUT_STREAMS, gt=0)
    input_read_rate: float | None = Field(None, alias=INPUT_READ_RATE, gt=0)


class CancelSettings(FunctionSettings):
    jobs_table: Name = Field(alias=JOBS_TABLE)
    usage_table: Name = Field(alias=USAGE_TABLE)
    outputs_bucket: Name = Field(alias=OUTPUTS_BUCKET)


class PlaybackSettings(FunctionSettings):
    """Serves HLS playlists behind signed links; segment URLs are presigned GETs valid this long."""

    jobs_table: Name = Field(alias=JOBS_TABLE)
    outputs_bucket: Name = Field(alias=OUTPUTS_BUCKET)
    download_url_ttl_seconds: int = Field(3600, alias=DOWNLOAD_URL_TTL_SECONDS, gt=0, le=7 * 24 * 3600)


class JobsTableSettings(FunctionSettings):
    """For a function that only finishes jobs: the jobs' dead-letter consumer (``fail_dead_jobs``)."""

    jobs_table: Name = Field(alias=JOBS_TABLE)
    usage_table: Name = Field(alias=USAGE_TABLE)


class ChunksTableSettings(FunctionSettings):
    """The chunks' dead-letter consumer (``fail_dead_chunks``)."""

    chunks_table: Name = Field(alias=CHUNKS_TABLE)


class AdminSettings(TenantLimitSettings):
    api_keys_table: Name = Field(alias=API_KEYS_TABLE)
    # The stack outputs RestApiId and TenantUsagePlanId: without them, request rates cannot be set.
    rest_api_id: str | None = Field(None, alias=REST_API_ID)
    usage_plan_id: str | None = Field(None, alias=USAGE_PLAN_ID)


# --- notifications ----------------------------------------------------------------------------------------

# Seconds to wait after each failed attempt (Standard Webhooks' schedule, extended to about three days).
DEFAULT_WEBHOOK_RETRY_DELAYS = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


def _seconds_list(value: object) -> object:
    """``"5,300,1800"`` (an environment variable) -> a tuple of numbers."""
    if isinstance(value, str):
        return tuple(float(item) for item in value.split(",") if item.strip())
    return value


RetryDelays = Annotated[tuple[Annotated[float, Field(ge=0)], ...], BeforeValidator(_seconds_list)]

DEFAULT_EVENT_RETENTION_DAYS = 7
MAX_EVENT_RETENTION_DAYS = 30
EventRetentionDays = Annotated[int, Field(ge=1, le=MAX_EVENT_RETENTION_DAYS)]
"""How long the event log keeps a job's events (DynamoDB TTL): what SSE resumes from and replay can resend."""
DEFAULT_ENDPOINT_DISABLE_AFTER_SECONDS = 5 * 24 * 3600


class NotifySettings(FunctionSettings):
    """The stream's fan-out: the event log, webhook deliveries and WebSocket pushes."""

    job_events_table: Name = Field(alias=JOB_EVENTS_TABLE)
    webhook_deliveries_table: Name = Field(alias=WEBHOOK_DELIVERIES_TABLE)
    ws_connections_table: Name = Field(alias=WS_CONNECTIONS_TABLE)
    deliveries_queue_url: Name = Field(alias=DELIVERIES_QUEUE_URL)
    websocket_url: Name = Field(alias=WEBSOCKET_URL)
    # A job that ends leaves its tenant's pending jobs here (every terminal transition passes the stream).
    tenants_table: Name = Field(alias=TENANTS_TABLE)
    webhook_endpoints_table: Name = Field(alias=WEBHOOK_ENDPOINTS_TABLE)
    endpoint_deliveries_table: Name = Field(alias=ENDPOINT_DELIVERIES_TABLE)
    event_bus_name: Name = Field(alias=EVENT_BUS_NAME)
    event_retention_days: EventRetentionDays = Field(DEFAULT_EVENT_RETENTION_DAYS, alias=EVENT_RETENTION_DAYS)


class DeliverSettings(FunctionSettings):
    webhook_deliveries_table: Name = Field(alias=WEBHOOK_DELIVERIES_TABLE)
    webhook_secrets_table: Name = Field(alias=WEBHOOK_SECRETS_TABLE)
    webhook_endpoints_table: Name = Field(alias=WEBHOOK_ENDPOINTS_TABLE)
    endpoint_deliveries_table: Name = Field(alias=ENDPOINT_DELIVERIES_TABLE)
    event_bus_name: Name = Field(alias=EVENT_BUS_NAME)
    # An endpoint whose every attempt failed for this long (since its last success) is disabled ("failing").
    endpoint_disable_after_seconds: float = Field(
        DEFAULT_ENDPOINT_DISABLE_AFTER_SECONDS, alias=ENDPOINT_DISABLE_AFTER_SECONDS, gt=0
    )
    deliveries_queue_url: Name = Field(alias=DELIVERIES_QUEUE_URL)
    deliveries_dlq_url: Name = Field(alias=DELIVERIES_DLQ_URL)
    webhook_allow_loopback_http: bool = Field(False, alias=WEBHOOK_ALLOW_LOOPBACK_HTTP)
    retry_delays: RetryDelays = Field(DEFAULT_WEBHOOK_RETRY_DELAYS, alias=WEBHOOK_RETRY_DELAYS)
    timeout_seconds: float = Field(10, alias=WEBHOOK_TIMEOUT_SECONDS, gt=0, le=30)


class EventsSettings(TenantLimitSettings):
    """Server-Sent Events. Buffered (the long poll): how long one request waits for news (under API Gateway's
    29 s). Streamed: how long one response lasts (under API Gateway's 15 minutes) and how often a quiet stream
    sends a keep-alive (under its idle timeout); ``wiring.RESPONSE_STREAMING`` derives both from those caps."""

    jobs_table: Name = Field(alias=JOBS_TABLE)
    job_events_table: Name = Field(alias=JOB_EVENTS_TABLE)
    sse_wait_seconds: float = Field(25, alias=SSE_WAIT_SECONDS, gt=0, le=28)
    sse_stream_seconds: float = Field(870, alias=SSE_STREAM_SECONDS, gt=0, lt=900)
    sse_keepalive_seconds: float = Field(10, alias=SSE_KEEPALIVE_SECONDS, gt=0)


class WebSocketSettings(TenantLimitSettings):
    ws_tickets_table: Name = Field(alias=WS_TICKETS_TABLE)
    ws_connections_table: Name = Field(alias=WS_CONNECTIONS_TABLE)
    job_events_table: Name = Field(alias=JOB_EVENTS_TABLE)


class NotificationsApiSettings(FunctionSettings):
    """Webhook secrets, the delivery ledger and WebSocket tickets."""

    jobs_table: Name = Field(alias=JOBS_TABLE)
    webhook_secrets_table: Name = Field(alias=WEBHOOK_SECRETS_TABLE)
    webhook_deliveries_table: Name = Field(alias=WEBHOOK_DELIVERIES_TABLE)
    ws_tickets_table: Name = Field(alias=WS_TICKETS_TABLE)
    deliveries_queue_url: Name = Field(alias=DELIVERIES_QUEUE_URL)
    websocket_url: Name = Field(alias=WEBSOCKET_URL)
    webhook_endpoints_table: Name = Field(alias=WEBHOOK_ENDPOINTS_TABLE)
    endpoint_deliveries_table: Name = Field(alias=ENDPOINT_DELIVERIES_TABLE)
    job_events_table: Name = Field(alias=JOB_EVENTS_TABLE)
    event_retention_days: EventRetentionDays = Field(DEFAULT_EVENT_RETENTION_DAYS, alias=EVENT_RETENTION_DAYS)
    webhook_allow_loopback_http: bool = Field(False, alias=WEBHOOK_ALLOW_LOOPBACK_HTTP)
    ws_ticket_ttl_seconds: int = Field(60, alias=WS_TICKET_TTL_SECONDS, gt=0, le=3600)
