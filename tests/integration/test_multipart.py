"""Multipart uploads on moto: the plan of parts, completing, aborting, and what submit says about unfinished ones.

The parts are sent with boto3 here (in-process moto intercepts only botocore); ``tests/e2e/test_sdk.py`` sends
them to the presigned URLs over real HTTP.
"""

from __future__ import annotations

from http import HTTPStatus

import pytest

from infra.local.resources import Resources
from tests.integration.test_submit import make_deps
from videojobs.aws import client, reset_clients
from videojobs.errors import ApiError
from videojobs.models import CompleteUploadRequest, CreateJobRequest, CreateUploadRequest, MultipartUploadResponse
from videojobs.object_store import upload_key
from videojobs.service import jobs
from videojobs.settings import S3_OBJECT_LIMIT, S3_SINGLE_UPLOAD_LIMIT

MIB = 1024**2
TENANT = "t1"
SMALL_PARTS = {"MULTIPART_THRESHOLD_BYTES": str(5 * MIB), "MULTIPART_PART_BYTES": str(5 * MIB)}


def start(aws: Resources, size: int, **settings: str) -> MultipartUploadResponse:
    request = CreateUploadRequest(filename="big.mp4", content_type="video/mp4", size_bytes=size)
    upload = jobs.create_upload(request, TENANT, make_deps(aws, **(SMALL_PARTS | settings)))
    assert isinstance(upload, MultipartUploadResponse)
    return upload


def send_parts(aws: Resources, upload: MultipartUploadResponse, data: bytes) -> list[dict]:
    """What a client does with the presigned PUTs, through boto3."""
    s3, key = client("s3"), upload_key(TENANT, upload.upload_id)
    [pending] = s3.list_multipart_uploads(Bucket=aws.buckets["uploads"], Prefix=key)["Uploads"]
    parts = []
    for part in upload.parts:
        chunk = data[(part.part_number - 1) * upload.part_size : part.part_number * upload.part_size]
        sent = s3.upload_part(
            Bucket=aws.buckets["uploads"],
            Key=key,
            UploadId=pending["UploadId"],
            PartNumber=part.part_number,
            Body=chunk,
        )
        parts.append({"part_number": part.part_number, "etag": sent["ETag"]})
    return parts


def job_request(upload_id: str) -> CreateJobRequest:
    outputs = [{"type": "mp4", "height": 360}]
    return CreateJobRequest.model_validate({"input": {"upload_id": upload_id}, "outputs": outputs})


def refused(call) -> tuple[int, str]:
    with pytest.raises(ApiError) as error:
        call()
    return error.value.status, error.value.code


def test_a_file_at_the_threshold_gets_a_presigned_post_and_one_above_it_parts(aws: Resources):
    deps = make_deps(aws, **SMALL_PARTS)
    at = jobs.create_upload(
        CreateUploadRequest(filename="a.mp4", content_type="video/mp4", size_bytes=5 * MIB), TENANT, deps
    )
    assert at.method == "POST"
    above = start(aws, 12 * MIB)
    assert (above.method, above.part_size, above.max_bytes) == ("MULTIPART", 5 * MIB, 12 * MIB)
    assert [part.part_number for part in above.parts] == [1, 2, 3]
    assert all("partNumber=" in part.url and "uploadId=" in part.url for part in above.parts)


