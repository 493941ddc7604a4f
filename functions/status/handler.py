"""GET /health, GET /jobs and GET /jobs/{id}: read-only views of the caller's jobs."""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from videojobs import api, job_view, snapstart
from videojobs.aws import client
from videojobs.job_store import MAX_PAGE_SIZE, JobStore
from videojobs.models import AccountUsage, Health, JobList, JobResource, JobStatus, Priority
from videojobs.object_store import ObjectStore
from videojobs.observability import logger, traced
from videojobs.service import jobs
from videojobs.settings import StatusSettings
from videojobs.tenant_limits import TenantLimits, TenantLimitStore
from videojobs.usage import MAX_DAYS, UsageLedger

app = api.new_resolver()


@snapstart.before_snapshot  # clients and settings are in the snapshot, not in a cold start
@cache
def get_deps() -> jobs.StatusDeps:
    settings = StatusSettings.from_env()
    return jobs.StatusDeps(
        settings=settings,
        jobs=JobStore(client("dynamodb"), settings.jobs_table),
        objects=ObjectStore(client("s3")),
        ledger=UsageLedger(client("dynamodb"), settings.usage_table),
        limits=TenantLimitStore(client("dynamodb"), settings.tenants_table, TenantLimits.defaults(settings)),
        counters=jobs.tenant_counters(client("dynamodb"), settings.tenants_table),
    )


HEALTH = api.Operation("Health check", HTTPStatus.OK, Health, "The API answers (no key needed).")


@app.get("/health", **HEALTH.route())
def health():
    return HEALTH.answer(Health(status="ok"))


LIST_JOBS = api.Operation(
    "List jobs",
    HTTPStatus.OK,
    JobList,
    "The caller's jobs, newest first. Outputs have no `url`/`urls` here: `GET /jobs/{id}` gives them. "
    "With `status` or `priority`, a page may hold fewer than `limit` jobs (even none) and still have a `next_cursor`: "
    "page on until `next_cursor` is null. A job created a moment ago may not be listed yet.",
)


@app.get("/jobs", **LIST_JOBS.route())
def list_jobs(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    status: Annotated[JobStatus | None, Query()] = None,
    priority: Annotated[Priority | None, Query()] = None,
):
    page = jobs.list_jobs(api.tenant_of(app), limit, cursor, status, get_deps(), priority=priority)
    return LIST_JOBS.answer(page)


GET_JOB = api.Operation(
    "Get a job",
    HTTPStatus.OK,
    JobResource,
    "Output URLs are presigned GETs, made fresh on every read.",
    headers={"Retry-After": "while the job is not finished: seconds to wait before asking again"},
)


@app.get("/jobs/<job_id>", **GET_JOB.route())
def get_job(job_id: Annotated[str, Path(max_length=64)]):
    job = jobs.get_job(job_id, api.tenant_of(app), get_deps(), base_url=api.base_url(app))
    retry_after = job_view.retry_after_seconds(job)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return GET_JOB.answer(job, headers=headers)


ACCOUNT_USAGE = api.Operation(
    "Usage and cost by day",
    HTTPStatus.OK,
    AccountUsage,
    "The caller's jobs and what they used, per UTC day from `from` to `to` (both included, at most "
    f"{MAX_DAYS} days), their totals, the limits in force and the current use against them. Costs are "
    'estimates at list prices (README "What a job costs").',
)
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


@app.get("/account/usage", **ACCOUNT_USAGE.route())
def account_usage(
    first: Annotated[str, Query(alias="from", pattern=DAY_PATTERN, description="The first UTC day, YYYY-MM-DD")],
    last: Annotated[str, Query(alias="to", pattern=DAY_PATTERN, description="The last UTC day, YYYY-MM-DD")],
):
    return ACCOUNT_USAGE.answer(jobs.account_usage(api.tenant_of(app), first, last, get_deps()))


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return api.resolve(app, event, context)
