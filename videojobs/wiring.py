"""The shape of the system, declared once.

Tables, queues, buckets, functions, HTTP routes and triggers are described here as plain data, and so is how
they are configured (stage name, authorizer cache, gateway errors, CORS, lifecycle, dead-letter retention,
event-source batch sizes). The CDK construct (``infra/``) turns them into CloudFormation and the local stack
(``infra/local``) turns them into moto resources and in-process pollers; ``tests/infra/test_wiring_parity.py``
creates the local resources on moto and compares them with the synthesized template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from videojobs import settings as env
from videojobs.models import ErrorCode

Access = Literal["read", "write", "read_write"]

API_STAGE = "v1"
"""The REST and WebSocket APIs' stage, and the custom domain's base path: URLs end in ``/v1/...``."""
AUTHORIZER_CACHE_SECONDS = 60
"""How long API Gateway reuses an authorizer's answer for the same ``Authorization`` header: a revoked key works
at most this long. The default of the CDK prop ``authorizer_cache_ttl_seconds`` and of the local stack's
``--authorizer-cache-ttl``."""
DEAD_LETTER_RETENTION_SECONDS = 14 * 24 * 3600
"""SQS's maximum: dead letters (and failed stream records) wait for a human."""


@dataclass(frozen=True)
class GatewayError:
    """An error API Gateway answers itself, before or instead of our handlers, in our JSON error shape."""

    response_type: str
    """API Gateway's response type (``UNAUTHORIZED``, ``DEFAULT_4XX``...)."""
    status: int | None
    """None keeps API Gateway's own status (the DEFAULT_* types cover several)."""
    code: ErrorCode
    message: str | None
    """None passes API Gateway's own message (``$context.error.messageString``)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Fixed response headers (API Gateway's gateway responses can only send static values)."""


GATEWAY_ERRORS: dict[str, GatewayError] = {
    error.response_type: error
    for error in (
        GatewayError("UNAUTHORIZED", 401, ErrorCode.UNAUTHORIZED, "missing or invalid API key"),
        # The authorizer answers Deny for an unknown key: to the client that is the same as no key.
        GatewayError("ACCESS_DENIED", 401, ErrorCode.UNAUTHORIZED, "missing or invalid API key"),
        # A REST API answers an unknown route with "Missing Authentication Token" (403).
        GatewayError("MISSING_AUTHENTICATION_TOKEN", 404, ErrorCode.NOT_FOUND, "route not found"),
        # Over the tenant's usage plan (its requests_per_second and burst: videojobs.usage_plans) or the stage's.
        GatewayError(
            "THROTTLED",
            429,
            ErrorCode.RATE_LIMITED,
            "too many requests: over your requests_per_second and burst",
            headers=(("Retry-After", "1"),),
        ),
        # Every authorized method requires the API key the authorizer names: a tenant whose key is in no usage
        # plan (registered before rate limits existed) is refused until an operator runs set-limits for it.
        GatewayError(
            "INVALID_API_KEY",
            403,
            ErrorCode.FORBIDDEN,
            "this tenant has no request rate yet: ask the operator to run videojobs admin set-limits for it",
        ),
        GatewayError("REQUEST_TOO_LARGE", 413, ErrorCode.PAYLOAD_TOO_LARGE, "request too large"),
        GatewayError("DEFAULT_4XX", None, ErrorCode.BAD_REQUEST, None),
        GatewayError("DEFAULT_5XX", None, ErrorCode.INTERNAL_ERROR, None),
    )
}


@dataclass(frozen=True)
class BrowserCors:
    """The CORS rule of a bucket that browsers use directly with presigned URLs (``Bucket.browser_methods``)."""

    origins: tuple[str, ...] = ("*",)
    """Any page: a presigned URL is the credential, not the origin."""
    headers: tuple[str, ...] = ("*",)
    exposed_headers: tuple[str, ...] = ("ETag",)
    """A multipart upload from the page needs each part's ETag to complete it."""
    max_age_seconds: int = 3000


