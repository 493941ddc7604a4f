"""Presigned URLs as a deployed function makes them: no endpoint override, a regional bucket.

AWS refuses SigV2 on buckets created after June 2020, and a bucket outside us-east-1 may answer the global host
with a redirect that breaks a signed request: every URL must be SigV4 on the bucket's regional virtual host.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from videojobs.aws import client, reset_clients
from videojobs.object_store import ObjectStore

REGION, BUCKET, KEY = "eu-west-1", "videojobs-uploads-123456789012", "uploads/t1/upl_0123"
REGIONAL_HOST = f"{BUCKET}.s3.{REGION}.amazonaws.com"


@pytest.fixture
def objects(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[ObjectStore]:
    """Clients built as in a Lambda: credentials from the environment, no endpoint, no config file."""
    import os

    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjEXAMPLE",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(name, value)
    reset_clients()
    yield ObjectStore(client("s3"))
    reset_clients()


def assert_sigv4_query(url: str) -> None:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.hostname) == ("https", REGIONAL_HOST), url
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].endswith(f"/{REGION}/s3/aws4_request")
    assert {"X-Amz-Signature", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Security-Token"} <= set(query)
    assert "Signature" not in query and "AWSAccessKeyId" not in query


def test_a_presigned_get_is_sigv4_on_the_regional_virtual_host(objects: ObjectStore):
    assert_sigv4_query(objects.presigned_download(BUCKET, KEY, 3600))


def test_a_multipart_part_url_is_sigv4_on_the_regional_virtual_host_and_signs_the_part_size(objects: ObjectStore):
    url = objects.presigned_part(BUCKET, KEY, "s3-upload-id", 3, 900, size_bytes=5 * 1024**2)
    assert_sigv4_query(url)
    assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["content-length;host"]


def test_a_presigned_post_is_sigv4_on_the_regional_virtual_host(objects: ObjectStore):
    post = objects.presigned_upload(BUCKET, KEY, content_type="video/mp4", max_bytes=1000, expires_in=900)

    assert urlsplit(post["url"]).hostname == REGIONAL_HOST
    fields = post["fields"]
    assert {"x-amz-algorithm", "x-amz-credential", "x-amz-signature", "x-amz-date", "policy"} <= set(fields)
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
    assert "AWSAccessKeyId" not in fields and "signature" not in fields
    conditions = json.loads(base64.b64decode(fields["policy"]))["conditions"]
    assert {"x-amz-algorithm": "AWS4-HMAC-SHA256"} in conditions
