"""``client.webhook_endpoints``: the tenant's webhook endpoints (each with its own URL, event filter and
signing secret), their delivery ledgers and replays."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from videojobs.sdk.client import Client


class WebhookEndpoint(BaseModel):
    """An endpoint; ``secret`` only in the answer that created it (see ``WebhookEndpoints.secret``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    url: str
    events: list[str] = []
    description: str | None = None
    disabled: bool = False
    disabled_reason: str | None = None
    created_at: str | None = None
    secret: str | None = None


def _time(moment: datetime | str) -> str:
    return moment.isoformat() if isinstance(moment, datetime) else moment


class WebhookEndpoints:
    def __init__(self, client: Client):
        self._client = client

    def create(
        self, url: str, *, events: Sequence[str] | None = None, description: str | None = None
    ) -> WebhookEndpoint:
        """A new endpoint (with its ``secret``). ``events``: the types it receives; None: every type."""
        body: dict[str, Any] = {"url": url}
        if events is not None:
            body["events"] = list(events)
        if description is not None:
            body["description"] = description
        # Not retried: a lost answer could otherwise make two endpoints.
        answer = self._client._request("POST", "/webhook-endpoints", json=body, idempotent=False)
        return WebhookEndpoint.model_validate(answer.json())

    def list(self) -> builtins.list[WebhookEndpoint]:
        answer = self._client._request("GET", "/webhook-endpoints").json()
        return [WebhookEndpoint.model_validate(item) for item in answer["endpoints"]]

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        return WebhookEndpoint.model_validate(self._client._request("GET", f"/webhook-endpoints/{endpoint_id}").json())

    def update(
        self,
        endpoint_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        disabled: bool | None = None,
    ) -> WebhookEndpoint:
        """Change what is given; ``disabled=False`` re-enables an endpoint disabled for failing."""
        changes = {"url": url, "events": None if events is None else list(events), "description": description}
        body: dict[str, Any] = {name: value for name, value in changes.items() if value is not None}
        if disabled is not None:
            body["disabled"] = disabled
        answer = self._client._request("PATCH", f"/webhook-endpoints/{endpoint_id}", json=body)
        return WebhookEndpoint.model_validate(answer.json())

    def delete(self, endpoint_id: str) -> None:
        self._client._request("DELETE", f"/webhook-endpoints/{endpoint_id}")

    def secret(self, endpoint_id: str) -> str:
        secret: str = self._client._request("GET", f"/webhook-endpoints/{endpoint_id}/secret").json()["secret"]
        return secret

    def rotate_secret(self, endpoint_id: str) -> str:
        """A new secret; for 24 hours deliveries are signed with the old one too."""
        answer = self._client._request("POST", f"/webhook-endpoints/{endpoint_id}/secret/rotate", idempotent=False)
        secret: str = answer.json()["secret"]
        return secret

    def deliveries(
        self, endpoint_id: str, *, status: str | None = None, page_size: int = 20
    ) -> Iterator[dict[str, Any]]:
        """The endpoint's deliveries, newest first (pages fetched as the iteration needs them)."""
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if status is not None:
                params["status"] = status
            if cursor is not None:
                params["cursor"] = cursor
            page = self._client._request("GET", f"/webhook-endpoints/{endpoint_id}/deliveries", params=params).json()
            yield from page["deliveries"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def replay(
        self,
        endpoint_id: str,
        since: datetime | str,
        *,
        until: datetime | str | None = None,
        events: Sequence[str] | None = None,
    ) -> int:
        """Send the window's events again, with their original ``webhook-id``s; returns how many."""
        body: dict[str, Any] = {"since": _time(since)}
        if until is not None:
            body["until"] = _time(until)
        if events is not None:
            body["events"] = list(events)
        # Safe to repeat: receivers drop the duplicates by their webhook-id.
        answer = self._client._request("POST", f"/webhook-endpoints/{endpoint_id}/replay", json=body)
        replayed: int = answer.json()["replayed"]
        return replayed