BROWSER_CORS = BrowserCors()


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str
    projection: tuple[str, ...] | None = None
    """The attributes it holds besides the keys (``INCLUDE``); None: all of them (``ALL``). DynamoDB writes an
    index only when a write changes a key or a projected attribute: what is left out costs it nothing."""

    @property
    def projection_type(self) -> str:
        """DynamoDB's name for the projection: ``ALL``, ``KEYS_ONLY`` (an empty projection) or ``INCLUDE``."""
        if self.projection is None:
            return "ALL"
        return "INCLUDE" if self.projection else "KEYS_ONLY"


@dataclass(frozen=True)
class Table:
    partition_key: str
    env_var: str
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None
    stream: bool = False
    sort_key: str | None = None


@dataclass(frozen=True)
class Queue:
    env_var: str
    consumer: str
    """The function that consumes it (its timeout sets the visibility timeout), or a container ``Service``."""
    max_receive_count: int = 5
    """At least 5, as AWS advises for a Lambda consumer: a receive whose invocation is throttled still counts."""
    batch_size: int = 1
    max_concurrency: int | None = None
    """The most concurrent invocations the event source mapping makes (2 at least; None: up to the account's
    concurrency). Each local poller is one such invocation."""
    dead_letter_consumer: str | None = None
    dead_letter_batch_size: int = 10
    """A dead letter costs its consumer one conditional write, and each record fails alone (batch item
    failures): ten at a time drain a burst of dead letters (a crashing worker) ten times faster."""
    dead_letter_env_var: str | None = None
    """Set when a function moves messages to the dead-letter queue itself (``uses`` names it ``<queue>_dlq``)."""


@dataclass(frozen=True)
class Bucket:
    env_var: str
    expire_after_days: int | None = None
    abort_incomplete_uploads_after_days: int = 1
    """Parts of a multipart upload never completed (a closed tab) cost storage until aborted."""
    browser_methods: tuple[str, ...] = ()
    """HTTP methods that browsers use on it directly with presigned URLs (so it needs CORS for them):
    uploads are POSTed or PUT from the page, outputs are fetched by players such as hls.js."""


@dataclass(frozen=True)
class Function:
    handler: str
    """Module path and attribute, relative to the repository root (Lambda's handler string)."""
    timeout_seconds: int = 29
    memory_mb: int = 512
    image: bool = False
    """True: the container image with ffmpeg (``functions/process/Dockerfile``); False: a zip function."""
    uses: dict[str, Access] = field(default_factory=dict)
    """Resource name -> access. Decides both the IAM grants and the environment variables."""
    settings: type[env.FunctionSettings] | None = None
    """What the function reads from its environment: ``tests/infra/test_stack.py``
    (``test_function_environment_satisfies_its_settings_model``) checks ``uses`` provides all of it."""
    reserved_concurrency: int | None = None
    """Concurrent executions set aside for it, which are also its cap (None: it shares the account's pool)."""
    stream_handler: str | None = None
    """Its handler where API Gateway streams its responses (``videojobs.lambda_streaming``): it returns a
    ``StreamingResponse`` whose body goes out as it is produced, for up to ``RESPONSE_STREAMING.max_seconds``
    (the function's timeout then). ``handler`` stays the buffered one, for a deployment that does not stream."""

    @property
    def directory(self) -> str:
        return "/".join(self.handler.split(".")[:2])


@dataclass(frozen=True)
class ResponseStreaming:
    """API Gateway's limits on a streamed response (``ResponseTransferMode.STREAM``), and what a streaming
    handler makes of them. The CDK stack sets the handler's settings from these; the local gateway enforces the
    limits (tests shorten them) and sets the same settings from its own."""

    max_seconds: float = 15 * 60
    """The longest a streamed response may last: API Gateway cuts it there."""
    idle_seconds: float = 30
    """API Gateway closes a stream that sent nothing for this long: 30 s on an edge-optimized endpoint (the
    REST API's, as CDK creates it), 5 minutes on a regional or private one."""

    @property
    def stream_seconds(self) -> float:
        """How long a handler streams before ending its response cleanly: the client resumes before the cut."""
        return self.max_seconds - min(30.0, self.max_seconds / 3)

    @property
    def keepalive_seconds(self) -> float:
        """A quiet stream sends a comment this often: well under the idle timeout."""
        return self.idle_seconds / 3

    def settings(self) -> dict[str, str]:
        """The streaming handler's settings (``EventsSettings``) for these limits."""
        return {
            env.SSE_STREAM_SECONDS: f"{self.stream_seconds:g}",
            env.SSE_KEEPALIVE_SECONDS: f"{self.keepalive_seconds:g}",
        }


