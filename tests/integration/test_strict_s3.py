"""The local stack's strict S3 (infra/local/strict_s3.py): what S3 refuses and moto lets through, over real HTTP.

The stack runs in this process with a clock the tests move forward (no waiting): the strict S3 and botocore's
signer (the functions presign in this process) both read it, as S3 and a Lambda would both see time pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.signers
import httpx
import pytest
from botocore.config import Config

from infra.local import LocalStack
from infra.local.stack import DEV_TENANT
from videojobs import settings
from videojobs.aws import client
from videojobs.object_store import ObjectStore, upload_key
from videojobs.sdk import Client

MIB = 1024**2
SESSION_LIFETIME_SECONDS = 3600
UPLOAD_URL_TTL_SECONDS = 900


class MovableClock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def datetime(self, remove_tzinfo: bool = True) -> datetime:
        now = datetime.now(UTC) + timedelta(seconds=self.offset)
        return now.replace(tzinfo=None) if remove_tzinfo else now


@pytest.fixture(scope="module")
def clock() -> Iterator[MovableClock]:
    moved = MovableClock()
    with pytest.MonkeyPatch.context() as patch:
        # botocore signs with its own clock: the functions' URLs are signed at the moved time.
        patch.setattr(botocore.auth, "get_current_datetime", moved.datetime)
        patch.setattr(botocore.signers, "get_current_datetime", moved.datetime)
        yield moved


@pytest.fixture(scope="module")
def stack(clock: MovableClock) -> Iterator[LocalStack]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(settings.MULTIPART_THRESHOLD_BYTES, str(5 * MIB))
        patch.setenv(settings.MULTIPART_PART_BYTES, str(5 * MIB))
        patch.setenv(settings.UPLOAD_URL_TTL_SECONDS, str(UPLOAD_URL_TTL_SECONDS))
        with LocalStack(
            port=0, run_services=False, s3_session_lifetime_seconds=SESSION_LIFETIME_SECONDS, clock=clock
        ) as started:
            yield started


@pytest.fixture
def api(stack: LocalStack, clock: MovableClock) -> Iterator[httpx.Client]:
    clock.offset = 0
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as http:
        yield http


def start_upload(api: httpx.Client, size: int, content_type: str = "video/mp4") -> dict[str, Any]:
    response = api.post("/uploads", json={"filename": "a.mp4", "content_type": content_type, "size_bytes": size})
    assert response.status_code == 201, response.text
    return response.json()


def post_file(presigned: dict[str, Any], data: bytes, content_type: str = "video/mp4", **fields: str):
    return httpx.post(
        presigned["url"], data=presigned["fields"] | fields, files={"file": ("a.mp4", data, content_type)}
    )


def s3_error(response: httpx.Response) -> tuple[int, str]:
    code = response.text.split("<Code>", 1)[-1].split("</Code>", 1)[0] if "<Code>" in response.text else ""
    return response.status_code, code


def stored(stack: LocalStack, upload_id: str) -> bytes | None:
    s3 = stack.client("s3")
    try:
        return s3.get_object(Bucket=stack.resources.buckets["uploads"], Key=upload_key(DEV_TENANT, upload_id))[
            "Body"
        ].read()
    except s3.exceptions.NoSuchKey:
        return None


# --- presigned POST (issue 11 item 19) ----------------------------------------------------------------------


def test_a_presigned_post_within_its_policy_is_stored(api: httpx.Client, stack: LocalStack):
    presigned = start_upload(api, 10)
    assert post_file(presigned, b"0123456789").status_code == 204
    assert stored(stack, presigned["upload_id"]) == b"0123456789"


def test_a_presigned_post_sent_after_its_policy_expired_is_refused(
    api: httpx.Client, stack: LocalStack, clock: MovableClock
):
    presigned = start_upload(api, 10)
    clock.offset = UPLOAD_URL_TTL_SECONDS + 60  # the client waited 16 minutes

    refused = post_file(presigned, b"0123456789")

    assert s3_error(refused) == (403, "AccessDenied")
    assert "Policy expired" in refused.text
    assert stored(stack, presigned["upload_id"]) is None


@pytest.mark.parametrize(
    ("data", "content_type", "extra", "error"),
    [
        (b"0123456789!", "video/mp4", {}, (400, "EntityTooLarge")),  # one byte over the declared size
        (b"0123456789", "text/html", {"Content-Type": "text/html"}, (403, "AccessDenied")),
        (b"0123456789", "video/mp4", {"key": "uploads/other-tenant/upl_x"}, (403, "AccessDenied")),
        (b"0123456789", "video/mp4", {"x-amz-meta-extra": "1"}, (403, "AccessDenied")),  # a field not in the policy
    ],
    ids=["too-large", "content-type", "key", "extra-field"],
)
def test_a_presigned_post_breaking_its_policy_is_refused(
    api: httpx.Client, stack: LocalStack, data: bytes, content_type: str, extra: dict, error: tuple[int, str]
):
    presigned = start_upload(api, 10)
    refused = post_file(presigned, data, content_type, **extra)
    assert s3_error(refused) == error
    assert stored(stack, presigned["upload_id"]) is None


# --- presigned URLs --------------------------------------------------------------------------------------


def test_a_presigned_get_is_refused_after_its_expiry_and_when_tampered_with(
    api: httpx.Client, stack: LocalStack, clock: MovableClock
):
    presigned = start_upload(api, 10)
    assert post_file(presigned, b"0123456789").status_code == 204
    url = ObjectStore(client("s3")).presigned_download(
        stack.resources.buckets["uploads"], upload_key(DEV_TENANT, presigned["upload_id"]), 60
    )

    assert httpx.get(url).content == b"0123456789"
    assert s3_error(httpx.get(url.replace("uploads/dev/", "uploads/other/"))) == (403, "SignatureDoesNotMatch")
    clock.offset = 61
    assert s3_error(httpx.get(url)) == (403, "AccessDenied")


def test_sigv2_urls_are_refused_as_by_buckets_created_since_2020(api: httpx.Client, stack: LocalStack):
    presigned = start_upload(api, 10)
    assert post_file(presigned, b"0123456789").status_code == 204
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=stack.region
    )
    legacy = session.client("s3", endpoint_url=stack.s3_endpoint, config=Config(signature_version="s3"))
    url = legacy.generate_presigned_url(
        "get_object",
        Params={"Bucket": stack.resources.buckets["uploads"], "Key": upload_key(DEV_TENANT, presigned["upload_id"])},
    )
    assert "Signature=" in url
    assert s3_error(httpx.get(url)) == (400, "InvalidRequest")


# --- multipart part URLs (issue 11 item 6, issue 12 item 10) ---------------------------------------------


def test_a_part_url_accepts_exactly_the_planned_size(api: httpx.Client, stack: LocalStack):
    started = start_upload(api, 11 * MIB)
    first = started["parts"][0]
    assert [part["size_bytes"] for part in started["parts"]] == [5 * MIB, 5 * MIB, MIB]

    too_large = httpx.put(first["url"], content=bytes(first["size_bytes"] + 1))
    too_small = httpx.put(first["url"], content=bytes(first["size_bytes"] - 1))
    exact = httpx.put(first["url"], content=bytes(first["size_bytes"]))

    assert s3_error(too_large) == s3_error(too_small) == (403, "SignatureDoesNotMatch")
    assert exact.status_code == 200 and exact.headers["ETag"]
    api.delete(f"/uploads/{started['upload_id']}")


def test_part_urls_die_with_their_session_and_fresh_ones_finish_the_upload(
    api: httpx.Client, stack: LocalStack, clock: MovableClock
):
    data = bytes(range(256)) * (11 * MIB // 256)
    started = start_upload(api, len(data))
    parts = started["parts"]
    sent = [httpx.put(parts[0]["url"], content=data[: 5 * MIB])]
    clock.offset = SESSION_LIFETIME_SECONDS + 1  # the signing role's session expired; the URLs said 12 h

    expired = httpx.put(parts[1]["url"], content=data[5 * MIB : 10 * MIB])
    refreshed = api.post(f"/uploads/{started['upload_id']}/parts", json={"part_numbers": [2, 3]})
    assert refreshed.status_code == 200, refreshed.text
    fresh = refreshed.json()["parts"]
    sent += [
        httpx.put(fresh[0]["url"], content=data[5 * MIB : 10 * MIB]),
        httpx.put(fresh[1]["url"], content=data[10 * MIB :]),
    ]
    completed = api.post(
        f"/uploads/{started['upload_id']}/complete",
        json={"parts": [{"part_number": n, "etag": r.headers["ETag"]} for n, r in enumerate(sent, 1)]},
    )

    assert s3_error(expired) == (400, "ExpiredToken")
    assert [part["part_number"] for part in fresh] == [2, 3]
    assert [part["size_bytes"] for part in fresh] == [5 * MIB, MIB]
    assert [r.status_code for r in sent] == [200, 200, 200]
    assert completed.status_code == 200, completed.text
    assert stored(stack, started["upload_id"]) == data


def test_refreshing_parts_is_tenant_scoped_and_validated(api: httpx.Client, stack: LocalStack):
    started = start_upload(api, 11 * MIB)
    other_key = stack_key(stack, "other")
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {other_key}"}) as other:
        foreign = other.post(f"/uploads/{started['upload_id']}/parts", json={"part_numbers": [1]})
    unknown = api.post(f"/uploads/upl_{'0' * 32}/parts", json={"part_numbers": [1]})
    invalid = [
        api.post(f"/uploads/{started['upload_id']}/parts", json=body)
        for body in ({"part_numbers": []}, {"part_numbers": [1, 1]}, {"part_numbers": [4]}, {"part_numbers": [0]}, {})
    ]
    api.delete(f"/uploads/{started['upload_id']}")
    aborted = api.post(f"/uploads/{started['upload_id']}/parts", json={"part_numbers": [1]})

    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "not_found")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert [(r.status_code, r.json()["error"]["code"]) for r in invalid] == [(422, "validation_error")] * 5
    assert (aborted.status_code, aborted.json()["error"]["code"]) == (404, "not_found")


def test_the_sdk_resumes_an_upload_whose_part_urls_expire_midway(
    stack: LocalStack, clock: MovableClock, tmp_path: Path
):
    clock.offset = 0
    data = bytes(range(256)) * (16 * MIB // 256)
    path = tmp_path / "big.mp4"
    path.write_bytes(data)

    def expire_after_the_first_part(done: int, total: int) -> None:
        if done >= 5 * MIB and clock.offset == 0:
            clock.offset = SESSION_LIFETIME_SECONDS + 1

    with Client(stack.url, stack.api_key, part_concurrency=1) as sdk:
        calls: list[str] = []
        request = sdk._request

        def recorded(method: str, path: str, **kwargs: Any) -> httpx.Response:
            calls.append(f"{method} {path.rsplit('/', 1)[-1]}")
            return request(method, path, **kwargs)

        sdk._request = recorded  # type: ignore[method-assign]
        upload = sdk.upload(path, on_progress=expire_after_the_first_part)

    assert calls == ["POST uploads", "POST parts", "POST parts", "POST parts", "POST complete"]
    assert stored(stack, upload.upload_id) == data


def stack_key(stack: LocalStack, tenant: str) -> str:
    return stack.create_key(tenant)
