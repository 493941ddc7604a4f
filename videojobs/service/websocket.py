"""The ``websocket`` function's use cases: the WebSocket API's ``$connect``, ``$disconnect`` and ``subscribe``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from videojobs.models import ErrorCode
from videojobs.notification_store import ConnectionStore, EventLog, TicketStore
from videojobs.tenant_counters import OpenStreams, StreamLease
from videojobs.tenant_limits import TenantLimitStore


@dataclass(frozen=True)
class WebSocketDeps:
    tickets: TicketStore
    connections: ConnectionStore
    events: EventLog
    limits: TenantLimitStore
    open_streams: OpenStreams


WEBSOCKET_LEASE_SECONDS = 2 * 3600
"""API Gateway closes any WebSocket after 2 hours: a connection whose ``$disconnect`` never ran stops counting
against its tenant's open streams then."""


SUBSCRIBE_REPLY_LIMIT = 100
"""Events read for one reply to ``subscribe``."""
SUBSCRIBE_REPLY_BYTES = 96 * 1024
"""The events of one reply, in bytes of JSON: API Gateway refuses WebSocket messages over 128 KB."""


def connect(ticket: str | None, connection_id: str, deps: WebSocketDeps) -> bool:
    """``$connect``: a valid ticket (used up now) subscribes the connection to the ticket's job. Raises
    ``LimitReached`` when the tenant already has its ``max_open_streams`` open."""
    redeemed = deps.tickets.redeem(ticket) if ticket else None
    if redeemed is None:
        return False
    job_id, tenant_id = redeemed
    maximum = deps.limits.limits_for(tenant_id).max_open_streams
    deps.open_streams.acquire(tenant_id, connection_id, maximum, WEBSOCKET_LEASE_SECONDS)
    try:
        deps.connections.add(job_id, connection_id, tenant_id)
    except Exception:
        deps.open_streams.release(StreamLease(tenant_id, connection_id))
        raise
    return True


def disconnect(connection_id: str, deps: WebSocketDeps) -> None:
    found = deps.connections.find(connection_id)
    if found is not None:
        job_id, tenant_id = found
        deps.connections.remove(job_id, connection_id)
        deps.open_streams.release(StreamLease(tenant_id, connection_id))


def subscribe(connection_id: str, job_id: str, since_version: int, deps: WebSocketDeps) -> dict[str, Any]:
    """The events the connection missed: those after ``since_version``, oldest first, as many as fit in one
    WebSocket message. ``more`` says there are others: ask again with ``since_version`` = ``next_since_version``.
    From then on, notify pushes each new event. A client that reconnects (a new ticket: API Gateway closes
    idle connections after 10 minutes, and any after 2 hours) subscribes from the last version it saw."""
    if connection_id not in deps.connections.for_job(job_id):
        return {"type": "error", "code": ErrorCode.NOT_FOUND.value, "message": "not subscribed to this job"}
    events = deps.events.after(job_id, since_version, limit=SUBSCRIBE_REPLY_LIMIT + 1)
    picked: list[dict[str, Any]] = []
    size = 0
    for event in events[:SUBSCRIBE_REPLY_LIMIT]:
        data = event.model_dump(mode="json")
        size += len(json.dumps(data).encode()) + 1
        if picked and size > SUBSCRIBE_REPLY_BYTES:
            break
        picked.append(data)
    return {
        "type": "subscribed",
        "job_id": job_id,
        "events": picked,
        "more": len(picked) < len(events),
        "next_since_version": picked[-1]["data"]["version"] if picked else since_version,
    }