RESPONSE_STREAMING = ResponseStreaming()


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    authorized: bool = True
    long_poll: bool = False
    """The handler may hold the request up to the integration timeout (Server-Sent Events), or, where its
    function has a ``stream_handler`` and the deployment streams, for as long as its streamed response lasts.
    Such a handler is a plain function, not a Powertools resolver (whose current request is process-wide), so
    the local gateway runs it alongside other requests."""


@dataclass(frozen=True)
class WebSocketApi:
    """An API Gateway WebSocket API whose routes (``$connect``, ``$disconnect`` and actions chosen by the
    message's ``action``) all go to one function. A function that ``uses`` it gets ``env_var`` (the
    ``wss://`` URL of the stage); with write access it may also post to and close connections."""

    function: str
    routes: tuple[str, ...]
    env_var: str
    reply_routes: tuple[str, ...] = ()
    """Routes whose handler's answer is sent back to the client as a message."""


@dataclass(frozen=True)
class Service:
    """A long-running container consumer of a queue: an ECS Fargate service in AWS (``infra/fargate.py``) and a
    supervised subprocess in the local stack. It runs the worker image with ``python -m <module>`` as command."""

    module: str
    queue: str
    """The queue it polls; the consumer heartbeats each message's visibility while it works on it."""
    uses: dict[str, Access] = field(default_factory=dict)
    settings: type[env.FunctionSettings] | None = None
    visibility_timeout_seconds: int = 300
    """Until the consumer's first heartbeat; a crashed task's message comes back after at most this."""
    cpu: int = 2048
    """Fargate CPU units (1024 = 1 vCPU)."""
    memory_mb: int = 8192
    ephemeral_storage_gib: int = 200
    """Scratch disk for the input and every rendition (Fargate's maximum)."""
    max_tasks: int = 4


@dataclass(frozen=True)
class StreamTrigger:
    table: str
    function: str
    event_names: tuple[str, ...] = ("INSERT", "MODIFY")
    batch_size: int = 100
    retry_attempts: int = 3
    max_record_age_seconds: int = 3600


WEBSOCKET = "websocket"
"""The WebSocket API, as a resource a function ``uses``."""

EVENT_BUS = "event_bus"
"""The EventBridge bus every job event is also put on, as a resource a function ``uses`` (write: PutEvents).
A function that uses it gets ``EVENT_BUS_NAME``."""

WEBSOCKET_API = WebSocketApi(
    function="websocket",
    routes=("$connect", "$disconnect", "subscribe"),
    env_var=env.WEBSOCKET_URL,
    reply_routes=("subscribe",),
)

TABLES: dict[str, Table] = {
    "jobs": Table(
        partition_key="id",
        env_var=env.JOBS_TABLE,
        # Keys and what lists filter on only: progress and heartbeats (about one write a second per running job)
        # never reach this index, whose one partition key per tenant would otherwise take every write of every
        # running job of the tenant (README "Capacity"). Lists read the jobs from the table.
        indexes=(
            Index("by_tenant", partition_key="tenant_id", sort_key="created_key", projection=("status", "priority")),
            # Sparse: only queued jobs have its keys, and it holds nothing else. A worker asks it whether a more
            # urgent job of the tenant is waiting (videojobs/dispatch.py).
            Index("queued_by_tenant", partition_key="queued_tenant", sort_key="queued_rank", projection=()),
        ),
        stream=True,
    ),
    "api_keys": Table(partition_key="key_hash", env_var=env.API_KEYS_TABLE),
    # Per tenant: its limit overrides (record "limits") and its counters (pending jobs, open streams, the
    # bytes uploaded per UTC day, which expire), read and written atomically per record.
    "tenants": Table(
        partition_key="tenant_id", sort_key="record", env_var=env.TENANTS_TABLE, ttl_attribute="expires_at"
    ),
    "idempotency": Table(partition_key="id", env_var=env.IDEMPOTENCY_TABLE, ttl_attribute="expires_at"),
    # Notifications. Every job event by version: what SSE serves and WebSocket subscribers catch up from.
    "job_events": Table(
        partition_key="job_id",
        sort_key="seq",
        env_var=env.JOB_EVENTS_TABLE,
        ttl_attribute="expires_at",
        # A tenant's events in time order ("<timestamp>#<job>#<seq>"): what a webhook endpoint's replay resends.
        indexes=(Index("by_tenant", partition_key="tenant_id", sort_key="at_key"),),
    ),
    "webhook_secrets": Table(partition_key="tenant_id", env_var=env.WEBHOOK_SECRETS_TABLE),
    "webhook_deliveries": Table(
        partition_key="job_id", sort_key="delivery_id", env_var=env.WEBHOOK_DELIVERIES_TABLE, ttl_attribute="expires_at"
    ),
    # A tenant's webhook endpoints (their URL, event filter, secret and health), and each one's ledger.
    "webhook_endpoints": Table(partition_key="tenant_id", sort_key="endpoint_id", env_var=env.WEBHOOK_ENDPOINTS_TABLE),
    "endpoint_deliveries": Table(
        partition_key="endpoint_id",
        sort_key="delivery_id",
        env_var=env.ENDPOINT_DELIVERIES_TABLE,
        ttl_attribute="expires_at",
        indexes=(Index("by_time", partition_key="endpoint_id", sort_key="created_key"),),
    ),
    "ws_connections": Table(
        partition_key="job_id",
        sort_key="connection_id",
        env_var=env.WS_CONNECTIONS_TABLE,
        ttl_attribute="expires_at",
        indexes=(Index("by_connection", partition_key="connection_id", sort_key="job_id"),),
    ),
    "ws_tickets": Table(partition_key="ticket_hash", env_var=env.WS_TICKETS_TABLE, ttl_attribute="expires_at"),
    # One item per tenant and UTC day, changed only by ADD (videojobs/usage.py): GET /account/usage.
    "usage": Table(partition_key="tenant_id", sort_key="day", env_var=env.USAGE_TABLE),
    # The chunks of chunked encodes, by job (videojobs.chunk_store).
    "chunks": Table(partition_key="job_id", sort_key="index", env_var=env.CHUNKS_TABLE, ttl_attribute="expires_at"),
}

BUCKETS: dict[str, Bucket] = {
    # Uploads are inputs only: a job copies nothing back, so they expire soon after they are used.
    "uploads": Bucket(env_var=env.UPLOADS_BUCKET, expire_after_days=7, browser_methods=("POST", "PUT")),
    "outputs": Bucket(env_var=env.OUTPUTS_BUCKET, expire_after_days=30, browser_methods=("GET", "HEAD")),
}

QUEUES: dict[str, Queue] = {
    "jobs": Queue(
        env_var=env.JOBS_QUEUE_URL,
        consumer="process",
        dead_letter_consumer="fail_dead_jobs",
        # A burst of submits must not take the account's concurrency from the API (jobs wait in the queue).
        max_concurrency=10,
    ),
    # Retries are scheduled by the deliverer (ChangeMessageVisibility), which also moves a delivery whose
    # schedule is spent to the DLQ; the redrive catches only messages the deliverer itself keeps failing on
    # (10 attempts and 3 hops past SQS's 12 h visibility limit take 13 receives).
    "deliveries": Queue(
        env_var=env.DELIVERIES_QUEUE_URL,
        consumer="deliver",
        max_receive_count=20,
        max_concurrency=10,
        dead_letter_env_var=env.DELIVERIES_DLQ_URL,
    ),
    # Jobs the Lambda worker estimates too long for its 15 minutes. A receive that finds the job held by a live
    # worker puts the message back until that lease could have run out: more receives than tries.
    "long_jobs": Queue(
        env_var=env.LONG_JOBS_QUEUE_URL,
        consumer="long_worker",
        max_receive_count=10,
        dead_letter_consumer="fail_dead_jobs",
    ),
    # One message per chunk of a chunked encode. A receive that finds the chunk held by a live worker puts the
    # message back until that lease could have run out: more receives than tries.
    "chunks": Queue(
        env_var=env.CHUNKS_QUEUE_URL,
        consumer="chunk",
        max_receive_count=10,
        dead_letter_consumer="fail_dead_chunks",
        # The width of a chunked encode: an hour of input in 30 s chunks is 120 chunks.
        max_concurrency=120,
    ),
}

