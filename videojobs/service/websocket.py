"""The ``websocket`` function's use cases: the WebSocket API's ``$connect``, ``$disconnect`` and ``subscribe``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from videojobs.models import ErrorCode
from videojobs.notification_store import ConnectionStore, EventLog, TicketStore


@dataclass(frozen=True)
class WebSocketDeps:
    tickets: TicketStore
    connections: ConnectionStore
    events: EventLog


SUBSCRIBE_REPLY_LIMIT = 100
"""Events in one reply to ``subscribe``: a WebSocket message is at most 128 KB."""


def connect(ticket: str | None, connection_id: str, deps: WebSocketDeps) -> bool:
    """``$connect``: a valid ticket (used up now) subscribes the connection to the ticket's job."""
    redeemed = deps.tickets.redeem(ticket) if ticket else None
    if redeemed is None:
        return False
    job_id, tenant_id = redeemed
    deps.connections.add(job_id, connection_id, tenant_id)
    return True


def disconnect(connection_id: str, deps: WebSocketDeps) -> None:
    job_id = deps.connections.job_of(connection_id)
    if job_id is not None:
        deps.connections.remove(job_id, connection_id)


def subscribe(connection_id: str, job_id: str, since_version: int, deps: WebSocketDeps) -> dict[str, Any]:
    """The events the connection missed: those after ``since_version`` (the newest ones if there are many).
    From then on, notify pushes each new event."""
    if connection_id not in deps.connections.for_job(job_id):
        return {"type": "error", "code": ErrorCode.NOT_FOUND.value, "message": "not subscribed to this job"}
    events = deps.events.after(job_id, since_version)
    return {
        "type": "subscribed",
        "job_id": job_id,
        "events": [event.model_dump(mode="json") for event in events[-SUBSCRIBE_REPLY_LIMIT:]],
    }
