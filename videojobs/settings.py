"""Environment variable names (``infra`` imports them, so they cannot drift) and one settings model per function.

Each model is validated once from ``os.environ`` when a function builds its dependencies: a missing variable
fails the cold start with a clear message instead of the first request that needs it.
"""

from __future__ import annotations

import os
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field

JOBS_TABLE = "JOBS_TABLE"
API_KEYS_TABLE = "API_KEYS_TABLE"
IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
UPLOADS_BUCKET = "UPLOADS_BUCKET"
OUTPUTS_BUCKET = "OUTPUTS_BUCKET"
JOBS_QUEUE_URL = "JOBS_QUEUE_URL"
MAX_UPLOAD_BYTES = "MAX_UPLOAD_BYTES"
UPLOAD_URL_TTL_SECONDS = "UPLOAD_URL_TTL_SECONDS"
DOWNLOAD_URL_TTL_SECONDS = "DOWNLOAD_URL_TTL_SECONDS"
SCRATCH_DIR = "SCRATCH_DIR"

# A single presigned POST is limited to 5 GB by S3; larger files need multipart uploads.
S3_SINGLE_UPLOAD_LIMIT = 5 * 1024**3

Name = Annotated[str, Field(min_length=1)]


class FunctionSettings(BaseModel):
    """Base of every function's settings: validated once from the environment."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Self:
        return cls.model_validate(dict(os.environ if environ is None else environ))


class AuthorizerSettings(FunctionSettings):
    api_keys_table: Name = Field(alias=API_KEYS_TABLE)


class SubmitSettings(FunctionSettings):
    jobs_table: Name = Field(alias=JOBS_TABLE)
    idempotency_table: Name = Field(alias=IDEMPOTENCY_TABLE)
    uploads_bucket: Name = Field(alias=UPLOADS_BUCKET)
    jobs_queue_url: Name = Field(alias=JOBS_QUEUE_URL)
    max_upload_bytes: int = Field(S3_SINGLE_UPLOAD_LIMIT, alias=MAX_UPLOAD_BYTES, gt=0, le=S3_SINGLE_UPLOAD_LIMIT)
    upload_url_ttl_seconds: int = Field(900, alias=UPLOAD_URL_TTL_SECONDS, gt=0, le=7 * 24 * 3600)


class StatusSettings(FunctionSettings):
    jobs_table: Name = Field(alias=JOBS_TABLE)
    outputs_bucket: Name = Field(alias=OUTPUTS_BUCKET)
    download_url_ttl_seconds: int = Field(3600, alias=DOWNLOAD_URL_TTL_SECONDS, gt=0, le=7 * 24 * 3600)


class WorkerSettings(FunctionSettings):
    jobs_table: Name = Field(alias=JOBS_TABLE)
    uploads_bucket: Name = Field(alias=UPLOADS_BUCKET)
    outputs_bucket: Name = Field(alias=OUTPUTS_BUCKET)
    scratch_dir: str = Field("/tmp", alias=SCRATCH_DIR)


class JobsTableSettings(FunctionSettings):
    """For functions that only read or finish jobs: notify and the dead-letter handler."""

    jobs_table: Name = Field(alias=JOBS_TABLE)


class AdminSettings(FunctionSettings):
    api_keys_table: Name = Field(alias=API_KEYS_TABLE)