SERVICES: dict[str, Service] = {
    "long_worker": Service(
        module="functions.process.consumer",
        queue="long_jobs",
        uses={
            "jobs": "read_write",
            "usage": "read_write",
            "uploads": "read",
            "outputs": "write",
            "long_jobs_queue": "read_write",
            "tenants": "read_write",  # read_write: a claim takes one of the tenant's active-job slots
            "chunks": "read_write",
            "chunks_queue": "write",
        },
        settings=env.WorkerSettings,
    ),
}

FUNCTIONS: dict[str, Function] = {
    "authorizer": Function(
        handler="functions.authorizer.handler.lambda_handler",
        timeout_seconds=5,
        memory_mb=256,
        uses={"api_keys": "read_write"},  # read_write: it records when a key was last used
        settings=env.AuthorizerSettings,
    ),
    "submit": Function(
        handler="functions.submit.handler.lambda_handler",
        uses={
            "jobs": "read_write",
            "usage": "read_write",
            "idempotency": "read_write",
            "jobs_queue": "write",
            "uploads": "read_write",
            "tenants": "read_write",
        },
        settings=env.SubmitSettings,
    ),
    "status": Function(
        handler="functions.status.handler.lambda_handler",
        uses={"jobs": "read", "usage": "read", "tenants": "read", "outputs": "read"},
        settings=env.StatusSettings,
    ),
    "process": Function(
        handler="functions.process.handler.lambda_handler",
        timeout_seconds=900,
        memory_mb=3008,
        image=True,
        # infra/fargate.py also lets it delete outputs: a worker removes the partial outputs it wrote.
        uses={
            "jobs": "read_write",
            "usage": "read_write",
            "uploads": "read",
            "outputs": "write",
            "long_jobs_queue": "write",
            "tenants": "read_write",  # read_write: a claim takes one of the tenant's active-job slots
            "chunks": "read_write",
            "chunks_queue": "write",
        },
        settings=env.WorkerSettings,
    ),
    # The chunks queue's consumer: the same image, one chunk of a chunked encode per message.
    "chunk": Function(
        handler="functions.process.chunk_handler.lambda_handler",
        timeout_seconds=900,
        memory_mb=3008,
        image=True,
        # infra/construct.py also lets it delete outputs: a chunk worker removes the pieces it wrote.
        uses={"jobs": "read", "chunks": "read_write", "uploads": "read", "outputs": "write"},
        settings=env.ChunkWorkerSettings,
    ),
    "cancel": Function(
        handler="functions.cancel.handler.lambda_handler",
        memory_mb=256,
        uses={"jobs": "read_write", "usage": "read_write", "outputs": "read_write"},
        settings=env.CancelSettings,
    ),
    # HLS playlists behind signed links: players fetch them without an Authorization header.
    "playback": Function(
        handler="functions.playback.handler.lambda_handler",
        memory_mb=512,
        uses={"jobs": "read", "outputs": "read"},
        settings=env.PlaybackSettings,
    ),
    "fail_dead_chunks": Function(
        handler="functions.fail_dead_chunks.handler.lambda_handler",
        timeout_seconds=30,
        memory_mb=256,
        uses={"chunks": "read_write"},
        settings=env.ChunksTableSettings,
    ),
    "fail_dead_jobs": Function(
        handler="functions.fail_dead_jobs.handler.lambda_handler",
        timeout_seconds=30,
        memory_mb=256,
        uses={"jobs": "read_write", "usage": "read_write"},
        settings=env.JobsTableSettings,
    ),
    # Fans each job event out; it reads the change from the stream, not the table.
    "notify": Function(
        handler="functions.notify.handler.lambda_handler",
        timeout_seconds=30,
        memory_mb=256,
        uses={
            "job_events": "read_write",
            "webhook_deliveries": "read_write",
            "deliveries_queue": "write",
            "ws_connections": "read_write",
            "webhook_endpoints": "read",
            "endpoint_deliveries": "read_write",
            WEBSOCKET: "write",
            "tenants": "read_write",
            EVENT_BUS: "write",
        },
        settings=env.NotifySettings,
    ),
    # One webhook attempt per message: a 10 s POST, signing and the ledger.
    "deliver": Function(
        handler="functions.deliver.handler.lambda_handler",
        timeout_seconds=20,
        memory_mb=256,
        uses={
            "webhook_deliveries": "read_write",
            "webhook_secrets": "read_write",
            "deliveries_queue": "read_write",  # write: an endpoint.disabled event for the tenant's other endpoints
            "deliveries_dlq": "write",
            "webhook_endpoints": "read_write",
            "endpoint_deliveries": "read_write",
            EVENT_BUS: "write",
        },
        settings=env.DeliverSettings,
    ),
    "websocket": Function(
        handler="functions.websocket.handler.lambda_handler",
        timeout_seconds=10,
        memory_mb=256,
        uses={
            "ws_tickets": "read_write",
            "ws_connections": "read_write",
            "job_events": "read",
            "tenants": "read_write",
        },
        settings=env.WebSocketSettings,
    ),
    # Each SSE stream (or long poll) holds an execution environment while it is open: reserved concurrency
    # caps them, so open streams can never take the concurrency the rest of the API needs.
    "events": Function(
        handler="functions.events.handler.lambda_handler",
        stream_handler="functions.events.handler.stream_handler",
        memory_mb=256,
        reserved_concurrency=50,
        uses={"jobs": "read", "job_events": "read", "tenants": "read_write"},
        settings=env.EventsSettings,
    ),
    "notifications": Function(
        handler="functions.notifications.handler.lambda_handler",
        memory_mb=256,
        uses={
            "jobs": "read",
            "webhook_secrets": "read_write",
            "webhook_deliveries": "read_write",
            "ws_tickets": "write",
            "deliveries_queue": "write",
            "webhook_endpoints": "read_write",
            "endpoint_deliveries": "read_write",
            "job_events": "read",
            WEBSOCKET: "read",
        },
        settings=env.NotificationsApiSettings,
    ),
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "status", authorized=False),
    Route("POST", "/uploads", "submit"),
    Route("POST", "/uploads/{id}/complete", "submit"),
    Route("POST", "/uploads/{id}/parts", "submit"),
    Route("DELETE", "/uploads/{id}", "submit"),
    Route("POST", "/jobs", "submit"),
    Route("GET", "/jobs", "status"),
    Route("GET", "/jobs/{id}", "status"),
    Route("GET", "/account/usage", "status"),
    Route("POST", "/jobs/{id}/cancel", "cancel"),
    Route("PATCH", "/jobs/{id}", "cancel"),
    Route("GET", "/playback/{token}/{name}", "playback", authorized=False),
    Route("GET", "/jobs/{id}/events", "events", long_poll=True),
    Route("POST", "/jobs/{id}/ws-ticket", "notifications"),
    Route("GET", "/jobs/{id}/deliveries", "notifications"),
    Route("POST", "/jobs/{id}/deliveries/{delivery_id}/redeliver", "notifications"),
    Route("GET", "/account/webhook-secret", "notifications"),
    Route("POST", "/account/webhook-secret/rotate", "notifications"),
    Route("POST", "/webhook-endpoints", "notifications"),
    Route("GET", "/webhook-endpoints", "notifications"),
    Route("GET", "/webhook-endpoints/{id}", "notifications"),
    Route("PATCH", "/webhook-endpoints/{id}", "notifications"),
    Route("DELETE", "/webhook-endpoints/{id}", "notifications"),
    Route("GET", "/webhook-endpoints/{id}/secret", "notifications"),
    Route("POST", "/webhook-endpoints/{id}/secret/rotate", "notifications"),
    Route("GET", "/webhook-endpoints/{id}/deliveries", "notifications"),
    Route("POST", "/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver", "notifications"),
    Route("POST", "/webhook-endpoints/{id}/replay", "notifications"),
)

