"""``Client``: the videojobs API from Python.

from videojobs import Client

with Client("http://127.0.0.1:8080", api_key) as videojobs:
    upload = videojobs.upload("film.mov", on_progress=lambda sent, total: ...)
    job = videojobs.submit(upload, ["mp4:720", "hls:1080,720,480"])
    job = videojobs.wait(job.id, on_update=lambda job: print(job.progress))
    videojobs.download(job, "out/")
"""

from __future__ import annotations

import builtins
import contextlib
import json
import mimetypes
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from videojobs.sdk import sse
from videojobs.sdk.endpoints import WebhookEndpoints
from videojobs.sdk.errors import ApiError, TransportError, UploadError, WaitTimeout, WebhookVerificationError
from videojobs.sdk.models import Job, JobEvent, Upload, parse_output
from videojobs.sdk.websocket import JobEventSocket

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes in all); from worker threads during multipart uploads."""

CHUNK_BYTES = 1024 * 1024
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_SECONDS = 60
DEFAULT_POLL_SECONDS = 2
# Longer than the gap between a stream's keep-alives (10 s) and than a long poll (API Gateway's 29 s): the server
# speaks or ends the response first.
EVENTS_READ_TIMEOUT_SECONDS = 60
EVENT_TYPES = (
    "job.queued",
    "job.processing",
    "job.progress",
    "job.output.ready",
    "job.playable",
    "job.completed",
    "job.failed",
    "job.cancelled",
)


class EventsUnavailable(Exception):
    """The API has no events stream for jobs (``GET /jobs/{id}/events``): poll instead."""


class Client:
    """The videojobs API. Thread-safe; close it (or use ``with``) to free its connections.

    :param base_url: e.g. ``http://127.0.0.1:8080`` or the API Gateway stage URL ending in ``/v1``.
    :param api_key: sent as ``Authorization: Bearer`` to the API, never to the presigned storage URLs.
    :param retries: retries of a request or an upload part after a network error or a 429/5xx answer.
    :param part_concurrency: parts of a multipart upload sent at once.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30,
        retries: int = 3,
        part_concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._retries = retries
        self._part_concurrency = max(1, part_concurrency)
        self._api = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "videojobs-python"},
        )
        # Presigned URLs carry their own signature: an Authorization header would make S3 refuse them.
        self._storage = httpx.Client(timeout=httpx.Timeout(timeout, write=None), transport=transport)
        self._events_available: bool | None = None
        self._sleep = time.sleep
        self.webhook_endpoints = WebhookEndpoints(self)
        """The tenant's webhook endpoints: ``client.webhook_endpoints.create(url, events=[...])``."""

    def close(self) -> None:
        self._api.close()
        self._storage.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- uploads -----------------------------------------------------------------------------------------

    def upload(
        self, path: str | Path, *, content_type: str | None = None, on_progress: ProgressCallback | None = None
    ) -> Upload:
        """Send a file to storage: one presigned POST, or parts in parallel (each retried) above the API's
        multipart threshold. ``on_progress(sent, total)`` follows the bytes."""
        path = Path(path)
        size = path.stat().st_size
        content_type = content_type or guess_content_type(path)
        answer = self._request(
            "POST",
            "/uploads",
            json={
                "filename": path.name[-255:],
                "content_type": content_type,
                "size_bytes": size,
            },
        ).json()
        progress = _Progress(size, on_progress)
        if answer["method"] == "MULTIPART":
            self._send_parts(path, answer, progress)
        else:
            self._send_post(path, answer, content_type, progress)
        return Upload(upload_id=answer["upload_id"], size_bytes=size, method=answer["method"])

    def _send_post(self, path: Path, answer: dict[str, Any], content_type: str, progress: _Progress) -> None:
        for attempt in range(self._retries + 1):
            progress.reset()
            try:
                with path.open("rb") as file:
                    # A file to httpx's multipart encoder, which calls only read(), fileno(), tell() and seek().
                    reader = cast(BinaryIO, _CountingReader(file, progress))
                    response = self._storage.post(
                        answer["url"], data=answer["fields"], files={"file": (path.name, reader, content_type)}
                    )
                if response.is_success:
                    return
                problem, retryable = (
                    f"storage answered {response.status_code}: {response.text[:300]}",
                    response.status_code in RETRYABLE_STATUSES,
                )
            except httpx.TransportError as error:
                problem, retryable = f"storage unreachable: {error}", True
            if not retryable or attempt == self._retries:
                raise UploadError(f"uploading {path.name} failed: {problem}")
            self._sleep(_backoff(attempt))

    def _send_parts(self, path: Path, answer: dict[str, Any], progress: _Progress) -> None:
        upload_id, part_size, size = answer["upload_id"], answer["part_size"], progress.total
        stop = threading.Event()

        def send(part: dict[str, Any]) -> dict[str, Any]:
            number, url = part["part_number"], part["url"]
            offset = (number - 1) * part_size
            length = min(part_size, size - offset)
            attempt, refreshed = 0, False
            while True:
                sent = 0

                def chunks(file: BinaryIO) -> Iterator[bytes]:
                    nonlocal sent
                    remaining = length
                    while remaining:
                        if stop.is_set():
                            raise UploadError("another part failed")
                        chunk = file.read(min(CHUNK_BYTES, remaining))
                        if not chunk:
                            raise UploadError(f"{path} shrank while it was being uploaded")
                        remaining -= len(chunk)
                        sent += len(chunk)
                        progress.add(len(chunk))
                        yield chunk

                try:
                    with path.open("rb") as file:
                        file.seek(offset)
                        response = self._storage.put(url, content=chunks(file), headers={"Content-Length": str(length)})
                    if response.is_success and response.headers.get("ETag"):
                        return {"part_number": number, "etag": response.headers["ETag"]}
                    if _url_expired(response) and not refreshed:
                        # A presigned URL dies with the session that signed it, often before its expires_at:
                        # sign this part again and resend it; the parts already sent stay.
                        progress.add(-sent)
                        url, refreshed = self._fresh_part_url(upload_id, number), True
                        continue
                    problem, retryable = (
                        f"storage answered {response.status_code}: {response.text[:300]}",
                        response.status_code in RETRYABLE_STATUSES,
                    )
                except httpx.TransportError as error:
                    problem, retryable = f"storage unreachable: {error}", True
                progress.add(-sent)
                if stop.is_set() or not retryable or attempt == self._retries:
                    raise UploadError(f"part {number} of {path.name} failed: {problem}")
                self._sleep(_backoff(attempt))
                attempt, refreshed = attempt + 1, False

        pool = ThreadPoolExecutor(
            max_workers=min(self._part_concurrency, len(answer["parts"])), thread_name_prefix="videojobs-part"
        )
        futures = [pool.submit(send, part) for part in answer["parts"]]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
            error = next((future.exception() for future in futures if future.done() and future.exception()), None)
            if error is not None:
                raise error
            completed = [future.result() for future in futures]
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            self._abort_quietly(upload_id)
            raise
        pool.shutdown()
        self._request("POST", f"/uploads/{upload_id}/complete", json={"parts": completed})

    def _fresh_part_url(self, upload_id: str, part_number: int) -> str:
        answer = self._request("POST", f"/uploads/{upload_id}/parts", json={"part_numbers": [part_number]}).json()
        url: str = answer["parts"][0]["url"]
        return url

    def _abort_quietly(self, upload_id: str) -> None:
        with contextlib.suppress(ApiError, TransportError):  # else the bucket's lifecycle rule removes the parts
            self._request("DELETE", f"/uploads/{upload_id}")

    # --- jobs --------------------------------------------------------------------------------------------

    def submit(
        self,
        upload: Upload | str,
        outputs: Sequence[str | dict[str, Any]],
        *,
        webhook_url: str | None = None,
        webhook_events: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a job for an upload (or its id). ``outputs`` take dicts or the short forms of
        :func:`~videojobs.sdk.models.parse_output` (``"mp4:720"``). A generated ``Idempotency-Key`` makes the
        request safe to retry; pass your own to make resubmitting safe across processes."""
        body: dict[str, Any] = {
            "input": {"upload_id": upload.upload_id if isinstance(upload, Upload) else upload},
            "outputs": [parse_output(output) for output in outputs],
        }
        optional = {"webhook_url": webhook_url, "webhook_events": webhook_events, "metadata": metadata}
        body |= {name: value for name, value in optional.items() if value is not None}
        key = idempotency_key or f"sdk-{uuid.uuid4()}"
        return Job.model_validate(self._request("POST", "/jobs", json=body, headers={"Idempotency-Key": key}).json())

    def get(self, job_id: str) -> Job:
        return self._get(job_id)[0]

    def list(self, *, status: str | None = None, page_size: int = 20) -> Iterator[Job]:
        """Every job of the caller, newest first, fetched a page at a time as the iteration goes."""
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            params |= ({"status": status} if status else {}) | ({"cursor": cursor} if cursor else {})
            page = self._request("GET", "/jobs", params=params).json()
            yield from (Job.model_validate(job) for job in page["jobs"])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> Job:
        """Ask for a job to stop; a finished job answers ``ApiError`` with code ``job_finished``."""
        # Not repeated after a lost answer: a second cancel of a cancelled job would answer job_finished.
        return Job.model_validate(self._request("POST", f"/jobs/{job_id}/cancel", idempotent=False).json())

    def wait(
        self,
        job_id: str,
        *,
        on_update: Callable[[Job], None] | None = None,
        timeout: float | None = None,
        use_events: bool = True,
    ) -> Job:
        """Follow a job until it is finished and return it; ``on_update`` sees every new version.

        Uses the events stream (SSE) where the API has it, else polls as ``Retry-After`` says. Raises
        ``WaitTimeout`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job, retry_after = self._get(job_id)
        last = job
        if on_update:
            on_update(job)
        if job.finished:
            return job
        delay = retry_after
        if use_events and self._events_available is not False:
            delay = 0  # once the stream has ended, look at the job at once
            try:
                for event in self._follow(job_id, str(job.version), deadline):
                    if event.version <= last.version:
                        continue  # a duplicate or a late arrival: versions only grow
                    last = event.data
                    if last.finished:
                        # Output URLs are presigned at each read: an event's may be missing or stale.
                        fresh = self.get(job_id)
                        last = fresh if fresh.version >= last.version else last
                    if on_update:
                        on_update(last)
                    if last.finished:
                        return last
            except EventsUnavailable:
                self._events_available = False
                delay = retry_after
            except TransportError:
                delay = retry_after  # the stream kept failing: polling still may not
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(last)
            delay = DEFAULT_POLL_SECONDS if delay is None else delay
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            if delay:
                self._sleep(delay)
            job, retry_after = self._get(job_id)
            delay = retry_after
            if job.version != last.version and on_update:
                on_update(job)
            last = job
            if job.finished:
                return job

    def events(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[JobEvent]:
        """The job's events as they happen (``GET /jobs/{id}/events``: one streamed response, or long polls
        where the deployment buffers), resuming after the last event id when a response ends or breaks off,
        until the job is finished. Raises ``EventsUnavailable`` where the API has no events stream."""
        try:
            yield from self._follow(job_id, last_event_id, None)
        except EventsUnavailable:
            self.get(job_id)  # an unknown job raises not_found; else it is the stream that is missing
            raise

    def _follow(self, job_id: str, last_event_id: str | None, deadline: float | None) -> Iterator[JobEvent]:
        reconnect_seconds, failures = 1.0, 0
        while deadline is None or time.monotonic() < deadline:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            read = (
                EVENTS_READ_TIMEOUT_SECONDS
                if deadline is None
                else max(1.0, min(EVENTS_READ_TIMEOUT_SECONDS, deadline - time.monotonic()))
            )
            try:
                with self._api.stream(
                    "GET", f"/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(self._timeout, read=read)
                ) as response:
                    if response.status_code == 204:
                        return  # the server says the client has seen the end already
                    streaming = response.headers.get("content-type", "").startswith("text/event-stream")
                    if response.status_code in (404, 405) or (response.is_success and not streaming):
                        response.read()
                        raise EventsUnavailable(f"{self.base_url} has no events stream for jobs")
                    if response.status_code in RETRYABLE_STATUSES:
                        # A cold start past API Gateway's 29 s (504), a throttled or failed invocation: the
                        # stream resumes from the last event id, as after a quiet long poll.
                        response.read()
                        failures += 1
                        if failures > self._retries:
                            raise TransportError(f"the events stream of {job_id} keeps failing: {response.status_code}")
                        self._sleep(_retry_after(response) or _backoff(failures - 1))
                        continue
                    if not response.is_success:
                        response.read()
                        raise _api_error(response)
                    self._events_available = True
                    failures = 0
                    for message in sse.parse(response.iter_lines()):
                        if message.retry is not None:
                            reconnect_seconds = message.retry / 1000
                        if message.id is not None:
                            last_event_id = message.id
                        if not message.data or message.event not in (*EVENT_TYPES, "message"):
                            continue
                        event = _job_event(message.data, message.event)
                        yield event
                        if event.data.finished:
                            return
            except httpx.ReadTimeout:
                pass  # a quiet long-poll: reconnect and resume
            except httpx.TransportError as error:
                failures += 1
                if failures > self._retries:
                    raise TransportError(f"the events stream of {job_id} keeps failing: {error}") from error
            self._sleep(min(reconnect_seconds, 30))

    def follow(self, job_id: str, *, since_version: int = 0, keepalive_seconds: float = 300.0) -> JobEventSocket:
        """The job's events after ``since_version`` over the WebSocket API, until its terminal event. It
        reconnects with a new ticket and resumes from the last version seen whenever API Gateway closes the
        connection (10 minutes idle, 2 hours at most); ``connections`` counts the connections it opened."""
        return JobEventSocket(
            job_id,
            lambda: self._request("POST", f"/jobs/{job_id}/ws-ticket").json(),
            since_version=since_version,
            keepalive_seconds=keepalive_seconds,
        )

    def download(
        self, job: Job | str, directory: str | Path, *, on_progress: ProgressCallback | None = None
    ) -> builtins.list[Path]:  # `list` in this class is Client.list
        """Save every output of a completed job under ``directory`` and return the files. A single file keeps its
        name; an output of several files (thumbnails, an HLS ladder with its playlists and segments) gets a
        folder ``<n>-<type>``, its playlists rewritten to the local files so that it plays offline."""
        if isinstance(job, str) or not any(output.url or output.urls for output in job.outputs):
            job = self.get(job if isinstance(job, str) else job.id)  # a listed job carries no URLs
        directory = Path(directory)
        saved: list[Path] = []
        for index, output in enumerate(job.outputs):
            urls = ([output.url] if output.url else []) + list(output.urls or [])
            several = len(urls) > 1 or output.type == "hls"
            folder = directory / f"{index}-{output.type}" if several else directory
            folder.mkdir(parents=True, exist_ok=True)
            for url in urls:
                target = _inside(directory, folder / _file_name(url))
                self._fetch(url, target, on_progress)
                saved.append(target)
                if target.suffix == ".m3u8":
                    saved += self._fetch_playlist_entries(url, target, on_progress, root=directory)
        return saved

    def _fetch_playlist_entries(
        self, url: str, playlist: Path, on_progress: ProgressCallback | None, *, root: Path, depth: int = 0
    ) -> builtins.list[Path]:  # `list` in this class is Client.list
        """Fetch what an HLS playlist names into the playlist's folder, and point the playlist at those files."""
        text, saved = playlist.read_text(), []
        for uri in dict.fromkeys(_playlist_uris(text)):
            local = _local_name(uri)
            target = _inside(root, playlist.parent / local)
            target.parent.mkdir(parents=True, exist_ok=True)
            self._fetch(urljoin(url, uri), target, on_progress)
            saved.append(target)
            text = text.replace(uri, local)
            if target.suffix == ".m3u8" and depth < 2:
                saved += self._fetch_playlist_entries(
                    urljoin(url, uri), target, on_progress, root=root, depth=depth + 1
                )
        playlist.write_text(text)
        return saved

    def _fetch(self, url: str, target: Path, on_progress: ProgressCallback | None) -> None:
        partial = target.with_name(target.name + ".part")
        with self._storage.stream("GET", url) as response:
            if not response.is_success:
                response.read()
                raise TransportError(f"downloading {target.name} failed: {response.status_code} {response.text[:200]}")
            total, done = int(response.headers.get("content-length", 0)), 0
            with partial.open("wb") as file:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    file.write(chunk)
                    done += len(chunk)
                    if on_progress:
                        on_progress(done, total)
        partial.replace(target)

    # --- webhooks ----------------------------------------------------------------------------------------

    def webhook_secret(self) -> str:
        """This tenant's webhook signing secret (``whsec_…``)."""
        secret: str = self._request("GET", "/account/webhook-secret").json()["secret"]
        return secret

    @staticmethod
    def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> JobEvent:
        """The event of a webhook delivery, once its Standard Webhooks signature and timestamp verify."""
        return verify_webhook(body, headers, secret)

    # --- plumbing ----------------------------------------------------------------------------------------

    def _get(self, job_id: str) -> tuple[Job, float | None]:
        response = self._request("GET", f"/jobs/{job_id}")
        return Job.model_validate(response.json()), _retry_after(response)

    def _request(self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any) -> httpx.Response:
        """One API call, retried on network errors and on 429/5xx (after ``Retry-After`` where given) when it is
        safe to repeat (POST /jobs is: it carries an Idempotency-Key)."""
        for attempt in range(self._retries + 1):
            try:
                response = self._api.request(method, path, **kwargs)
            except httpx.TransportError as error:
                if not idempotent or attempt == self._retries:
                    raise TransportError(f"{method} {self.base_url}{path} failed: {error}") from error
                self._sleep(_backoff(attempt))
                continue
            if response.is_success:
                return response
            if response.status_code not in RETRYABLE_STATUSES or not idempotent or attempt == self._retries:
                raise _api_error(response)
            self._sleep(_retry_after(response) or _backoff(attempt))
        raise AssertionError("unreachable")


def verify_webhook(body: bytes | str, headers: Mapping[str, str], secret: str) -> JobEvent:
    """Verify a Standard Webhooks delivery (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``) and
    return its event. Raises ``WebhookVerificationError`` for a bad signature or a timestamp over 5 min off."""
    import standardwebhooks

    text = body.decode() if isinstance(body, bytes) else body
    try:
        payload = standardwebhooks.Webhook(secret).verify(text, dict(headers))
    except (standardwebhooks.WebhookVerificationError, ValueError, RuntimeError) as error:
        raise WebhookVerificationError(str(error) or "the webhook did not verify") from error
    return JobEvent.model_validate(payload)


def guess_content_type(path: Path) -> str:
    guessed = mimetypes.guess_type(path.name)[0]
    return guessed if guessed and guessed.split("/")[0] in ("video", "audio") else "video/mp4"


class _Progress:
    """Bytes sent so far, shared by the threads sending parts."""

    def __init__(self, total: int, callback: ProgressCallback | None):
        self.total = total
        self._done = 0
        self._callback = callback
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self._done += count
            done = self._done
        if self._callback:
            self._callback(done, self.total)

    def reset(self) -> None:
        with self._lock:
            self._done = 0


class _CountingReader:
    """A file for httpx's multipart encoder that reports what it reads (the encoder sizes it with fstat)."""

    def __init__(self, file: BinaryIO, progress: _Progress):
        self._file = file
        self._progress = progress

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._progress.add(len(chunk))
        return chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return ApiError.from_response(response.status_code, body, dict(response.headers))


def _url_expired(response: httpx.Response) -> bool:
    """S3's answer to a presigned URL past its expiry (403) or past its signing session's (400 ExpiredToken)."""
    return response.status_code == 403 or (response.status_code == 400 and "<Code>ExpiredToken</Code>" in response.text)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(min(int(value), MAX_RETRY_AFTER_SECONDS)) if value.isdigit() else None


def _backoff(attempt: int) -> float:
    return min(0.5 * 2.0**attempt, 8) * random.uniform(0.5, 1)


def _job_event(data: str, event_type: str) -> JobEvent:
    """An SSE message's event: ``{"type", "timestamp", "data": job}``, or (leniently) a bare job."""
    payload = json.loads(data)
    if "data" not in payload and "id" in payload:
        payload = {"type": event_type, "data": payload}
    return JobEvent.model_validate(payload)


def _file_name(url: str) -> str:
    """The last segment of a URL's path, decoded, as a safe file name."""
    return _safe_segment(unquote(urlsplit(url).path).replace("\\", "/").rsplit("/", 1)[-1])


def _safe_segment(name: str) -> str:
    """One path segment from untrusted text (the server's or a playlist's): printable, not hidden, never ``.``
    or ``..``, no separator."""
    name = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in name).strip().lstrip(".")
    return name or "output"


def _local_name(uri: str) -> str:
    """Where a playlist's entry is saved, relative to the playlist: its own relative path where it has a safe
    one (variants in subfolders keep them apart), else its file name (absolute, presigned URLs)."""
    parts = urlsplit(uri)
    path = PurePosixPath(unquote(parts.path).replace("\\", "/"))
    if parts.scheme or parts.netloc or path.is_absolute() or ".." in path.parts:
        return _file_name(uri)
    return "/".join(_safe_segment(part) for part in path.parts) or "output"


def _inside(directory: Path, target: Path) -> Path:
    """``target``, after checking that it lies under ``directory`` (names come from the network)."""
    if not target.resolve().is_relative_to(directory.resolve()):
        raise TransportError(f"refusing to write {target}: outside {directory}")
    return target


def _playlist_uris(text: str) -> list[str]:
    """The URIs an HLS playlist references: its non-tag lines and the ``URI="…"`` attributes of its tags."""
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            uris.append(line)
        elif 'URI="' in line:
            uris.append(line.split('URI="', 1)[1].split('"', 1)[0])
    return uris
