"""What the fake handlers were called with, shared by every copy of their module (the local stack loads one
copy per concurrent execution environment)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

_lock = threading.Lock()
_calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
_active = 0
max_active = 0
barrier = threading.Barrier(2, timeout=10)
release = threading.Event()
"""Lets handlers that wait for it go on."""


def record(kind: str, event: dict[str, Any], context: Any, module: str) -> None:
    info = {
        "module": module,
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    with _lock:
        _calls.append((kind, json.loads(json.dumps(event)), info))


def calls(kind: str) -> list[dict[str, Any]]:
    with _lock:
        return [event for recorded, event, _ in _calls if recorded == kind]


def contexts(kind: str) -> list[dict[str, Any]]:
    with _lock:
        return [info for recorded, _, info in _calls if recorded == kind]


def occupy(seconds: float) -> None:
    """Stay busy for a while, noting how many callers were busy at once (``max_active``)."""
    global _active, max_active
    with _lock:
        _active += 1
        max_active = max(max_active, _active)
    time.sleep(seconds)
    with _lock:
        _active -= 1


def reset() -> None:
    global max_active
    with _lock:
        _calls.clear()
        max_active = 0
    barrier.reset()
    release.clear()
