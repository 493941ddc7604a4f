"""Errors that cross a boundary: each carries the stable ``code`` a client sees."""

from __future__ import annotations

from http import HTTPStatus

from videojobs.models import ErrorCode


class ApiError(Exception):
    """An error answered to an API client as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: HTTPStatus, code: ErrorCode, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(what: str = "job") -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, ErrorCode.NOT_FOUND, f"{what} not found")


class JobFailure(Exception):
    """A permanent failure of a job: retrying the same input cannot succeed, so the job ends ``failed``."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class LeaseLost(Exception):
    """This worker no longer holds the job (it was cancelled, finished elsewhere, or reclaimed)."""
