"""HTTP plumbing: an error's status comes from the error table; an operation answers with its declared status."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from videojobs import api
from videojobs.errors import ERRORS, ApiError, not_found
from videojobs.models import CompletedUpload, ErrorCode


def resolve(app, method: str, path: str) -> dict:  # type: ignore[no-untyped-def]
    event = {"httpMethod": method, "path": path, "headers": {}, "requestContext": {}, "body": None}
    return app.resolve(event, None)


def test_an_api_error_answers_with_the_status_of_its_code():
    app = api.new_resolver()

    @app.post("/jobs/<job_id>/cancel")
    def cancel(job_id: str):
        raise ApiError(ErrorCode.JOB_FINISHED, "the job is already completed")

    answer = resolve(app, "POST", "/jobs/x/cancel")
    assert answer["statusCode"] == ERRORS[ErrorCode.JOB_FINISHED].status == HTTPStatus.CONFLICT
    assert not_found().status == HTTPStatus.NOT_FOUND


def test_a_job_error_code_is_never_an_answer():
    with pytest.raises(ValueError, match="job error"):
        ApiError(ErrorCode.PROCESSING_FAILED, "no such answer")


def test_an_operation_answers_its_declared_status_with_or_without_a_body():
    app = api.new_resolver()
    completed = api.Operation("Complete", HTTPStatus.OK, CompletedUpload)
    aborted = api.Operation("Abort", HTTPStatus.NO_CONTENT)

    @app.post("/uploads/<upload_id>/complete", **completed.route())
    def complete(upload_id: str):
        return completed.answer(CompletedUpload(upload_id=upload_id, size_bytes=1))

    @app.delete("/uploads/<upload_id>", **aborted.route())
    def abort(upload_id: str):
        return aborted.answer()

    answer = resolve(app, "POST", "/uploads/u/complete")
    assert (answer["statusCode"], answer["body"]) == (200, '{"upload_id":"u","size_bytes":1}')
    answer = resolve(app, "DELETE", "/uploads/u")
    assert (answer["statusCode"], answer["body"]) == (204, None)
    assert "Content-Type" not in answer["multiValueHeaders"]  # a 204 has no body, not "null"
