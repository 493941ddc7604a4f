"""The shape of the system, declared once.

Tables, queues, buckets, functions, HTTP routes and triggers are described here as plain data. The CDK
construct (``infra/``) turns them into CloudFormation and the local stack (``infra/local``) turns them into
moto resources and in-process pollers, so the two cannot drift apart (``tests/infra`` proves they agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from videojobs import settings as env

Access = Literal["read", "write", "read_write"]


@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class Table:
    partition_key: str
    env_var: str
    indexes: tuple[Index, ...] = ()
    ttl_attribute: str | None = None
    stream: bool = False


@dataclass(frozen=True)
class Queue:
    env_var: str
    consumer: str
    """The function that consumes it; its timeout sets the visibility timeout."""
    max_receive_count: int = 3
    batch_size: int = 1
    dead_letter_consumer: str | None = None


@dataclass(frozen=True)
class Bucket:
    env_var: str
    expire_after_days: int | None = None
    browser_uploads: bool = False
    """Browsers POST files straight to it with a presigned POST, so it needs CORS."""


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
    """What the function reads from its environment: ``tests/infra`` checks ``uses`` provides all of it."""

    @property
    def directory(self) -> str:
        return "/".join(self.handler.split(".")[:2])


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    authorized: bool = True


@dataclass(frozen=True)
class StreamTrigger:
    table: str
    function: str
    event_names: tuple[str, ...] = ("INSERT", "MODIFY")
    batch_size: int = 100
    retry_attempts: int = 3
    max_record_age_seconds: int = 3600


TABLES: dict[str, Table] = {
    "jobs": Table(
        partition_key="id",
        env_var=env.JOBS_TABLE,
        indexes=(Index("by_tenant", partition_key="tenant_id", sort_key="created_key"),),
        stream=True,
    ),
    "api_keys": Table(partition_key="key_hash", env_var=env.API_KEYS_TABLE),
    "idempotency": Table(partition_key="id", env_var=env.IDEMPOTENCY_TABLE, ttl_attribute="expires_at"),
}

BUCKETS: dict[str, Bucket] = {
    # Uploads are inputs only: a job copies nothing back, so they expire soon after they are used.
    "uploads": Bucket(env_var=env.UPLOADS_BUCKET, expire_after_days=7, browser_uploads=True),
    "outputs": Bucket(env_var=env.OUTPUTS_BUCKET, expire_after_days=30),
}

QUEUES: dict[str, Queue] = {
    "jobs": Queue(env_var=env.JOBS_QUEUE_URL, consumer="process", max_receive_count=3,
                  dead_letter_consumer="fail_dead_jobs"),
}

FUNCTIONS: dict[str, Function] = {
    "authorizer": Function(
        handler="functions.authorizer.handler.lambda_handler", timeout_seconds=5, memory_mb=256,
        uses={"api_keys": "read"},
        settings=env.AuthorizerSettings,
    ),
    "submit": Function(
        handler="functions.submit.handler.lambda_handler",
        uses={"jobs": "read_write", "idempotency": "read_write", "jobs_queue": "write", "uploads": "read_write"},
        settings=env.SubmitSettings,
    ),
    "status": Function(
        handler="functions.status.handler.lambda_handler",
        uses={"jobs": "read", "outputs": "read"},
        settings=env.StatusSettings,
    ),
    "process": Function(
        handler="functions.process.handler.lambda_handler", timeout_seconds=900, memory_mb=3008, image=True,
        uses={"jobs": "read_write", "uploads": "read", "outputs": "write"},
        settings=env.WorkerSettings,
    ),
    "fail_dead_jobs": Function(
        handler="functions.fail_dead_jobs.handler.lambda_handler", timeout_seconds=30, memory_mb=256,
        uses={"jobs": "read_write"},
        settings=env.JobsTableSettings,
    ),
    "notify": Function(
        handler="functions.notify.handler.lambda_handler", timeout_seconds=30, memory_mb=256,
        uses={"jobs": "read"},
        settings=env.JobsTableSettings,
    ),
}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "status", authorized=False),
    Route("POST", "/uploads", "submit"),
    Route("POST", "/jobs", "submit"),
    Route("GET", "/jobs", "status"),
    Route("GET", "/jobs/{id}", "status"),
)

STREAM_TRIGGERS: tuple[StreamTrigger, ...] = (StreamTrigger(table="jobs", function="notify"),)

AUTHORIZER = "authorizer"


def queue_for(resource: str) -> str | None:
    """``jobs_queue`` -> ``jobs``: queues are named in ``uses`` with a ``_queue`` suffix."""
    return resource.removesuffix("_queue") if resource.endswith("_queue") else None


def env_var_of(resource: str) -> str:
    """The environment variable that tells a function where ``resource`` is."""
    if resource in TABLES:
        return TABLES[resource].env_var
    if resource in BUCKETS:
        return BUCKETS[resource].env_var
    queue = queue_for(resource)
    if queue in QUEUES:
        return QUEUES[queue].env_var
    raise KeyError(f"unknown resource {resource!r}")


def visibility_timeout_seconds(queue: Queue) -> int:
    """AWS advises six times the consumer's timeout, so a slow run is not delivered twice."""
    return 6 * FUNCTIONS[queue.consumer].timeout_seconds


def dead_letter_visibility_timeout_seconds(queue: Queue) -> int | None:
    """The same rule for the dead-letter queue's consumer, if it has one."""
    if queue.dead_letter_consumer is None:
        return None
    return 6 * FUNCTIONS[queue.dead_letter_consumer].timeout_seconds