def test_completed_parts_become_the_input_and_the_job_is_accepted(aws: Resources):
    data = bytes(range(256)) * (11 * MIB // 256 + 1)
    upload = start(aws, len(data))
    parts = send_parts(aws, upload, data)

    deps = make_deps(aws, **SMALL_PARTS)
    assert refused(lambda: jobs.submit_job(job_request(upload.upload_id), TENANT, None, deps)) == (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "upload_incomplete",
    )

    completed = jobs.complete_upload(
        upload.upload_id, CompleteUploadRequest.model_validate({"parts": parts}), TENANT, deps
    )
    assert completed.size_bytes == len(data)
    stored = client("s3").get_object(Bucket=aws.buckets["uploads"], Key=upload_key(TENANT, upload.upload_id))
    assert stored["Body"].read() == data
    # A retried completion answers the same; the job goes through even above the single-POST limit's setting.
    again = jobs.complete_upload(upload.upload_id, CompleteUploadRequest.model_validate({"parts": parts}), TENANT, deps)
    assert again == completed
    job = jobs.submit_job(job_request(upload.upload_id), TENANT, None, make_deps(aws, MAX_UPLOAD_BYTES=str(MIB)))
    assert job.upload_id == upload.upload_id


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (
            lambda parts: [{**parts[0], "etag": '"0123456789abcdef0123456789abcdef"'}, *parts[1:]],
            "invalid_upload_parts",
        ),
        (lambda parts: list(reversed(parts)), "invalid_upload_parts"),
        (lambda parts: parts[:-1], "invalid_upload_parts"),  # a file shorter than declared is not the file
    ],
)
def test_wrong_parts_are_refused_with_invalid_upload_parts(aws: Resources, mangle, code: str):
    data = b"v" * (11 * MIB)
    upload = start(aws, len(data))
    parts = mangle(send_parts(aws, upload, data))
    request = CompleteUploadRequest.model_validate({"parts": parts})
    assert refused(lambda: jobs.complete_upload(upload.upload_id, request, TENANT, make_deps(aws))) == (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        code,
    )


def test_parts_larger_than_declared_are_refused_and_the_file_dropped(aws: Resources):
    upload = start(aws, 11 * MIB)
    parts = send_parts(aws, upload, b"v" * (11 * MIB + 1000))  # the last part carries more than declared
    request = CompleteUploadRequest.model_validate({"parts": parts})
    assert refused(lambda: jobs.complete_upload(upload.upload_id, request, TENANT, make_deps(aws))) == (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "upload_too_large",
    )
    assert make_deps(aws).objects.head(aws.buckets["uploads"], upload_key(TENANT, upload.upload_id)) is None


def test_an_aborted_upload_is_gone_and_cannot_be_aborted_twice(aws: Resources):
    upload = start(aws, 11 * MIB)
    deps = make_deps(aws)
    jobs.abort_upload(upload.upload_id, TENANT, deps)
    assert refused(lambda: jobs.submit_job(job_request(upload.upload_id), TENANT, None, deps)) == (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "upload_not_found",
    )
    assert refused(lambda: jobs.abort_upload(upload.upload_id, TENANT, deps)) == (HTTPStatus.NOT_FOUND, "not_found")


def test_another_tenant_cannot_complete_or_abort_an_upload(aws: Resources):
    upload = start(aws, 11 * MIB)
    request = CompleteUploadRequest.model_validate({"parts": [{"part_number": 1, "etag": '"x"'}]})
    deps = make_deps(aws)
    assert refused(lambda: jobs.complete_upload(upload.upload_id, request, "t2", deps))[1] == "not_found"
    assert refused(lambda: jobs.abort_upload(upload.upload_id, "t2", deps))[1] == "not_found"


def test_sizes_above_the_multipart_limit_are_refused(aws: Resources):
    request = CreateUploadRequest(filename="a.mp4", content_type="video/mp4", size_bytes=S3_OBJECT_LIMIT + 1)
    assert refused(lambda: jobs.create_upload(request, TENANT, make_deps(aws))) == (
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "validation_error",
    )


@pytest.mark.parametrize("size", [100 * MIB + 1, S3_SINGLE_UPLOAD_LIMIT + 1, 777 * 1024**3, S3_OBJECT_LIMIT])
def test_part_plans_stay_within_s3_limits(size: int):
    part = jobs.part_size_for(size, 64 * MIB)
    count = -(-size // part)
    assert 5 * MIB <= part <= S3_SINGLE_UPLOAD_LIMIT
    assert count <= jobs.MAX_PARTS_PER_UPLOAD <= 10_000
    assert part % MIB == 0


def test_the_answer_for_a_5_tib_file_fits_in_a_lambda_response(aws: Resources, monkeypatch: pytest.MonkeyPatch):
    # A Lambda role's session token is ~1.2 KB and goes into every presigned URL.
    monkeypatch.setenv("AWS_SESSION_TOKEN", "I" * 1300)
    reset_clients()
    upload = start(aws, S3_OBJECT_LIMIT, MULTIPART_PART_BYTES=str(64 * MIB))
    assert len(upload.parts) == jobs.MAX_PARTS_PER_UPLOAD
    assert len(upload.model_dump_json().encode()) < 6 * 1024**2  # Lambda's synchronous response limit
