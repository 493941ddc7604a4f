"""``LocalStack``: the whole service in one process, on moto, from the declarations in ``videojobs.wiring``.

It starts a moto server, creates every table, bucket and queue, points the process environment at them, adds a
dev API key, serves the API over HTTP and runs the event source mappings as threads. ``python -m infra.local``
runs it until interrupted; tests start it on port 0 as a context manager.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import boto3
import uvicorn
from botocore.config import Config
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from starlette.types import ASGIApp

from infra.local.atomic_dynamodb import configure as configure_dynamodb
from infra.local.atomic_dynamodb import make_dynamodb_atomic
from infra.local.fair_sqs import configure as configure_sqs_fairness
from infra.local.fair_sqs import make_sqs_fair
from infra.local.functions import Functions
from infra.local.gateway import API_ID as GATEWAY_API_ID
from infra.local.gateway import LocalGateway, UsagePlanThrottle
from infra.local.pollers import SqsPoller, StreamPoller
from infra.local.resources import Resources, create_resources
from infra.local.services import ServiceTasks
from infra.local.strict_s3 import SigningCredentials, StrictS3, StrictS3Server
from infra.local.strict_sqs import make_sqs_visibility_strict
from infra.local.web import REDACT_SECRETS, LoopbackHostOnly, StaticSite
from infra.local.websocket import PATH as WEBSOCKET_PATH
from infra.local.websocket import ConnectionLimits
from videojobs import aws, settings, wiring
from videojobs.api_keys import ApiKeyStore
from videojobs.ids import hash_api_key, key_prefix, new_api_key
from videojobs.metric_names import METRICS_NAMESPACE, SERVICE_NAME
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.usage_plans import UsagePlans

log = logging.getLogger(__name__)

DEV_TENANT = "dev"
DEFAULT_VISIBILITY_TIMEOUT_SECONDS: int | None = None  # the deployed ones: see the docstring
DEFAULT_QUEUE_CONCURRENCY = 2  # concurrent batches per queue: a job keeps a core busy for minutes
# As long as a Lambda role's session token (~1,200 characters, with "+" and "/"), so that presigned URLs are as
# long as in AWS.
FAKE_SESSION_TOKEN = "IQoJb3JpZ2luX2VjE" + base64.b64encode(bytes(range(256)) * 4).decode()[: 1200 - 17]
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": FAKE_SESSION_TOKEN,
    "AWS_SECURITY_TOKEN": FAKE_SESSION_TOKEN,
}
# A presigned URL dies with the session that signed it; a Lambda role's session lasts about an hour.
DEFAULT_S3_SESSION_LIFETIME_SECONDS = 3600
POWERTOOLS = {
    "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
}
STARTUP_TIMEOUT_SECONDS = 10
STOP_TIMEOUT_SECONDS = 5

T = TypeVar("T")

# moto's backends and os.environ belong to the whole process, so only one stack may run in it at a time.
_running_lock = threading.Lock()
_running: LocalStack | None = None


class LocalStack:
    """The service on moto, in this process.

    :param host, port: where the API listens; port 0 picks a free port (see ``url``).
    :param moto_port: the moto server's port; 0 picks a free one.
    :param state_file: where to write ``url``, ``moto_endpoint``, ``api_key``, ``region`` and ``env`` as JSON
        for other processes (removed on stop); None writes nothing.
    :param visibility_timeout_seconds: one visibility timeout for every queue instead of the deployed ones
        (None, the default: 6x the consumer's timeout, as the CDK stack sets them). Workers do not rely on it:
        they hide their message for two leases before claiming and heartbeat it, so a crashed worker's job
        comes back within minutes in both places.
    :param queue_concurrency: concurrent batches per queue name (default 2; 0: no poller, the mapping disabled);
        dead-letter queues get one.
    :param handlers: function name -> handler string, replacing the declared handlers (for tests).
    :param run_services: run the wiring's container services (the long-jobs consumer) as subprocesses, as many
        as the deployed scaling policy gives for their queue's backlog (``infra/local/services.py``).
    :param log_level: uvicorn's log level; "info" also logs each request.
    :param allow_loopback_webhooks: let webhooks go to ``http://127.0.0.1`` (a receiver on the developer's
        machine), which the SSRF guard refuses in AWS (``WEBHOOK_ALLOW_LOOPBACK_HTTP``). On by default here.
    :param webhook_retry_delays: seconds before each retry of a failed webhook delivery; None keeps the
        deployed schedule (5 s, 5 min, 30 min, … about three days in all).
    :param s3_session_lifetime_seconds: how long after its signing a presigned URL's session expires
        (infra/local/strict_s3.py checks every S3 request as S3 would).
    :param clock: the strict S3's clock (tests move it forward to expire URLs instead of waiting).
    :param account_concurrency: the account's unreserved Lambda concurrency; an invocation beyond it is
        throttled (None: unlimited). Functions with reserved concurrency in the wiring have their own pool.
    :param cold_start_seconds: the init time of each new execution environment (API Gateway's 29 s include it).
    :param function_timeouts: function name -> seconds, replacing declared timeouts (for tests).
    :param sandboxed_functions: functions whose execution environments are child processes in process groups of
        their own (``infra.local.sandbox``) instead of threads of this process: a test can SIGKILL one mid-
        invocation, ffmpeg included, as a Lambda sandbox dies on a timeout or out of memory.
    :param custom_domain: serve the API as behind a custom domain's base-path mapping (only under ``/v1``,
        with ``/v1`` kept in the event's ``path``).
    :param websocket_limits: the WebSocket API's message limit and idle / maximum connection timers (API
        Gateway's 128 KB, 10 min and 2 h by default; tests shorten them).
    :param response_streaming: API Gateway's limits on streamed responses (tests shorten them): the events
        route streams, as the CDK stack deploys it by default; None serves it as long polls (the CDK prop
        ``sse_transport="long_poll"``).
    :param stale_read_seconds: eventually consistent DynamoDB reads (and index queries) see the data as it was
        this long ago (``infra.local.atomic_dynamodb``); 0, the default, reads the latest.
    :param fair_queues: standard queues deliver as SQS fair queues do (``infra.local.fair_sqs``): a quiet
        tenant's messages before a noisy tenant's backlog. False: arrival order (moto's own), to compare.

    ``start()`` changes ``os.environ`` of this process (credentials, region, endpoint, resource names: see
    ``env``) because handlers read their settings from it; ``stop()`` restores it. Only one stack can run in a
    process at a time.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        moto_port: int = 0,
        state_file: str | Path | None = None,
        visibility_timeout_seconds: int | None = DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
        queue_concurrency: Mapping[str, int] | None = None,
        handlers: Mapping[str, str] | None = None,
        log_level: str = "warning",
        run_services: bool = True,
        allow_loopback_webhooks: bool = True,
        webhook_retry_delays: Sequence[float] | None = None,
        authorizer_cache_seconds: float = wiring.AUTHORIZER_CACHE_SECONDS,
        s3_session_lifetime_seconds: float = DEFAULT_S3_SESSION_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
        account_concurrency: int | None = None,
        cold_start_seconds: float = 0.0,
        function_timeouts: Mapping[str, float] | None = None,
        sandboxed_functions: Collection[str] = (),
        custom_domain: bool = False,
        websocket_limits: ConnectionLimits | None = None,
        stale_read_seconds: float = 0.0,
        fair_queues: bool = True,
        response_streaming: wiring.ResponseStreaming | None = wiring.RESPONSE_STREAMING,
    ):
        unknown = set(queue_concurrency or {}) - set(wiring.QUEUES)
        if unknown:
            raise ValueError(f"concurrency for unknown queues: {sorted(unknown)}")
        self._host = host
        self._authorizer_cache_seconds = authorizer_cache_seconds
        self._port = port
        self._moto_port = moto_port
        self._state_file = Path(state_file) if state_file is not None else None
        self._visibility_timeout = visibility_timeout_seconds
        self._queue_concurrency = dict(queue_concurrency or {})
        self._handlers = dict(handlers or {})
        self._account_concurrency = account_concurrency
        self._cold_start_seconds = cold_start_seconds
        self._function_timeouts = dict(function_timeouts or {})
        self._sandboxed_functions = tuple(sandboxed_functions)
        self._custom_domain = custom_domain
        self._websocket_limits = websocket_limits
        self._stale_read_seconds = stale_read_seconds
        self._fair_queues = fair_queues
        self._response_streaming = response_streaming
        self._log_level = log_level
        self._services = ServiceTasks(run_services)
        self._notification_env = {settings.WEBHOOK_ALLOW_LOOPBACK_HTTP: str(allow_loopback_webhooks).lower()}
        if webhook_retry_delays is not None:
            self._notification_env[settings.WEBHOOK_RETRY_DELAYS] = ",".join(str(d) for d in webhook_retry_delays)

        self._s3_session_lifetime = s3_session_lifetime_seconds
        self._clock = clock
        self._region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
        self._saved_env: dict[str, str | None] = {}
        self._env: dict[str, str] = {}
        self._stopping = threading.Event()
        self._moto: ThreadedMotoServer | None = None
        self._moto_endpoint: str | None = None
        self._strict_s3: StrictS3Server | None = None
        self._functions: Functions | None = None
        self._gateway: LocalGateway | None = None
        self._resources: Resources | None = None
        self._pollers: list[threading.Thread] = []
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self._url: str | None = None
        self._api_key: str | None = None
        self._usage_plans: UsagePlans | None = None
        self._state_written = False

    # --- public -----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API's base URL, e.g. ``http://127.0.0.1:8080`` (also served under the stage prefix ``/v1``)."""
        return _started(self._url)

    @property
    def api_key(self) -> str:
        """A key of the ``dev`` tenant, created at start."""
        return _started(self._api_key)

    @property
    def moto_endpoint(self) -> str:
        return _started(self._moto_endpoint)

    @property
    def s3_endpoint(self) -> str:
        """Where the functions' S3 calls and presigned URLs go: moto's S3 behind the strict checks."""
        return _started(self._strict_s3).endpoint

    @property
    def region(self) -> str:
        return self._region

    @property
    def gateway(self) -> LocalGateway:
        return _started(self._gateway)

    @property
    def functions(self) -> Functions:
        """The functions as invoked by the gateway and the pollers: ``errors()`` counts their function errors."""
        return _started(self._functions)

    @property
    def resources(self) -> Resources:
        return _started(self._resources)

    @property
    def env(self) -> dict[str, str]:
        """Every variable the stack set: another process with these reaches the same resources."""
        return dict(self._env)

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's moto server, independent of ``os.environ``."""
        session = boto3.session.Session(
            region_name=self._region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )
        # Any service by name (tests ask for several); boto3's typed overloads need a literal name.
        make_client: Callable[..., Any] = session.client
        return make_client(service, endpoint_url=self.moto_endpoint, config=Config(retries={"mode": "standard"}))

    def start(self) -> Self:
        global _running
        with _running_lock:
            if _running is not None:
                raise RuntimeError("another LocalStack is running in this process; stop it first")
            _running = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving and polling, then the moto server; restore the environment. Safe to call twice."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(STOP_TIMEOUT_SECONDS)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for poller in self._pollers:
            poller.join(max(0.0, deadline - time.monotonic()))
            if poller.is_alive():  # a handler still running (a long job): it is a daemon thread, left behind
                log.warning("%s is still running a handler; not waiting for it", poller.name)
        self._services.stop(STOP_TIMEOUT_SECONDS)
        if self._state_file is not None and self._state_written:
            self._state_file.unlink(missing_ok=True)
            self._state_written = False
        if self._functions is not None:
            self._functions.unload()
        if self._strict_s3 is not None:
            self._strict_s3.stop()
            self._strict_s3 = None
        if self._moto is not None:
            try:
                _reset_moto(self._moto_endpoint)  # moto's backends are process-wide: leave none of our state behind
            except OSError:
                log.warning("could not reset moto's state", exc_info=True)
            self._moto.stop()
            self._moto = None
        self._functions = None
        self._restore_env()
        configure_dynamodb()  # the emulation is process-wide: back to its defaults
        configure_sqs_fairness()
        aws.reset_clients()
        self._server = self._server_thread = None
        self._pollers = []
        global _running
        with _running_lock:
            if _running is self:
                _running = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- start-up ---------------------------------------------------------------------------------------

    def _start(self) -> None:
        self._stopping.clear()
        self._set_env(
            {
                **FAKE_CREDENTIALS,
                "AWS_DEFAULT_REGION": self._region,
                "AWS_REGION": self._region,
                # Without it, boto3 would try to put an account id in DynamoDB endpoints.
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                **POWERTOOLS,
            }
        )
        # A profile or per-service endpoint from the user's shell must not send anything past moto.
        self._unset_env([name for name in os.environ if name == "AWS_PROFILE" or name.startswith("AWS_ENDPOINT_URL_")])

        werkzeug = logging.getLogger("werkzeug")
        if werkzeug.level == logging.NOTSET:  # else moto's server prints a line for every AWS call
            werkzeug.setLevel(logging.WARNING)
        make_dynamodb_atomic()  # concurrent handlers rely on conditional writes being atomic
        make_sqs_visibility_strict()  # the 12 h visibility cap counted from the receive
        make_sqs_fair()  # messages of a quiet tenant before a noisy tenant's backlog
        configure_sqs_fairness(fair=self._fair_queues)
        configure_dynamodb(stale_read_seconds=self._stale_read_seconds)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self._moto_port, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self._moto_endpoint = f"http://{host}:{port}"
        _reset_moto(self._moto_endpoint)  # a previous stack in this process may have left resources behind
        credentials = SigningCredentials(
            FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"], FAKE_SESSION_TOKEN
        )
        self._strict_s3 = StrictS3Server(
            lambda s3: StrictS3(
                s3,
                credentials=credentials,
                region=self._region,
                session_lifetime_seconds=self._s3_session_lifetime,
                clock=self._clock,
            )
        ).start()
        self._set_env({"AWS_ENDPOINT_URL": self._moto_endpoint, "AWS_ENDPOINT_URL_S3": self._strict_s3.endpoint})
        aws.reset_clients()

        self._resources = create_resources(self.client, self._region, self._visibility_timeout)
        self._set_env(self._resources.environment())
        if self._response_streaming is not None:  # the streaming handler's settings, as the CDK stack sets them
            self._set_env(self._response_streaming.settings())

        usage_plans = self._usage_plans = self._create_usage_plan()
        self._api_key = self.create_key(DEV_TENANT)

        self._functions = Functions(
            self._region,
            DEFAULT_ACCOUNT_ID,
            self._handlers,
            account_concurrency=self._account_concurrency,
            cold_start_seconds=self._cold_start_seconds,
            timeouts=self._function_timeouts,
            sandboxed=self._sandboxed_functions,
        )
        self._start_pollers(self._functions, self._resources)
        # The web page and the API docs in front of the API (the page reads its dev key from /config.json).
        # Only loopback host names: no page can reach it by DNS rebinding.
        self._gateway = LocalGateway(
            self._functions,
            self._region,
            DEFAULT_ACCOUNT_ID,
            authorizer_cache_seconds=self._authorizer_cache_seconds,
            custom_domain=self._custom_domain,
            websocket_limits=self._websocket_limits,
            usage_plans=UsagePlanThrottle(usage_plans),
            response_streaming=self._response_streaming,
        )
        self._serve(LoopbackHostOnly(StaticSite(self._gateway, config={"api_key": self._api_key}), also=self._host))
        # Known once the port is: the WebSocket API is served by the gateway (infra/local/websocket.py).
        websocket_url = "ws" + self.url.removeprefix("http") + WEBSOCKET_PATH
        self._set_env({**self._notification_env, settings.WEBSOCKET_URL: websocket_url})
        # Once the environment is complete: the tasks inherit it.
        queue_urls = {name: ref.url for name, ref in self._resources.queues.items()}
        self._services.start(os.environ, self.client("sqs"), queue_urls)
        self._write_state()

    def create_key(self, tenant: str) -> str:
        """A new API key of ``tenant``, registered as ``videojobs admin create-key`` does it: in the api_keys
        table, and the tenant's API Gateway key in its usage plan (without one, the gateway answers 403)."""
        key = new_api_key()
        tables = _started(self._resources).tables
        ApiKeyStore(self.client("dynamodb"), tables["api_keys"]).add(hash_api_key(key), tenant, key_prefix(key))
        limits = TenantLimitStore(self.client("dynamodb"), tables["tenants"], TenantLimits.settings_defaults())
        _started(self._usage_plans).apply(tenant, limits.limits_for(tenant))
        return key

    def _create_usage_plan(self) -> UsagePlans:
        """The stack's usage plan in moto, as the CDK stack declares it (``TenantUsagePlan``), with the ids the
        admin CLI reads (``REST_API_ID``, ``USAGE_PLAN_ID``) in the environment."""
        defaults = TenantLimits.settings_defaults()
        apigateway = self.client("apigateway")
        plan = apigateway.create_usage_plan(
            name="videojobs-tenants",
            apiStages=[{"apiId": GATEWAY_API_ID, "stage": wiring.API_STAGE}],
            throttle={"rateLimit": defaults.requests_per_second, "burstLimit": defaults.burst},
        )
        self._set_env({settings.REST_API_ID: GATEWAY_API_ID, settings.USAGE_PLAN_ID: plan["id"]})
        return UsagePlans(apigateway, GATEWAY_API_ID, wiring.API_STAGE, plan["id"], defaults)

    def _start_pollers(self, functions: Functions, resources: Resources) -> None:
        sqs, streams = self.client("sqs"), self.client("dynamodbstreams")
        for subscription in sqs_subscriptions():
            created = resources.queues[subscription.source.name]
            if isinstance(subscription.source, wiring.QueueRef):
                url, arn = created.url, created.arn
                concurrency = self._queue_concurrency.get(subscription.source.name, DEFAULT_QUEUE_CONCURRENCY)
                # One poller per concurrent invocation: never more than the event source's max_concurrency.
                declared = wiring.QUEUES[subscription.source.name].max_concurrency
                concurrency = concurrency if declared is None else min(concurrency, declared)
            else:
                url, arn, concurrency = created.dlq_url, created.dlq_arn, 1
            for index in range(concurrency):
                self._pollers.append(
                    SqsPoller(
                        sqs=sqs,
                        functions=functions,
                        function=subscription.function,
                        queue_url=url,
                        queue_arn=arn,
                        batch_size=subscription.batch_size,
                        region=self._region,
                        stop=self._stopping,
                        name=f"sqs:{arn.rsplit(':', 1)[-1]}->{subscription.function}#{index}",
                    )
                )
        for trigger in wiring.STREAM_TRIGGERS:
            self._pollers.append(
                StreamPoller(
                    streams=streams,
                    functions=functions,
                    trigger=trigger,
                    stream_arn=resources.stream_arns[trigger.table],
                    region=self._region,
                    stop=self._stopping,
                    name=f"stream:{trigger.table}->{trigger.function}",
                )
            )
        for poller in self._pollers:
            poller.start()

    def _serve(self, app: ASGIApp) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)  # here, so that a busy port fails start() instead of a background thread
        port = sock.getsockname()[1]
        host = f"[{self._host}]" if family == socket.AF_INET6 else self._host
        self._url = f"http://{host}:{port}"
        config = uvicorn.Config(app, lifespan="off", log_level=self._log_level, timeout_graceful_shutdown=2)
        for name in ("uvicorn.access", "uvicorn.error"):  # after uvicorn.Config: it configures its loggers
            logging.getLogger(name).addFilter(REDACT_SECRETS)
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
        )
        self._server_thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._server_thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server did not start on {self._url}")
            time.sleep(0.01)

    def _write_state(self) -> None:
        if self._state_file is None:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        self._state_file.write_text(
            json.dumps(
                {
                    "url": self.url,
                    "moto_endpoint": self.moto_endpoint,
                    "api_key": self.api_key,
                    "region": self._region,
                    "env": self.env,
                },
                indent=2,
            )
            + "\n"
        )
        self._state_written = True

    # --- environment ------------------------------------------------------------------------------------

    def _set_env(self, values: Mapping[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
            self._env[name] = value

    def _unset_env(self, names: list[str]) -> None:
        for name in names:
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ.pop(name, None)

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        self._env.clear()


@dataclass(frozen=True)
class SqsSubscription:
    """One of Lambda's SQS event source mappings, as the local stack polls it."""

    function: str
    source: wiring.QueueRef | wiring.DeadLetterQueueRef
    batch_size: int


def sqs_subscriptions() -> list[SqsSubscription]:
    """The functions fed by a queue or a dead-letter queue, with the batch sizes the wiring declares."""
    subscriptions = []
    for name, queue in wiring.QUEUES.items():
        if queue.consumer in wiring.FUNCTIONS:  # a service's queue is polled by its tasks (ServiceTasks)
            subscriptions.append(SqsSubscription(queue.consumer, wiring.QueueRef(name), queue.batch_size))
        if queue.dead_letter_consumer:
            subscriptions.append(
                SqsSubscription(
                    queue.dead_letter_consumer, wiring.DeadLetterQueueRef(name), queue.dead_letter_batch_size
                )
            )
    return subscriptions


def _started(value: T | None) -> T:
    if value is None:
        raise RuntimeError("the local stack is not started")
    return value


def _reset_moto(endpoint: str | None) -> None:
    if endpoint is None:
        return
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
