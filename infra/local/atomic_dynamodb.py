"""Make moto's DynamoDB apply one request at a time, as DynamoDB applies each write atomically.

moto checks a ``ConditionExpression`` and then writes, with nothing in between held: two threads of its
server can both pass the same condition (two workers claiming one job, two idempotent submits both
creating a job). DynamoDB never lets that happen, and our correctness rests on it, so the local stack and
the in-process tests serialize moto's DynamoDB requests. Other services are left concurrent.
"""

from __future__ import annotations

import functools
import threading

from moto.dynamodb.responses import DynamoHandler

_lock = threading.RLock()


def make_dynamodb_atomic() -> None:
    """Idempotent: patching twice wraps once."""
    if getattr(DynamoHandler.call_action, "_serialized", False):
        return
    original = DynamoHandler.call_action

    @functools.wraps(original)
    def call_action(self):  # type: ignore[no-untyped-def]
        with _lock:
            return original(self)

    call_action._serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
