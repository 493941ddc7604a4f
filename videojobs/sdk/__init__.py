"""The videojobs Python SDK (``pip install videojobs[client]``): ``from videojobs import Client``."""

from videojobs.sdk.client import Client, EventsUnavailable, verify_webhook
from videojobs.sdk.endpoints import WebhookEndpoint, WebhookEndpoints
from videojobs.sdk.errors import (
    ApiError,
    TransportError,
    UploadError,
    VideoJobsError,
    WaitTimeout,
    WebhookVerificationError,
)
from videojobs.sdk.models import ErrorInfo, Job, JobEvent, Output, Upload, parse_output

__all__ = [
    "ApiError",
    "Client",
    "ErrorInfo",
    "EventsUnavailable",
    "Job",
    "JobEvent",
    "Output",
    "TransportError",
    "Upload",
    "UploadError",
    "VideoJobsError",
    "WaitTimeout",
    "WebhookEndpoint",
    "WebhookEndpoints",
    "WebhookVerificationError",
    "parse_output",
    "verify_webhook",
]