API_BASE_PATH = API_STAGE
"""A custom domain's base-path mapping, the same, so URLs read alike on both hosts: ``https://<domain>/v1``.
Behind it the proxy event's ``path`` keeps the base path (``/v1/jobs``) and ``resource`` does not."""
BINARY_MEDIA_TYPES: tuple[str, ...] = ()
"""Content types API Gateway passes to and from the functions as base64 (``binaryMediaTypes``): none, as every
body of this API is JSON or text. Any other body reaches a handler as text."""

STREAM_TRIGGERS: tuple[StreamTrigger, ...] = (StreamTrigger(table="jobs", function="notify"),)

AUTHORIZER = "authorizer"


LIVE_ALIAS = "live"
"""The alias API Gateway invokes a SnapStart function through (SnapStart serves published versions only)."""


def snap_start(function: str) -> bool:
    """Whether ``function`` runs with Lambda SnapStart: the zip functions a client waits on (routes, the
    authorizer, the WebSocket API). Queue and stream consumers start cold; an image function cannot have it."""
    api_facing = {route.function for route in ROUTES} | {AUTHORIZER, WEBSOCKET_API.function}
    return function in api_facing and not FUNCTIONS[function].image


@dataclass(frozen=True)
class TableRef:
    name: str

    @property
    def env_var(self) -> str:
        return TABLES[self.name].env_var


