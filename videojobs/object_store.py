"""S3 adapter: presigned uploads, object checks, streaming transfers to and from local disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.s3.transfer import ProgressCallbackInvoker, TransferConfig, create_transfer_manager
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

# Multipart transfers in 16 MiB parts: memory stays bounded whatever the file size.
TRANSFER = TransferConfig(multipart_threshold=16 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=4)
DOWNLOAD_RANGE_BYTES, DOWNLOAD_STREAMS, DOWNLOAD_CHUNK_BYTES = 64 * 1024**2, 4, 1024**2
# Many files (an HLS ladder's segments) through one transfer manager: one bounded pool of requests for all.
TRANSFER_MANY = TransferConfig(multipart_threshold=16 * 1024**2, multipart_chunksize=16 * 1024**2, max_concurrency=8)


class PartsRejected(Exception):
    """S3 refused to join the parts of a multipart upload (a wrong ETag, a missing or too small part)."""


@dataclass(frozen=True)
class ObjectInfo:
    size_bytes: int
    content_type: str | None
    metadata: dict[str, str]


def upload_key(tenant_id: str, upload_id: str) -> str:
    """Uploads live under their tenant's prefix: an upload id alone never reaches another tenant's file."""
    return f"uploads/{tenant_id}/{upload_id}"


def upload_plan_key(tenant_id: str, upload_id: str) -> str:
    """The plan of a multipart upload (declared size, part size): S3 keeps no readable metadata on an
    unfinished multipart upload, and re-signing a part needs its exact size."""
    return f"upload-plans/{tenant_id}/{upload_id}.json"


def output_key(tenant_id: str, job_id: str, name: str) -> str:
    return f"outputs/{tenant_id}/{job_id}/{name}"


class ObjectStore:
    def __init__(self, client: S3Client):
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

    def start_multipart(self, bucket: str, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        """Begin a multipart upload; returns S3's upload id (opaque, and not the one our API hands out)."""
        started = self._client.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type, Metadata=metadata
        )
        return started["UploadId"]

    def presigned_part(
        self, bucket: str, key: str, multipart_id: str, part_number: int, expires_in: int, *, size_bytes: int
    ) -> str:
        """A presigned PUT of one part, signed for exactly ``size_bytes`` (``Content-Length`` is a signed
        header): S3 checks no size on parts otherwise, up to 5 GiB each whatever was declared."""
        return self._client.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": bucket,
                "Key": key,
                "UploadId": multipart_id,
                "PartNumber": part_number,
                "ContentLength": size_bytes,
            },
            ExpiresIn=expires_in,
        )

    def multipart_in_progress(self, bucket: str, key: str) -> str | None:
        """S3's id of the unfinished multipart upload to ``key``, if there is one."""
        listed = self._client.list_multipart_uploads(Bucket=bucket, Prefix=key)
        return next((upload["UploadId"] for upload in listed.get("Uploads", []) if upload["Key"] == key), None)

    def complete_multipart(self, bucket: str, key: str, multipart_id: str, parts: list[tuple[int, str]]) -> None:
        """Join the parts, given as (part number, ETag) in ascending order."""
        try:
            self._client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=multipart_id,
                MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]},
            )
        except ClientError as error:
            if error.response["Error"]["Code"] in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise PartsRejected(
                    f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
                ) from error
            raise

    def abort_multipart(self, bucket: str, key: str, multipart_id: str) -> None:
        self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=multipart_id)

    def delete(self, bucket: str, key: str) -> None:
        self._client.delete_object(Bucket=bucket, Key=key)

    def head(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            head = self._client.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectInfo(head["ContentLength"], head.get("ContentType"), head.get("Metadata", {}))

    def download(self, bucket: str, key: str, path: Path, progress: Callable[[int], None] | None = None) -> None:
        """Stream the object to ``path`` in ranges of 64 MiB, four at a time, each chunk written where it
        belongs: memory stays a few MiB whatever the size (boto3's ``download_file`` holds more as files grow:
        +50 MB for 200 MB, measured). ``progress`` gets each chunk's size; raising in it aborts the download."""
        head = self._client.head_object(Bucket=bucket, Key=key)
        size, etag = head["ContentLength"], head["ETag"]

        def fetch(start: int) -> None:
            end = min(start + DOWNLOAD_RANGE_BYTES, size) - 1
            # IfMatch: every range from the same version of the object.
            body = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=etag)["Body"]
            with body:
                for chunk in iter(lambda: body.read(DOWNLOAD_CHUNK_BYTES), b""):
                    os.pwrite(descriptor, chunk, start)
                    start += len(chunk)
                    if progress is not None:
                        progress(len(chunk))

        with path.open("wb") as file:
            descriptor = file.fileno()
            pool = ThreadPoolExecutor(DOWNLOAD_STREAMS, thread_name_prefix="download")
            try:
                for _ in pool.map(fetch, range(0, size, DOWNLOAD_RANGE_BYTES)):
                    pass
            finally:
                pool.shutdown(cancel_futures=True)  # on a failure, no range is started after it

    def upload(
        self, path: Path, bucket: str, key: str, content_type: str, progress: Callable[[int], None] | None = None
    ) -> None:
        self._client.upload_file(
            str(path), bucket, key, ExtraArgs={"ContentType": content_type}, Config=TRANSFER, Callback=progress
        )

    def upload_many(
        self, bucket: str, files: list[tuple[Path, str, str]], progress: Callable[[int], None] | None = None
    ) -> None:
        """Upload (path, key, content type) files concurrently, streamed from disk, bounded by one pool. The
        first failure (or ``progress`` raising) cancels the rest and is raised."""
        subscribers = [ProgressCallbackInvoker(progress)] if progress else None
        with create_transfer_manager(self._client, TRANSFER_MANY) as manager:
            transfers = [
                manager.upload(
                    str(path), bucket, key, extra_args={"ContentType": content_type}, subscribers=subscribers
                )
                for path, key, content_type in files
            ]
            for transfer in transfers:
                transfer.result()

    def read(self, bucket: str, key: str) -> bytes:
        """A small object's content (a playlist), read into memory."""
        return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def read_if_exists(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.read(bucket, key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("404", "NoSuchKey"):
                return None
            raise

    def write(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        """A small object, from memory."""
        self._client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def delete_keys(self, bucket: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # what one DeleteObjects takes
            batch = keys[start : start + 1000]
            self._client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
            )

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many there were."""
        deleted = 0
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys = [item["Key"] for item in page.get("Contents", [])]
            if keys:  # a page holds at most 1,000 keys: what one DeleteObjects takes
                self._client.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
                )
                deleted += len(keys)
        return deleted

    def presigned_download(self, bucket: str, key: str, expires_in: int) -> str:
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )
