"""Amazon EventBridge: every job event (and ``endpoint.disabled``) is also put on an event bus, so integrators
route them with rules (to SQS, SNS, Step Functions, another account…) without running a webhook receiver.

An entry is ``Source: "videojobs"``, ``DetailType`` the event type and ``Detail`` the webhook body plus the
``tenant_id``.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

SOURCE = "videojobs"


class PutEventsClient(Protocol):
    """The one call of an ``events`` client this uses."""

    def put_events(self, *, Entries: list[dict[str, Any]]) -> Any: ...


class PutEventsFailed(Exception):
    """EventBridge refused the entry (throttled, say): the caller's retry puts it again."""


def detail(body: str, tenant_id: str) -> str:
    """The entry's ``Detail``: the webhook body (the event's JSON) with the tenant added."""
    return json.dumps({**json.loads(body), "tenant_id": tenant_id}, separators=(",", ":"))


class EventBus:
    def __init__(self, client: PutEventsClient, bus_name: str):
        self._client = client
        self._bus_name = bus_name

    def put(self, event_type: str, body: str, tenant_id: str) -> None:
        """Put one event on the bus; ``PutEventsFailed`` if EventBridge did not take it."""
        answer = self._client.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": event_type,
                    "Detail": detail(body, tenant_id),
                    "EventBusName": self._bus_name,
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            entry = (answer.get("Entries") or [{}])[0]
            raise PutEventsFailed(f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
