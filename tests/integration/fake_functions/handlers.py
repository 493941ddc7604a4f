"""Fake handlers for the local stack's tests. Each records what it was called with in ``recorder``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from tests.integration.fake_functions import recorder
from videojobs.usage_plans import usage_key

# Module state, as real handlers keep (Powertools' BatchProcessor): each environment has its own.
_busy = threading.Lock()


def _record(kind: str, event: dict[str, Any], context: Any) -> None:
    recorder.record(kind, event, context, __name__)


# --- API ---------------------------------------------------------------------------------------------------


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with the event it got; ``X-Fake`` asks for a crash, a malformed answer or a binary one."""
    _record("api", event, context)
    mode = {key.lower(): value for key, value in event["headers"].items()}.get("x-fake")
    if mode == "slow":
        recorder.occupy(0.2)
    if mode == "crash":
        raise RuntimeError("boom")
    if mode == "hang":  # past any short timeout: held until the test lets it go
        recorder.release.wait(10)
    if mode == "huge":  # over Lambda's 6 MB response limit
        return {"statusCode": 200, "body": "x" * (6 * 1024 * 1024 + 200)}
    if mode == "not-json":
        return {"statusCode": 200, "body": "ok", "when": {1, 2}}
    if mode == "malformed":
        return {"body": {"not": "a string"}}
    if mode == "binary":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/octet-stream"},
            "body": base64.b64encode(b"\x00\xff\x10").decode(),
            "isBase64Encoded": True,
        }
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Single": "one"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"event": event}),
        "isBase64Encoded": False,
    }


def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``Bearer allow-*`` -> Allow with a context, ``Bearer deny`` -> Deny, anything else -> Unauthorized."""
    _record("authorizer", event, context)
    token = event["headers"].get("Authorization", "").removeprefix("Bearer ")
    if token.startswith("allow"):
        effect = "Allow"
    elif token == "deny":
        effect = "Deny"
    else:
        raise Exception("Unauthorized")  # the exact message API Gateway turns into a 401
    stage = event["methodArn"].split("/")[0]  # arn:...:api-id
    api_id = stage.rsplit(":", 1)[-1]
    return {
        "principalId": f"user-{token}",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": effect, "Resource": [f"{stage}/v1/*/*"]},
            ],
        },
        "context": {"tenant_id": token, "count": 3, "admin": True},
        # The local stack's own tenant, which is in the stack's usage plan (others would be refused with 403).
        "usageIdentifierKey": usage_key(api_id, "dev"),
    }


# --- event sources -----------------------------------------------------------------------------------------


def sqs_consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Fails the records whose body starts with ``fail``; raises if any body starts with ``raise``; waits for a
    second concurrent invocation if a body starts with ``together``; works 0.2 s on a body starting ``busy``."""
    _record("sqs", event, context)
    if not _busy.acquire(blocking=False):
        _record("overlap", event, context)  # two invocations at once in one environment: never in Lambda
        raise RuntimeError("environment shared by concurrent invocations")
    try:
        if any(record["body"].startswith("together") for record in event["Records"]):
            recorder.barrier.wait()
        if any(record["body"].startswith("busy") for record in event["Records"]):
            recorder.occupy(0.2)
    finally:
        _busy.release()
    if any(record["body"].startswith("raise") for record in event["Records"]):
        raise RuntimeError("the whole batch fails")
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]} for record in event["Records"] if record["body"].startswith("fail")
        ]
    }


def dlq_consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _record("dlq", event, context)
    return {"batchItemFailures": []}


_stream_attempts: dict[str, int] = {}


def stream_consumer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Reports a record as failed while it has been seen fewer than its ``fail_times`` attribute times."""
    _record("stream", event, context)
    failures = []
    with _busy:
        for record in event["Records"]:
            image = record["dynamodb"].get("NewImage") or {}
            fail_times = int(image.get("fail_times", {}).get("N", "0"))
            key = record["dynamodb"]["SequenceNumber"]
            _stream_attempts[key] = _stream_attempts.get(key, 0) + 1
            if _stream_attempts[key] <= fail_times:
                failures.append({"itemIdentifier": key})
    return {"batchItemFailures": failures}


# --- invocation --------------------------------------------------------------------------------------------


def hold(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Keeps its execution environment busy until ``recorder.release`` is set; changes the event it got."""
    _record("hold", event, context)
    event["changed"] = True
    recorder.release.wait(10)
    return {"ok": True}


# --- a worker that runs a child process (as the job and chunk workers run ffmpeg) -------------------------------


def spawner(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Starts ``sleep`` (an ffmpeg stand-in) and writes "<own pid> <child pid>" to ``event["pids"]``; waits for the
    child up to ``event["seconds"]``. Answers with its pid: which environment ran it."""
    child = subprocess.Popen(["sleep", str(event.get("seconds", 0))])
    Path(event["pids"]).write_text(f"{os.getpid()} {child.pid}")
    child.wait()
    return {"pid": os.getpid()}
