"""The event-bus adapter. EventBridge answers 200 even when it refused an entry (``FailedEntryCount``, the entry's
``ErrorCode``): moto never does, so this fake client plays that part."""

from __future__ import annotations

import json
from typing import Any

import pytest

from videojobs.event_bus import SOURCE, EventBus, PutEventsFailed, detail


class FakeEvents:
    def __init__(self, answer: dict[str, Any]):
        self.answer = answer
        self.entries: list[dict[str, Any]] = []

    def put_events(self, *, Entries: list[dict[str, Any]]) -> Any:
        self.entries += Entries
        return self.answer


BODY = '{"type":"job.failed","timestamp":"2026-11-30T06:00:00.000Z","data":{"id":"job_1","version":3}}'


def test_an_entry_is_the_webhook_body_with_the_tenant() -> None:
    client = FakeEvents({"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]})
    EventBus(client, "bus").put("job.failed", BODY, "acme")
    [entry] = client.entries
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (SOURCE, "job.failed", "bus")
    assert json.loads(entry["Detail"]) == {**json.loads(BODY), "tenant_id": "acme"}


def test_a_refused_entry_raises_although_the_call_succeeded() -> None:
    refused = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}],
    }
    with pytest.raises(PutEventsFailed, match="ThrottlingException"):
        EventBus(FakeEvents(refused), "bus").put("job.failed", BODY, "acme")


def test_detail_keeps_the_body_fields_in_order() -> None:
    assert list(json.loads(detail(BODY, "t"))) == ["type", "timestamp", "data", "tenant_id"]
