"""What the SDK raises. Every error the API answers carries its stable ``code``."""

from __future__ import annotations

from typing import Any


class VideoJobsError(Exception):
    """Base of every SDK error."""


class ApiError(VideoJobsError):
    """The API answered an error: ``status`` is the HTTP status, ``code`` the stable error code to branch on."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    @classmethod
    def from_response(cls, status: int, body: Any, headers: dict[str, str]) -> ApiError:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "code" in error:
            return cls(status, str(error["code"]), str(error.get("message", "")), headers)
        return cls(status, "http_error", f"unexpected answer: {str(body)[:200]}", headers)


class TransportError(VideoJobsError):
    """The API or storage could not be reached, or kept failing after retries."""


class UploadError(VideoJobsError):
    """A file could not be uploaded (a part kept failing, or storage refused it)."""


class WaitTimeout(VideoJobsError):
    """``Client.wait`` gave up before the job finished; ``job`` is its last known state."""

    def __init__(self, job: Any):
        super().__init__(f"job {job.id} is still {job.status}")
        self.job = job


class WebhookVerificationError(VideoJobsError):
    """A webhook's signature, timestamp or headers did not verify: do not trust its body."""
