"""``videojobs`` command line: submit and follow media jobs, download results, receive webhooks; and
``videojobs admin create-key --tenant NAME`` (prints a new API key), ``admin list-keys --tenant NAME`` and
``admin revoke-key KEY_ID``; ``admin set-limits --tenant NAME [--max-active-jobs N] …`` and
``admin show-limits --tenant NAME`` (the tenant's limits in force, as JSON).

Where the API is and which key to use: ``--url``/``--api-key``, else ``VIDEOJOBS_URL``/``VIDEOJOBS_API_KEY``, else
the config file (``--config``, ``VIDEOJOBS_CONFIG`` or ``~/.config/videojobs/config.toml`` with ``url = "…"`` and
``api_key = "…"``), else the local stack's ``.local/stack.json`` when ``make run`` is up.

Exit codes: 0 done; 1 the job failed (or ``revoke-key`` knows no such key); 2 bad usage or configuration; 3 the
API refused the request (its error code is printed); 4 the API or storage could not be reached, or answered 5xx;
5 the job was cancelled; 6 ``--timeout`` ran out; 130 interrupted. ``--json`` prints machine-readable results on
stdout; progress always goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from videojobs.api_keys import ApiKeyStore
    from videojobs.sdk import Client, Job
    from videojobs.tenant_limits import TenantLimits, TenantLimitStore

LOCAL_STATE_FILE = Path(".local/stack.json")
DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV, KEY_ENV, CONFIG_ENV, SECRET_ENV = (
    "VIDEOJOBS_URL",
    "VIDEOJOBS_API_KEY",
    "VIDEOJOBS_CONFIG",
    "VIDEOJOBS_WEBHOOK_SECRET",
)

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_API_ERROR = 3
EXIT_UNREACHABLE = 4
EXIT_JOB_CANCELLED = 5
EXIT_TIMEOUT = 6
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad flags or configuration: exit code 2."""


# --- admin ---------------------------------------------------------------------------------------------------


def _use_local_stack(state_file: Path) -> None:
    """Point boto3 at the running local stack, unless the environment already says where to go."""
    if not state_file.exists():
        return
    state = json.loads(state_file.read_text())
    os.environ.setdefault("AWS_ENDPOINT_URL", state["moto_endpoint"])
    os.environ.setdefault("AWS_DEFAULT_REGION", state.get("region", "us-east-1"))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    for name, value in state.get("env", {}).items():
        os.environ.setdefault(name, value)


def _api_keys() -> ApiKeyStore:
    from videojobs.api_keys import ApiKeyStore
    from videojobs.aws import client
    from videojobs.settings import AdminSettings

    return ApiKeyStore(client("dynamodb"), AdminSettings.from_env().api_keys_table)


def _tenant_limits() -> TenantLimitStore:
    from videojobs.aws import client
    from videojobs.settings import AdminSettings
    from videojobs.tenant_limits import TenantLimits, TenantLimitStore

    settings = AdminSettings.from_env()
    return TenantLimitStore(client("dynamodb"), settings.tenants_table, TenantLimits.defaults(settings))


def _limits(args: argparse.Namespace) -> int:
    """``admin set-limits`` and ``show-limits``: print the tenant's limits in force as one JSON object."""
    from pydantic import ValidationError

    from videojobs.tenant_limits import LIMIT_NAMES

    store = _tenant_limits()
    if args.admin_command == "show-limits":
        limits = store.limits_for(args.tenant)
    else:
        try:
            limits = store.set_limits(args.tenant, **{name: getattr(args, name) for name in LIMIT_NAMES})
        except ValidationError as error:
            for problem in error.errors():
                field = "--" + "-".join(str(part) for part in problem["loc"]).replace("_", "-")
                print(f"videojobs: {field}: {problem['msg']}", file=sys.stderr)
            return EXIT_USAGE
        _apply_request_rate(args.tenant, limits)
    _print_json(limits.model_dump(mode="json"))
    return EXIT_OK


def _apply_request_rate(tenant: str, limits: TenantLimits) -> None:
    """Put the tenant's API Gateway key in the usage plan with its rate (``videojobs.usage_plans``)."""
    import boto3

    from videojobs.settings import AdminSettings
    from videojobs.tenant_limits import TenantLimits
    from videojobs.usage_plans import UsagePlans
    from videojobs.wiring import API_STAGE

    settings = AdminSettings.from_env()
    if settings.rest_api_id is None or settings.usage_plan_id is None:
        print(
            "videojobs: REST_API_ID and USAGE_PLAN_ID are not set (the stack outputs RestApiId and "
            "TenantUsagePlanId): the tenant's request rate was not applied",
            file=sys.stderr,
        )
        return
    defaults = TenantLimits.defaults(settings)
    plans = UsagePlans(boto3.client("apigateway"), settings.rest_api_id, API_STAGE, settings.usage_plan_id, defaults)
    plans.apply(tenant, limits)


