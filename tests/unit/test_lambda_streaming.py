"""The streaming runtime against a fake Lambda Runtime API: what it sends is what API Gateway reads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from videojobs import lambda_streaming
from videojobs.lambda_streaming import DELIMITER, StreamingResponse

EVENT = {"path": "/jobs/j1/events"}


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)


class FakeRuntimeApi(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.posted: list[Posted] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeRuntimeApi
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps(EVENT).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", "4102444800000")
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:1:function:events")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-abc")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        posted = Posted(self.path, {k.lower(): v for k, v in self.headers.items()}, b"")
        if self.headers.get("Transfer-Encoding") == "chunked":
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    break
                posted.chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while (line := self.rfile.readline().strip()) != b"":
                name, _, value = line.decode().partition(":")
                posted.trailers[name.strip()] = value.strip()
            posted.body = b"".join(posted.chunks)
        else:
            posted.body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.posted.append(posted)
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def runtime_api() -> Iterator[FakeRuntimeApi]:
    server = FakeRuntimeApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_streamed_response_is_the_metadata_the_delimiter_then_each_chunk_as_produced(
    runtime_api: FakeRuntimeApi,
) -> None:
    seen: list[tuple[dict[str, Any], Any]] = []

    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        seen.append((event, context))
        return StreamingResponse(200, {"Content-Type": "text/event-stream"}, iter(["id: 1\n\n", b"", "id: 2\n\n"]))

    lambda_streaming.serve_one(runtime_api.address, handler)
    (posted,) = runtime_api.posted
    assert posted.path == "/2018-06-01/runtime/invocation/req-1/response"
    assert posted.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert posted.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    metadata, _, body = posted.body.partition(DELIMITER)
    assert lambda_streaming.decode_metadata(metadata) == (200, {"Content-Type": "text/event-stream"})
    assert body == b"id: 1\n\nid: 2\n\n"
    assert posted.chunks[1:] == [b"id: 1\n\n", b"id: 2\n\n"]  # each chunk on its own, the empty one skipped
    assert posted.trailers == {}
    event, context = seen[0]
    assert event == EVENT and context.aws_request_id == "req-1" and context.get_remaining_time_in_millis() > 0


def test_a_handler_failing_before_its_first_chunk_is_an_invocation_error(runtime_api: FakeRuntimeApi) -> None:
    def handler(event: dict[str, Any], context: Any) -> StreamingResponse:
        raise RuntimeError("no table")

    lambda_streaming.serve_one(runtime_api.address, handler)
    (posted,) = runtime_api.posted
    assert posted.path == "/2018-06-01/runtime/invocation/req-1/error"
    assert json.loads(posted.body)["errorMessage"] == "no table"


def test_a_body_failing_mid_stream_ends_the_stream_with_the_error_trailers(runtime_api: FakeRuntimeApi) -> None:
    def body() -> Iterator[str]:
        yield "id: 1\n\n"
        raise ValueError("lost the table")

    lambda_streaming.serve_one(runtime_api.address, lambda event, context: StreamingResponse(200, {}, body()))
    (posted,) = runtime_api.posted
    assert posted.body.partition(DELIMITER)[2] == b"id: 1\n\n"
    assert posted.trailers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ValueError"
    assert "Lambda-Runtime-Function-Error-Body" in posted.trailers