@dataclass(frozen=True)
class BucketRef:
    name: str

    @property
    def env_var(self) -> str:
        return BUCKETS[self.name].env_var


@dataclass(frozen=True)
class QueueRef:
    name: str

    @property
    def env_var(self) -> str:
        return QUEUES[self.name].env_var


@dataclass(frozen=True)
class DeadLetterQueueRef:
    """A queue's dead-letter queue, for a function that moves messages there itself."""

    name: str

    @property
    def env_var(self) -> str:
        variable = QUEUES[self.name].dead_letter_env_var
        if variable is None:
            raise KeyError(f"queue {self.name!r} declares no dead_letter_env_var")
        return variable


@dataclass(frozen=True)
class WebSocketRef:
    @property
    def env_var(self) -> str:
        return WEBSOCKET_API.env_var


@dataclass(frozen=True)
class EventBusRef:
    @property
    def env_var(self) -> str:
        return env.EVENT_BUS_NAME


ResourceRef = TableRef | BucketRef | QueueRef | DeadLetterQueueRef | WebSocketRef | EventBusRef
"""What a name in ``uses`` refers to. Each backend resolves these with one ``match``."""


def ref(resource: str) -> ResourceRef:
    """The resource a name in ``uses`` means: a table or bucket by its name, a queue as ``<queue>_queue``, its
    dead-letter queue as ``<queue>_dlq``, the WebSocket API as ``websocket``, the event bus as ``event_bus``."""
    if resource in TABLES:
        return TableRef(resource)
    if resource in BUCKETS:
        return BucketRef(resource)
    if resource.endswith("_queue") and resource.removesuffix("_queue") in QUEUES:
        return QueueRef(resource.removesuffix("_queue"))
    if resource.endswith("_dlq") and resource.removesuffix("_dlq") in QUEUES:
        return DeadLetterQueueRef(resource.removesuffix("_dlq"))
    if resource == WEBSOCKET:
        return WebSocketRef()
    if resource == EVENT_BUS:
        return EventBusRef()
    raise KeyError(f"unknown resource {resource!r}")


def refs(uses: dict[str, Access]) -> dict[ResourceRef, Access]:
    """``uses`` with typed references as keys."""
    return {ref(resource): access for resource, access in uses.items()}


def visibility_timeout_seconds(queue: Queue) -> int:
    """AWS advises six times the consumer's timeout, so a slow run is not delivered twice. A service's consumer
    heartbeats instead: its queue's visibility only covers the moment before the first heartbeat."""
    if queue.consumer in SERVICES:
        return SERVICES[queue.consumer].visibility_timeout_seconds
    return 6 * FUNCTIONS[queue.consumer].timeout_seconds


def dead_letter_visibility_timeout_seconds(queue: Queue) -> int | None:
    """The same rule for the dead-letter queue's consumer, if it has one."""
    if queue.dead_letter_consumer is None:
        return None
    return 6 * FUNCTIONS[queue.dead_letter_consumer].timeout_seconds
