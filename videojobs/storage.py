"""S3 adapter: presigned uploads, object checks, streaming transfers to and from local disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

# Multipart transfers in 16 MiB parts: memory stays bounded whatever the file size.
TRANSFER = TransferConfig(multipart_threshold=16 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4)


@dataclass(frozen=True)
class ObjectInfo:
    size_bytes: int
    content_type: str | None
    metadata: dict[str, str]


def upload_key(tenant_id: str, upload_id: str) -> str:
    """Uploads live under their tenant's prefix: an upload id alone never reaches another tenant's file."""
    return f"uploads/{tenant_id}/{upload_id}"


def output_key(tenant_id: str, job_id: str, name: str) -> str:
    return f"outputs/{tenant_id}/{job_id}/{name}"


class ObjectStore:
    def __init__(self, client: Any):
        self._client = client

    def presigned_upload(
        self, bucket: str, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> dict[str, Any]:
        """A presigned POST that only accepts this key, this content type and at most ``max_bytes``."""
        return self._client.generate_presigned_post(
            Bucket=bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in,
        )

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(head["ContentLength"], head.get("ContentType"), head.get("Metadata", {}))

    def download(self, bucket: str, key: str, path: Path) -> None:
        self._client.download_file(bucket, key, str(path), Config=TRANSFER)

    def upload(self, path: Path, bucket: str, key: str, content_type: str) -> None:
        self._client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type}, Config=TRANSFER)

    def presigned_download(self, bucket: str, key: str, expires_in: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )
