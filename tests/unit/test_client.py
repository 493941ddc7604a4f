"""The SDK against a scripted API (httpx.MockTransport): retries, errors, waiting, uploads, webhooks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import standardwebhooks

from videojobs.models import JobEventType
from videojobs.sdk import ApiError, Client, Job, UploadError, WebhookVerificationError, parse_output, verify_webhook
from videojobs.sdk.client import EVENT_TYPES
from videojobs.sdk.sse import ServerSentEvent, parse

ROOT = Path(__file__).resolve().parents[2]
API = "http://api.test"


def job(version: int, status: str = "processing", progress: int = 0, **extra) -> dict:
    return {"id": "job_1", "status": status, "progress": progress, "version": version, "outputs": [], **extra}


def error(status: int, code: str, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": f"it is {code}"}}, headers=headers)


def client_for(handler, sleeps: list[float] | None = None, **options) -> Client:
    client = Client(API, "vj_key", transport=httpx.MockTransport(handler), **options)
    client._sleep = (sleeps if sleeps is not None else []).append
    return client


def test_an_error_answer_raises_api_error_with_the_code_and_is_not_retried():
    calls = []

    def api(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(422, "upload_not_found")

    with pytest.raises(ApiError) as raised, client_for(api) as client:
        client.submit("upl_x", ["mp4:360"])
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        422,
        "upload_not_found",
        "it is upload_not_found",
    )
    assert len(calls) == 1
    assert calls[0].headers["Authorization"] == "Bearer vj_key"
    assert calls[0].headers["Idempotency-Key"].startswith("sdk-")
    assert json.loads(calls[0].content)["outputs"] == [{"type": "mp4", "height": 360}]


def test_429_and_503_are_retried_after_retry_after_with_the_same_idempotency_key():
    answers = iter(
        [
            error(429, "rate_limited", {"Retry-After": "3"}),
            error(503, "service_unavailable"),
            httpx.Response(202, json=job(1, "queued")),
        ]
    )
    keys, sleeps = [], []

    def api(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        return next(answers)

    with client_for(api, sleeps) as client:
        assert client.submit("upl_x", ["mp4:360"]).status == "queued"
    assert len(set(keys)) == 1 and len(keys) == 3
    assert sleeps[0] == 3 and 0 < sleeps[1] <= 8


def test_a_cancel_is_not_repeated_after_a_5xx():
    calls = []

    def api(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return error(503, "service_unavailable")

    with pytest.raises(ApiError), client_for(api) as client:
        client.cancel("job_1")
    assert calls == ["/jobs/job_1/cancel"]


def test_list_follows_cursors_across_pages():
    pages = {None: {"jobs": [job(1), job(2)], "next_cursor": "c2"}, "c2": {"jobs": [job(3)], "next_cursor": None}}
    seen = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    with client_for(api) as client:
        assert [found.version for found in client.list(status="completed", page_size=2)] == [1, 2, 3]
    assert seen == [{"limit": "2", "status": "completed"}, {"limit": "2", "status": "completed", "cursor": "c2"}]


def test_wait_polls_as_retry_after_says_when_the_api_has_no_events_stream():
    polls = iter([(job(1, "queued"), "3"), (job(2, "processing", 40), "2"), (job(3, "completed", 100), None)])
    event_requests, sleeps, updates = [], [], []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            event_requests.append(request)
            return error(404, "not_found")  # the gateway's answer for a route it does not have
        body, retry_after = next(polls)
        return httpx.Response(200, json=body, headers={"Retry-After": retry_after} if retry_after else {})

    with client_for(api, sleeps) as client:
        done = client.wait("job_1", on_update=lambda update: updates.append((update.version, update.progress)))
        assert done.status == "completed"
        polls = iter([(job(3, "completed", 100), None)])
        client.wait("job_1")  # knows by now that there is no stream: does not ask again
    assert sleeps == [3, 2]
    assert updates == [(1, 0), (2, 40), (3, 100)]
    assert len(event_requests) == 1


def test_wait_for_an_unknown_job_raises_not_found():
    with pytest.raises(ApiError) as raised, client_for(lambda request: error(404, "not_found")) as client:
        client.wait("job_nope")
    assert raised.value.code == "not_found"


def sse_body(*events: tuple[int, str, dict]) -> bytes:
    lines = ["retry: 500", ": keep-alive", ""]
    for version, event_type, data in events:
        payload = json.dumps({"type": event_type, "timestamp": "2026-11-28T14:00:00.000Z", "data": data})
        lines += [f"id: {version}", f"event: {event_type}", f"data: {payload}", ""]
    return ("\n".join(lines) + "\n").encode()


def test_wait_follows_the_events_stream_and_resumes_after_the_last_event_id():
    streams = iter(
        [
            sse_body((2, "job.processing", job(2)), (3, "job.progress", job(3, progress=50))),  # a long-poll ends here
            sse_body((3, "job.progress", job(3, progress=50)), (4, "job.completed", job(4, "completed", 100))),
        ]
    )
    finished = job(4, "completed", 100, outputs=[{"type": "mp4", "url": "http://storage.test/fresh.mp4"}])
    reads = iter([job(1, "queued"), finished])  # before the stream, and once more for fresh output URLs
    resumed_from, sleeps, updates = [], [], []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            resumed_from.append(request.headers.get("Last-Event-ID"))
            return httpx.Response(200, content=next(streams), headers={"Content-Type": "text/event-stream"})
        return httpx.Response(200, json=next(reads), headers={"Retry-After": "5"})

    with client_for(api, sleeps) as client:
        done = client.wait("job_1", on_update=lambda update: updates.append(update.version))
    assert done.status == "completed" and done.outputs[0].url == "http://storage.test/fresh.mp4"
    assert resumed_from == ["1", "3"]
    assert updates == [1, 2, 3, 4]  # the repeated version 3 is not reported twice
    assert sleeps == [0.5]  # reconnected after the server's retry: delay, and never polled


def test_wait_resumes_the_events_stream_after_a_gateway_timeout_or_a_failed_invocation():
    # API Gateway answers 504 when a cold start and the long poll pass its 29 s, 502 or 500 when the invocation
    # fails or is throttled: the stream goes on from the last event id instead of raising.
    answers = iter(
        [
            error(504, "internal_error"),
            httpx.Response(
                200, content=sse_body((2, "job.processing", job(2))), headers={"Content-Type": "text/event-stream"}
            ),
            error(502, "internal_error"),
            error(503, "internal_error"),
            httpx.Response(
                200,
                content=sse_body((3, "job.completed", job(3, "completed", 100))),
                headers={"Content-Type": "text/event-stream"},
            ),
        ]
    )
    reads = iter([job(1, "queued"), job(3, "completed", 100)])
    resumed_from, updates = [], []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            resumed_from.append(request.headers.get("Last-Event-ID"))
            return next(answers)
        return httpx.Response(200, json=next(reads))

    with client_for(api) as client:
        done = client.wait("job_1", on_update=lambda update: updates.append(update.version))
    assert done.status == "completed"
    assert resumed_from == ["1", "1", "2", "2", "2"]
    assert updates == [1, 2, 3]


class CutStream(httpx.SyncByteStream):
    """A streamed body that breaks off after its first part, as API Gateway cuts a stream past its limits."""

    def __init__(self, first: bytes):
        self.first = first

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def test_events_resume_after_the_last_event_id_when_a_stream_is_cut_mid_body():
    answers = iter(
        [
            httpx.Response(
                200,
                stream=CutStream(sse_body((2, "job.processing", job(2)), (3, "job.output.ready", job(3)))),
                headers={"Content-Type": "text/event-stream"},
            ),
            httpx.Response(
                200,
                content=sse_body((4, "job.completed", job(4, "completed", 100))),
                headers={"Content-Type": "text/event-stream"},
            ),
        ]
    )
    resumed_from = []

    def api(request: httpx.Request) -> httpx.Response:
        resumed_from.append(request.headers.get("Last-Event-ID"))
        return next(answers)

    with client_for(api) as client:
        events = list(client.events("job_1", last_event_id="1"))
    assert [(event.type, event.version) for event in events] == [
        ("job.processing", 2),
        ("job.output.ready", 3),
        ("job.completed", 4),
    ]
    assert resumed_from == ["1", "3"]


def test_the_sdk_knows_every_event_type():
    assert set(EVENT_TYPES) == {kind.value for kind in JobEventType}


def test_when_the_stream_answers_204_wait_reads_the_job_at_once():
    reads = iter([job(1, "processing"), job(2, "completed", 100)])
    sleeps = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(204)  # the server: this client has seen the end already
        return httpx.Response(200, json=next(reads), headers={"Retry-After": "5"})

    with client_for(api, sleeps) as client:
        assert client.wait("job_1").status == "completed"
    assert sleeps == []


def test_the_event_stream_parser_follows_the_standard():
    lines = [": comment", "event: job.progress", "id: 7", "retry: 250", 'data: {"a":', "data:1}", "", "data: x", ""]
    assert list(parse(lines)) == [ServerSentEvent("job.progress", '{"a":\n1}', "7", 250), ServerSentEvent(data="x")]


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("mp4:720", {"type": "mp4", "height": 720}),
        ("mp4:720:high", {"type": "mp4", "height": 720, "quality": "high"}),
        ("hls:1080,720,480", {"type": "hls", "heights": [1080, 720, 480]}),
        ("thumbnails:5", {"type": "thumbnails", "count": 5}),
        ("thumbnails:5:320", {"type": "thumbnails", "count": 5, "width": 320}),
        ("audio:mp3", {"type": "audio", "format": "mp3"}),
        ('{"type": "mp4", "height": 144}', {"type": "mp4", "height": 144}),
    ],
)
def test_output_specs_in_short_form(spec: str, parsed: dict):
    assert parse_output(spec) == parsed


@pytest.mark.parametrize("spec", ["mp4", "mp4:tall", "hls:", "gif:5", "thumbnails:5:6:7"])
def test_unreadable_output_specs_are_refused(spec: str):
    with pytest.raises(ValueError, match="cannot read output"):
        parse_output(spec)


class FakeStorage:
    """The API's upload routes and presigned storage URLs, recording what arrives."""

    def __init__(
        self, size: int, part_size: int | None = None, failures: dict[int, list[int | tuple[int, str]]] | None = None
    ):
        self.size, self.part_size = size, part_size
        # part number -> statuses (or (status, S3 error code)) to answer before succeeding
        self.failures = failures or {}
        self.refreshed: list[int] = []
        self.parts: dict[int, bytes] = {}
        self.posted: dict | None = None
        self.completed: list[dict] | None = None
        self.aborted = False
        self.storage_headers: list[httpx.Headers] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.test":
            self.storage_headers.append(request.headers)
            if request.method == "PUT":
                number = int(request.url.params["partNumber"])
                pending = self.failures.get(number, [])
                if pending:
                    failure = pending.pop(0)
                    status, code = failure if isinstance(failure, tuple) else (failure, "No")
                    return httpx.Response(status, text=f"<Error><Code>{code}</Code></Error>")
                self.parts[number] = request.read()
                return httpx.Response(200, headers={"ETag": f'"etag-{number}"'})
            self.posted = {"body": request.read(), "type": request.headers["content-type"]}
            return httpx.Response(204)
        if request.url.path == "/uploads":
            declared = json.loads(request.content)
            assert declared["size_bytes"] == self.size
            if self.part_size is None:
                return httpx.Response(
                    201,
                    json={
                        "upload_id": "upl_1",
                        "method": "POST",
                        "url": "http://storage.test/",
                        "fields": {"key": "uploads/t/upl_1", "policy": "p"},
                        "expires_at": "x",
                        "max_bytes": self.size,
                    },
                )
            count = -(-self.size // self.part_size)
            parts = [
                {"part_number": n, "url": f"http://storage.test/k?partNumber={n}&uploadId=s3"}
                for n in range(1, count + 1)
            ]
            return httpx.Response(
                201,
                json={
                    "upload_id": "upl_1",
                    "method": "MULTIPART",
                    "part_size": self.part_size,
                    "parts": parts,
                    "expires_at": "x",
                    "max_bytes": self.size,
                },
            )
        if request.url.path == "/uploads/upl_1/parts":
            numbers = json.loads(request.content)["part_numbers"]
            self.refreshed += numbers
            parts = [{"part_number": n, "url": f"http://storage.test/k?partNumber={n}&fresh=1"} for n in numbers]
            return httpx.Response(200, json={"upload_id": "upl_1", "part_size": self.part_size, "parts": parts})
        if request.url.path == "/uploads/upl_1/complete":
            self.completed = json.loads(request.content)["parts"]
            return httpx.Response(200, json={"upload_id": "upl_1", "size_bytes": self.size})
        if request.method == "DELETE":
            self.aborted = True
            return httpx.Response(204)
        raise AssertionError(f"unexpected {request.method} {request.url}")


def test_a_multipart_upload_sends_every_part_retries_failures_and_completes(tmp_path: Path):
    data = bytes(range(256)) * 40  # 10,240 bytes in parts of 3,000
    source = tmp_path / "big.mp4"
    source.write_bytes(data)
    storage = FakeStorage(len(data), part_size=3000, failures={2: [500, 503]})
    progress: list[tuple[int, int]] = []

    with client_for(storage, part_concurrency=3) as client:
        upload = client.upload(source, on_progress=lambda sent, total: progress.append((sent, total)))

    assert (upload.upload_id, upload.method, upload.size_bytes) == ("upl_1", "MULTIPART", len(data))
    assert b"".join(storage.parts[n] for n in sorted(storage.parts)) == data
    assert storage.completed == [{"part_number": n, "etag": f'"etag-{n}"'} for n in (1, 2, 3, 4)]
    assert progress[-1] == (len(data), len(data)) and max(sent for sent, _ in progress) == len(data)
    assert all("authorization" not in headers for headers in storage.storage_headers)  # the key stays with the API


def test_a_part_that_storage_refuses_aborts_the_upload(tmp_path: Path):
    source = tmp_path / "big.mp4"
    source.write_bytes(b"v" * 9000)
    storage = FakeStorage(9000, part_size=3000, failures={3: [400]})
    with pytest.raises(UploadError, match="part 3"), client_for(storage) as client:
        client.upload(source)
    assert storage.aborted and storage.completed is None


def test_a_part_whose_url_expired_is_signed_again_and_resent_without_losing_the_others(tmp_path: Path):
    data = bytes(range(256)) * 40
    source = tmp_path / "big.mp4"
    source.write_bytes(data)
    storage = FakeStorage(len(data), part_size=3000, failures={2: [403], 3: [(400, "ExpiredToken")]})
    progress: list[int] = []

    with client_for(storage, part_concurrency=2) as client:
        client.upload(source, on_progress=lambda sent, total: progress.append(sent))

    assert sorted(storage.refreshed) == [2, 3]
    assert b"".join(storage.parts[n] for n in sorted(storage.parts)) == data
    assert storage.completed is not None and not storage.aborted
    assert max(progress) == progress[-1] == len(data)


def test_a_fresh_url_that_is_refused_again_fails_the_part(tmp_path: Path):
    source = tmp_path / "big.mp4"
    source.write_bytes(b"v" * 9000)
    storage = FakeStorage(9000, part_size=3000, failures={3: [403, 403]})
    with pytest.raises(UploadError, match=r"part 3 .* 403"), client_for(storage) as client:
        client.upload(source)
    assert storage.refreshed == [3]


def test_a_small_file_goes_in_one_presigned_post_with_its_fields(tmp_path: Path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"m" * 5000)
    storage = FakeStorage(5000)
    progress = []
    with client_for(storage) as client:
        upload = client.upload(source, on_progress=lambda sent, total: progress.append(sent))
    assert upload.method == "POST"
    assert storage.posted["type"].startswith("multipart/form-data")
    body = storage.posted["body"]
    assert b'name="policy"' in body and b"m" * 5000 in body
    assert body.index(b'name="policy"') < body.index(b'name="file"')  # S3 wants the file last
    assert progress[-1] == 5000


def test_download_saves_outputs_and_makes_hls_playable_offline(tmp_path: Path):
    files = {
        "/out/0-mp4-360p.mp4": b"mp4 bytes",
        "/play/tok/master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n360p/index.m3u8\n",
        "/play/tok/360p/index.m3u8": b'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2,\n'
        b"http://storage.test/out/seg0.ts?Signature=abc\n#EXT-X-ENDLIST\n",
        "/play/tok/360p/init.mp4": b"init",
        "/out/seg0.ts": b"segment",
        "/out/t/1.jpg": b"jpeg 1",
        "/out/t/2.jpg": b"jpeg 2",
    }
    outputs = [
        {"type": "mp4", "url": "http://storage.test/out/0-mp4-360p.mp4"},
        {"type": "hls", "url": "http://storage.test/play/tok/master.m3u8"},
        {"type": "thumbnails", "urls": ["http://storage.test/out/t/1.jpg", "http://storage.test/out/t/2.jpg"]},
    ]
    done = job(5, "completed", 100, outputs=outputs)

    with client_for(lambda request: httpx.Response(200, content=files[request.url.path])) as client:
        saved = client.download(Job.model_validate(done), tmp_path)
    relative = sorted(str(path.relative_to(tmp_path)) for path in saved)
    assert relative == [
        "0-mp4-360p.mp4",
        "1-hls/360p/index.m3u8",
        "1-hls/360p/init.mp4",
        "1-hls/360p/seg0.ts",
        "1-hls/master.m3u8",
        "2-thumbnails/1.jpg",
        "2-thumbnails/2.jpg",
    ]
    # The presigned segment URL now names the local copy.
    assert (tmp_path / "1-hls/360p/index.m3u8").read_text().splitlines()[3] == "seg0.ts"
    assert (tmp_path / "1-hls/360p/seg0.ts").read_bytes() == b"segment"


HOSTILE_NAMES = ["..%2F..%2F.bashrc", "..", "%2E%2E", "..%5C..%5Cx", "%2Fetc%2Fpasswd", "a%00b", "."]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_download_never_writes_outside_the_target_directory(tmp_path: Path, name: str):
    target = tmp_path / "home" / "out"
    outputs = [
        {"type": "mp4", "url": f"http://storage.test/out/{name}"},
        {"type": "hls", "url": f"http://storage.test/play/{name}"},
    ]
    playlist = f'#EXTM3U\n#EXT-X-MAP:URI="{name}"\n#EXTINF:2,\n{name}\n../{name}\n/abs/{name}\n#EXT-X-ENDLIST\n'

    def storage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=playlist.encode() if "/play/" in request.url.path else b"x")

    with client_for(storage) as client:
        saved = client.download(Job.model_validate(job(5, "completed", 100, outputs=outputs)), target)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written and all(path.resolve().is_relative_to(target.resolve()) for path in written)
    assert set(saved) == set(written)
    for path in written:  # a plain file name each: no hidden dot-files, no control characters
        assert not path.name.startswith(".") and path.name.isprintable()


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def signed(body: str, *, moment: datetime | None = None, secret: str = SECRET) -> dict[str, str]:
    moment = moment or datetime.now(UTC)
    signature = standardwebhooks.Webhook(secret).sign("msg_1", moment, body)
    return {"Webhook-Id": "msg_1", "Webhook-Timestamp": str(int(moment.timestamp())), "Webhook-Signature": signature}


def test_verify_webhook_returns_the_event_of_a_signed_delivery():
    body = json.dumps({"type": "job.completed", "timestamp": "t", "data": job(4, "completed", 100)})
    event = Client.verify_webhook(body.encode(), signed(body), SECRET)
    assert (event.type, event.data.status, event.version) == ("job.completed", "completed", 4)


@pytest.mark.parametrize("tamper", ["body", "secret", "old"])
def test_verify_webhook_refuses_what_was_not_signed_so(tamper: str):
    body = json.dumps({"type": "job.completed", "timestamp": "t", "data": job(4, "completed", 100)})
    headers = signed(
        body,
        moment=datetime.now(UTC) - timedelta(minutes=10) if tamper == "old" else None,
        secret="whsec_" + "A" * 32 if tamper == "secret" else SECRET,
    )
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body.replace("completed", "failed") if tamper == "body" else body, headers, SECRET)


def test_the_sdk_is_imported_only_when_asked_for():
    script = (
        "import sys, videojobs, videojobs.service.jobs, functions.submit.handler, functions.status.handler\n"
        "assert 'httpx' not in sys.modules, 'a Lambda import pulled in httpx'\n"
        "from videojobs import Client\n"
        "assert Client.__module__ == 'videojobs.sdk.client'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