def create_key(tenant: str) -> str:
    from videojobs.ids import hash_api_key, key_prefix, new_api_key

    key = new_api_key()
    _api_keys().add(hash_api_key(key), tenant, key_prefix(key))
    return key


def _admin(args: argparse.Namespace) -> int:
    """``admin create-key``, ``list-keys`` and ``revoke-key``, straight on the api_keys table."""
    from dataclasses import asdict

    from videojobs.ids import InvalidTenantName, check_tenant_name

    tenant = getattr(args, "tenant", None)
    if tenant is not None:
        try:
            check_tenant_name(tenant)
        except InvalidTenantName as error:
            print(f"videojobs: {error}", file=sys.stderr)
            return EXIT_USAGE
    _use_local_stack(args.local_state)
    if args.admin_command in ("set-limits", "show-limits"):
        return _limits(args)
    if args.admin_command == "sync-rates":
        # Tenants whose keys predate usage plans (or whose plan was lost) get 403 from API Gateway until their
        # key is in a plan: put every tenant's key in the plan of its rate.
        limits = _tenant_limits()
        for name in sorted(_api_keys().tenants()):
            _apply_request_rate(name, limits.limits_for(name))
            print(f"{name}: in the usage plan of its rate", file=sys.stderr)
    elif args.admin_command == "create-key":
        print(create_key(args.tenant), flush=True)
        _apply_request_rate(args.tenant, _tenant_limits().limits_for(args.tenant))
        print(f"created an API key for tenant {tenant!r}; it is shown only once", file=sys.stderr)
    elif args.admin_command == "list-keys":
        _print_json([asdict(key) for key in _api_keys().list_for_tenant(args.tenant)])
    else:
        revoked = _api_keys().revoke(args.key_id)
        if revoked is None:
            print(f"videojobs: no API key has the id {args.key_id!r}", file=sys.stderr)
            return EXIT_JOB_FAILED
        print(f"revoked {revoked.id}; API Gateway may still accept it for its authorizer cache time", file=sys.stderr)
    return EXIT_OK


# --- configuration ---------------------------------------------------------------------------------------------


def default_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "videojobs" / "config.toml"


def resolve_connection(args: argparse.Namespace, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """The API's URL and key, from flags, the environment, the config file or the local stack, in that order."""
    environ = dict(os.environ) if environ is None else environ
    named = args.config or environ.get(CONFIG_ENV)
    path = Path(named) if named else default_config_file()
    config: dict[str, Any] = {}
    if path.exists():
        try:
            config = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise UsageError(f"{path} is not valid TOML: {error}") from error
    elif named:
        raise UsageError(f"config file {path} does not exist")
    url = args.url or environ.get(URL_ENV) or config.get("url")
    key = args.api_key or environ.get(KEY_ENV) or config.get("api_key")
    if LOCAL_STATE_FILE.exists() and not (url and key):
        local = json.loads(LOCAL_STATE_FILE.read_text())
        if not url or url.rstrip("/") == local["url"]:
            url, key = local["url"], key or local["api_key"]
    if not key:
        raise UsageError(f"no API key: pass --api-key, set {KEY_ENV}, or put api_key in {path}")
    return str(url or DEFAULT_URL), str(key)


# --- what the user sees ----------------------------------------------------------------------------------------


class Display:
    """Progress on stderr: rich progress bars on a terminal, one plain line per change elsewhere (logs, CI)."""

    def __init__(self, console: Console):
        self.console = console
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._last_step: dict[str, str] = {}
        self._lock = threading.Lock()  # multipart uploads report from several threads

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._progress = Progress(
                TextColumn("{task.description:<8}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[detail]}"),
                console=self.console,
            )
            self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def upload(self, sent: int, total: int) -> None:
        detail = f"{_size(sent)} / {_size(total)}"
        self._show("upload", sent, total, detail, f"upload {detail} ({100 * sent // max(total, 1)}%)", every=10)

    def job(self, job: Job) -> None:
        parts = [job.status] + ([job.stage] if job.stage else [])
        if job.eta_seconds is not None and not job.finished:
            parts.append(f"about {round(job.eta_seconds)} s left")
        detail = " · ".join(parts)
        self._show("job", job.progress, 100, detail, f"{job.id} {job.progress}% {detail}")

    def _show(self, name: str, done: int, total: int, detail: str, line: str, every: int = 0) -> None:
        with self._lock:
            self._show_now(name, done, total, detail, line, every)

    def _show_now(self, name: str, done: int, total: int, detail: str, line: str, every: int) -> None:
        if self._progress is not None:
            if name not in self._tasks:
                self._tasks[name] = self._progress.add_task(name, total=total, detail="")
            self._progress.update(self._tasks[name], completed=done, total=total, detail=detail)
            return
        # Plain output: one line per change (uploads: per `every` percent), so logs stay short.
        step = str(100 * done // max(total, 1) // every) if every else line
        if self._last_step.get(name) != step:
            self._last_step[name] = step
            print(line, file=sys.stderr, flush=True)


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), flush=True)


def _job_urls(job: Job) -> list[str]:
    return [url for output in job.outputs for url in ([output.url] if output.url else []) + list(output.urls or [])]


def _finish(job: Job, args: argparse.Namespace) -> int:
    """Report a finished job and the exit code it deserves."""
    if args.json:
        _print_json(job.model_dump(mode="json"))
    else:
        print(job.id)
        for url in _job_urls(job):
            print(url)
    if job.status == "completed":
        return EXIT_OK
    if job.status == "cancelled":
        print(f"job {job.id} was cancelled", file=sys.stderr)
        return EXIT_JOB_CANCELLED
    error = job.error
    print(
        f"job {job.id} failed: {error.code}: {error.message}" if error else f"job {job.id} {job.status}",
        file=sys.stderr,
    )
    return EXIT_JOB_FAILED


# --- commands --------------------------------------------------------------------------------------------------


def cmd_submit(client: Client, args: argparse.Namespace, display: Display) -> int:
    from videojobs.sdk import parse_output

    try:
        outputs = [parse_output(spec) for spec in args.output]
        metadata = json.loads(args.metadata) if args.metadata else None
    except ValueError as error:
        raise UsageError(str(error)) from error
    if not Path(args.file).is_file():
        raise UsageError(f"{args.file} is not a file")
    with display:
        upload = client.upload(args.file, content_type=args.content_type, on_progress=display.upload)
        job = client.submit(
            upload,
            outputs,
            webhook_url=args.webhook,
            webhook_events=args.webhook_event or None,
            metadata=metadata,
            idempotency_key=args.idempotency_key,
        )
        display.job(job)
        if args.wait:
            job = client.wait(job.id, on_update=display.job, timeout=args.timeout)
    if not args.wait:
        if args.json:
            _print_json(job.model_dump(mode="json"))
        else:
            print(job.id)
        return EXIT_OK
    return _finish(job, args)


def cmd_watch(client: Client, args: argparse.Namespace, display: Display) -> int:
    with display:
        job = client.wait(args.job_id, on_update=display.job, timeout=args.timeout)
    return _finish(job, args)


def cmd_status(client: Client, args: argparse.Namespace, display: Display) -> int:
    job = client.get(args.job_id)
    if args.json:
        _print_json(job.model_dump(mode="json"))
        return EXIT_OK
    print(f"{job.id}  {job.status}  {job.progress}%" + (f"  {job.stage}" if job.stage else ""))
    if job.error:
        print(f"error: {job.error.code}: {job.error.message}")
    for output in job.outputs:
        print(f"  {output.type}: {output.url or ', '.join(output.urls or []) or '(not ready)'}")
    return EXIT_OK


def cmd_list(client: Client, args: argparse.Namespace, display: Display) -> int:
    jobs = []
    for job in client.list(status=args.status, page_size=min(args.limit, 100)):
        jobs.append(job)
        if len(jobs) >= args.limit:
            break
    if args.json:
        _print_json([job.model_dump(mode="json") for job in jobs])
        return EXIT_OK
    from rich.table import Table

    table = Table("id", "status", "progress", "created", "outputs", box=None)
    for job in jobs:
        table.add_row(
            job.id, job.status, f"{job.progress}%", job.created_at or "", ", ".join(o.type for o in job.outputs)
        )
    _stdout_console().print(table)
    return EXIT_OK


def cmd_cancel(client: Client, args: argparse.Namespace, display: Display) -> int:
    job = client.cancel(args.job_id)
    if args.json:
        _print_json(job.model_dump(mode="json"))
    else:
        print(f"{job.id} {job.status}")
    return EXIT_OK


def cmd_download(client: Client, args: argparse.Namespace, display: Display) -> int:
    job = client.get(args.job_id)
    if job.status != "completed":
        print(f"job {job.id} is {job.status}: nothing to download", file=sys.stderr)
        return EXIT_JOB_FAILED if job.finished else EXIT_USAGE
    files = client.download(job, args.dir)
    if args.json:
        _print_json([str(path) for path in files])
    else:
        for path in files:
            print(path)
    return EXIT_OK


def cmd_webhooks_listen(client: Client | None, args: argparse.Namespace, display: Display) -> int:
    from videojobs.sdk.listener import listen

    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        if client is None:
            raise UsageError(f"no webhook secret: pass --secret or set {SECRET_ENV}")
        secret = client.webhook_secret()
    return listen(args.host, args.port, secret, as_json=args.json, count=args.count)


def _events_list(value: str | None) -> list[str] | None:
    """``job.completed,job.failed`` -> a list; None when not given."""
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def cmd_webhooks_create(client: Client, args: argparse.Namespace, display: Display) -> int:
    endpoint = client.webhook_endpoints.create(
        args.endpoint_url, events=_events_list(args.events), description=args.description
    )
    if args.json:
        _print_json(endpoint.model_dump(mode="json"))
    else:
        print(endpoint.id)
        print(f"secret: {endpoint.secret}")  # shown once here; `GET /webhook-endpoints/{id}/secret` shows it again
    return EXIT_OK


def cmd_webhooks_list(client: Client, args: argparse.Namespace, display: Display) -> int:
    endpoints = client.webhook_endpoints.list()
    if args.json:
        _print_json([endpoint.model_dump(mode="json", exclude_none=True) for endpoint in endpoints])
        return EXIT_OK
    from rich.table import Table

    table = Table("id", "url", "events", "state", box=None)
    for endpoint in endpoints:
        state = f"disabled ({endpoint.disabled_reason})" if endpoint.disabled else "enabled"
        table.add_row(endpoint.id, endpoint.url, ",".join(endpoint.events) or "all", state)
    _stdout_console().print(table)
    return EXIT_OK


def cmd_webhooks_replay(client: Client, args: argparse.Namespace, display: Display) -> int:
    replayed = client.webhook_endpoints.replay(
        args.endpoint_id, args.since, until=args.until, events=_events_list(args.events)
    )
    if args.json:
        _print_json({"replayed": replayed})
    else:
        print(f"{replayed} events replayed")
    return EXIT_OK


def _stdout_console() -> Console:
    from rich.console import Console

    return Console()


# --- parsing and running ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videojobs",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the API's base URL (env {URL_ENV})")
    common.add_argument("--api-key", help=f"your API key (env {KEY_ENV})")
    common.add_argument("--config", help=f"config file (env {CONFIG_ENV}; default {default_config_file()})")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    submit = commands.add_parser("submit", parents=[common], help="upload a file and submit a job")
    submit.add_argument("file")
    submit.add_argument(
        "-o",
        "--output",
        action="append",
        required=True,
        metavar="SPEC",
        help="mp4:HEIGHT[:QUALITY], hls:H1,H2,..., thumbnails:COUNT[:WIDTH], audio:mp3|aac, or JSON; "
        "repeat for several",
    )
    submit.add_argument("--webhook", metavar="URL", help="POST signed job events to this https URL")
    submit.add_argument("--webhook-event", action="append", metavar="TYPE", help="e.g. job.progress; repeatable")
    submit.add_argument("--metadata", metavar="JSON", help="a JSON object kept with the job")
    submit.add_argument("--content-type", help="default: guessed from the file name")
    submit.add_argument("--idempotency-key", help="resubmitting with the same key returns the same job")
    submit.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    submit.add_argument("--timeout", type=float, metavar="SECONDS", help="with --wait: give up after this long")
    submit.set_defaults(run=cmd_submit)

    for name, run, text in [
        ("status", cmd_status, "show a job"),
        ("watch", cmd_watch, "follow a job to its end"),
        ("cancel", cmd_cancel, "cancel a job"),
    ]:
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("job_id")
        if name == "watch":
            command.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
        command.set_defaults(run=run)

    listing = commands.add_parser("list", parents=[common], help="list your jobs, newest first")
    listing.add_argument("--status", help="only jobs in this status")
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default %(default)s)")
    listing.set_defaults(run=cmd_list)

    download = commands.add_parser("download", parents=[common], help="save a completed job's outputs")
    download.add_argument("job_id")
    download.add_argument("--dir", default=".", help="where to save them (default: the current directory)")
    download.set_defaults(run=cmd_download)

    webhooks = commands.add_parser("webhooks", help="webhook tools").add_subparsers(
        dest="webhooks_command", required=True
    )
    listen = webhooks.add_parser("listen", parents=[common], help="receive webhooks locally, verify and print them")
    listen.add_argument("--port", type=int, default=8787, help="default %(default)s")
    listen.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    listen.add_argument("--secret", help=f"the whsec_ signing secret (env {SECRET_ENV}; default: asked from the API)")
    listen.add_argument("--count", type=int, help="exit after this many verified events")
    listen.set_defaults(run=cmd_webhooks_listen)
    create_endpoint = webhooks.add_parser("create", parents=[common], help="add a webhook endpoint; prints its secret")
    create_endpoint.add_argument("endpoint_url", metavar="URL")
    create_endpoint.add_argument("--events", metavar="TYPES", help="e.g. job.completed,job.failed (default: all)")
    create_endpoint.add_argument("--description")
    create_endpoint.set_defaults(run=cmd_webhooks_create)
    list_endpoints = webhooks.add_parser("list", parents=[common], help="list your webhook endpoints")
    list_endpoints.set_defaults(run=cmd_webhooks_list)
    replay = webhooks.add_parser("replay", parents=[common], help="send an endpoint a window of events again")
    replay.add_argument("endpoint_id")
    replay.add_argument("--since", required=True, metavar="TIME", help="RFC 3339, e.g. 2026-11-30T06:00:00Z")
    replay.add_argument("--until", metavar="TIME", help="default: now")
    replay.add_argument("--events", metavar="TYPES", help="default: the endpoint's own filter")
    replay.set_defaults(run=cmd_webhooks_replay)

    admin = commands.add_parser("admin", help="operator commands").add_subparsers(dest="admin_command", required=True)
    create = admin.add_parser("create-key", help="create an API key for a tenant; prints the key")
    create.add_argument("--tenant", required=True, help="tenant name; keys of one tenant see only its jobs")
    listing = admin.add_parser("list-keys", help="a tenant's keys as JSON (ids and dates, never the keys)")
    listing.add_argument("--tenant", required=True)
    revoke = admin.add_parser("revoke-key", help="revoke a key by its id (from list-keys); exit 1 if unknown")
    revoke.add_argument("key_id")
    set_limits = admin.add_parser(
        "set-limits", help="override a tenant's limits (the others keep the defaults); prints the limits in force"
    )
    set_limits.add_argument("--tenant", required=True)
    for name, kind, text in [
        ("max_active_jobs", int, "jobs processing at once"),
        ("max_pending_jobs", int, "jobs queued or processing"),
        ("max_upload_bytes_per_day", int, "bytes declared by POST /uploads per UTC day"),
        ("requests_per_second", float, "steady request rate"),
        ("burst", int, "requests above the steady rate allowed at once"),
        ("max_open_streams", int, "SSE long polls and WebSocket connections open at once"),
    ]:
        set_limits.add_argument("--" + name.replace("_", "-"), type=kind, metavar="N", help=text)
    show_limits = admin.add_parser("show-limits", help="a tenant's limits in force (defaults included) as JSON")
    show_limits.add_argument("--tenant", required=True)
    sync_rates = admin.add_parser(
        "sync-rates", help="put every tenant's API Gateway key in the usage plan of its rate (after an upgrade)"
    )
    for command in (create, listing, revoke, set_limits, show_limits, sync_rates):
        command.add_argument(
            "--local-state",
            type=Path,
            default=LOCAL_STATE_FILE,
            help="the local stack's state file (default: %(default)s)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "admin":
        return _admin(args)
    try:
        return _run_client_command(args.run, args)
    except UsageError as error:
        print(f"videojobs: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run_client_command(run: Callable[..., int], args: argparse.Namespace) -> int:
    from rich.console import Console

    from videojobs.sdk import ApiError, Client, TransportError, UploadError, WaitTimeout

    # A webhook receiver with its secret given needs no API at all.
    needs_api = not (run is cmd_webhooks_listen and (args.secret or os.environ.get(SECRET_ENV)))
    url, key = resolve_connection(args) if needs_api else (None, None)
    client = Client(url, key) if url and key else None
    try:
        return run(client, args, Display(Console(stderr=True)))
    except ApiError as error:
        print(f"videojobs: {error.code}: {error.message} (HTTP {error.status})", file=sys.stderr)
        if args.json:
            _print_json({"error": {"code": error.code, "message": error.message, "status": error.status}})
        return EXIT_UNREACHABLE if error.status >= 500 else EXIT_API_ERROR
    except (TransportError, UploadError) as error:
        print(f"videojobs: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except WaitTimeout as error:
        print(f"videojobs: gave up waiting: {error}", file=sys.stderr)
        if args.json:
            _print_json(error.job.model_dump(mode="json"))
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        if client is not None:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
