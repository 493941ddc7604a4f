"""Webhook endpoints: a tenant's standing subscriptions to its job events, each with its own URL, event filter,
signing secret and delivery ledger (in addition to a job's own ``webhook_url``).

An endpoint that has answered nothing but failures for a while is disabled (``disabled_reason: "failing"``) and
the tenant's other endpoints, and the event bus, hear of it as an ``endpoint.disabled`` event.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, HttpUrl

from videojobs.models import JobEventType

if TYPE_CHECKING:
    from videojobs.notification_store import EndpointRecord

MAX_ENDPOINTS_PER_TENANT = 20
MAX_REPLAY_EVENTS = 1000
"""Events one replay may resend; a wider window is refused (narrow it, or replay in several windows)."""
ENDPOINT_DISABLED: Literal["endpoint.disabled"] = "endpoint.disabled"
"""The event announcing that an endpoint was disabled for failing; not a job event, so not in the event log."""
DisabledReason = Literal["failing", "manual"]


class EndpointEventType(StrEnum):
    """What an endpoint may subscribe to: every job event, and the disabling of another endpoint."""

    QUEUED = JobEventType.QUEUED.value
    PROCESSING = JobEventType.PROCESSING.value
    COMPLETED = JobEventType.COMPLETED.value
    FAILED = JobEventType.FAILED.value
    CANCELLED = JobEventType.CANCELLED.value
    PROGRESS = JobEventType.PROGRESS.value
    OUTPUT_READY = JobEventType.OUTPUT_READY.value
    PLAYABLE = JobEventType.PLAYABLE.value
    ENDPOINT_DISABLED = ENDPOINT_DISABLED


EventFilter = Annotated[list[EndpointEventType], Field(max_length=len(EndpointEventType))]
Description = Annotated[str, Field(max_length=500)]
EndpointUrl = Annotated[HttpUrl, Field(max_length=2048)]


def new_endpoint_id() -> str:
    return "ep_" + secrets.token_hex(16)


def wants(events: list[str], event_type: str) -> bool:
    """Whether an endpoint with this filter receives ``event_type`` (an empty filter receives everything)."""
    return not events or event_type in events


class _Strict(BaseModel):
    model_config = {"extra": "forbid"}


class CreateEndpointRequest(_Strict):
    url: EndpointUrl
    events: EventFilter | None = None
    """Event types to receive; empty or absent: all of them."""
    description: Description | None = None


class UpdateEndpointRequest(_Strict):
    url: EndpointUrl | None = None
    events: EventFilter | None = None
    description: Description | None = None
    disabled: bool | None = None
    """False re-enables an endpoint (also one disabled for failing); True pauses it."""


class WebhookEndpoint(BaseModel):
    """An endpoint as lists show it: never its secret."""

    id: str
    url: str
    events: list[str]
    description: str | None
    disabled: bool
    disabled_reason: DisabledReason | None
    created_at: str


class WebhookEndpointWithSecret(WebhookEndpoint):
    """An endpoint just created: the only answer, with ``GET /webhook-endpoints/{id}/secret``, that shows it."""

    secret: str


class WebhookEndpointList(BaseModel):
    endpoints: list[WebhookEndpoint]


class ReplayRequest(_Strict):
    since: AwareDatetime
    until: AwareDatetime | None = None
    """Default: now."""
    events: EventFilter | None = None
    """Default: the endpoint's own filter."""


class ReplayResult(BaseModel):
    replayed: int
    """How many events were queued again, each with its original ``webhook-id``."""


class EndpointEvent(BaseModel):
    """``endpoint.disabled``: the body of its webhook and of its event-bus entry's ``Detail``."""

    type: Literal["endpoint.disabled"] = ENDPOINT_DISABLED
    timestamp: str
    data: WebhookEndpoint


def endpoint_view(record: EndpointRecord) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=record.endpoint_id,
        url=record.url,
        events=record.events,
        description=record.description,
        disabled=record.disabled,
        disabled_reason="failing" if record.disabled_reason == "failing" else "manual" if record.disabled else None,
        created_at=record.created_at,
    )
