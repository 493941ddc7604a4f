"""Streamed Lambda responses for API Gateway, from Python, which has no native streaming handler.

A streaming handler returns a ``StreamingResponse``: a status, headers and a body that is an iterator of chunks,
each sent as soon as it is produced. API Gateway (an integration with ``ResponseTransferMode.STREAM``) invokes the
function with InvokeWithResponseStream and expects the "http-integration-response" format: the metadata as JSON,
eight NUL bytes, then the body as it comes.

``main(handler)`` is the function's runtime in AWS: started by the ``stream_bootstrap.sh`` in the function's folder
(its ``AWS_LAMBDA_EXEC_WRAPPER``) in place of the managed Python runtime's loop, it takes invocations from the Lambda
Runtime API and posts each response in streaming mode (``Lambda-Runtime-Function-Response-Mode: streaming``,
chunked). A handler that fails before its first chunk is an ordinary invocation error; one that fails mid-stream
ends the stream with the error trailers. The local stack's gateway reads ``encode()`` the same way.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

DELIMITER = b"\0" * 8
"""Between the metadata and the body (API Gateway's format for streamed Lambda proxy responses)."""
CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
RUNTIME_API_VERSION = "2018-06-01"


@dataclass(frozen=True)
class StreamingResponse:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Iterable[str | bytes] = ()


def encode(response: StreamingResponse) -> Iterator[bytes]:
    """What the function sends: the metadata and delimiter first, then each body chunk as it is produced."""
    metadata = {"statusCode": response.status_code, "headers": response.headers}
    yield json.dumps(metadata).encode() + DELIMITER
    for chunk in response.body:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        if data:
            yield data


def decode_metadata(prelude: bytes) -> tuple[int, dict[str, str]]:
    """The status and headers of a streamed response, from the bytes before ``DELIMITER``."""
    metadata = json.loads(prelude)
    return int(metadata["statusCode"]), {str(k): str(v) for k, v in (metadata.get("headers") or {}).items()}


# --- the runtime (AWS only) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeContext:
    """What a handler's ``context`` offers (the attributes Powertools' logger reads)."""

    aws_request_id: str
    invoked_function_arn: str
    deadline_ms: int
    function_name: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""))
    function_version: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", ""))
    memory_limit_in_mb: int = field(default_factory=lambda: int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0)))
    log_group_name: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", ""))
    log_stream_name: str = field(default_factory=lambda: os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", ""))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


StreamHandler = Callable[[dict[str, Any], Any], StreamingResponse]


def serve_one(runtime_api: str, handler: StreamHandler) -> None:
    """Take one invocation from the Runtime API at ``runtime_api`` (host:port) and stream its response."""
    base = f"/{RUNTIME_API_VERSION}/runtime/invocation"
    connection = http.client.HTTPConnection(runtime_api, timeout=None)
    connection.request("GET", f"{base}/next")
    answer = connection.getresponse()
    event = json.loads(answer.read() or b"null")
    request_id = answer.headers["Lambda-Runtime-Aws-Request-Id"]
    trace_id = answer.headers.get("Lambda-Runtime-Trace-Id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id  # what the X-Ray SDK reads, as the managed runtime sets it
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    context = RuntimeContext(
        aws_request_id=request_id,
        invoked_function_arn=answer.headers.get("Lambda-Runtime-Invoked-Function-Arn", ""),
        deadline_ms=int(answer.headers.get("Lambda-Runtime-Deadline-Ms", "0")),
    )
    try:
        chunks = encode(handler(event, context))
        first = next(chunks)  # the metadata: a handler that fails before it is an ordinary invocation error
    except Exception as early:
        _post(connection, f"{base}/{request_id}/error", _error_body(early), {"Content-Type": "application/json"})
        return
    connection.putrequest("POST", f"{base}/{request_id}/response")
    for name, value in (
        ("Lambda-Runtime-Function-Response-Mode", "streaming"),
        ("Transfer-Encoding", "chunked"),
        ("Content-Type", CONTENT_TYPE),
        ("Trailer", "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"),
    ):
        connection.putheader(name, value)
    connection.endheaders()
    failure: Exception | None = None
    try:
        _send_chunk(connection, first)
        for chunk in chunks:
            _send_chunk(connection, chunk)
    except OSError:  # the Runtime API dropped the response (the caller went away): nothing left to tell
        connection.close()
        return
    except Exception as error:  # the handler failed mid-stream: the stream ends with the error trailers
        failure = error
    trailers = b""
    if failure is not None:
        body = json.dumps(_error_body(failure)).encode()
        trailers = (
            f"Lambda-Runtime-Function-Error-Type: {_error_type(failure)}\r\n"
            f"Lambda-Runtime-Function-Error-Body: {base64.b64encode(body).decode()}\r\n"
        ).encode()
    connection.send(b"0\r\n" + trailers + b"\r\n")
    connection.getresponse().read()
    connection.close()


def _send_chunk(connection: http.client.HTTPConnection, data: bytes) -> None:
    connection.send(f"{len(data):X}\r\n".encode() + data + b"\r\n")


def _post(connection: http.client.HTTPConnection, path: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    connection.request("POST", path, body=json.dumps(body).encode(), headers=headers)
    connection.getresponse().read()
    connection.close()


def _error_type(failure: BaseException) -> str:
    return f"Runtime.{type(failure).__name__}"


def _error_body(failure: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(failure),
        "errorType": type(failure).__name__,
        "stackTrace": traceback.format_tb(failure.__traceback__),
    }


def main(handler: StreamHandler) -> None:
    """The runtime's loop (the handler was imported by the caller: an import error ends the process, which
    Lambda reports as an init failure)."""
    runtime_api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    while True:
        serve_one(runtime_api, handler)
