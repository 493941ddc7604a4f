"""``Client.follow`` against a scripted WebSocket server: it reconnects with a new ticket when API Gateway closes
the connection and resumes from the last version seen, pages a capped catch-up, and never skips an event that a
push overtook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.server import ServerConnection, serve

from videojobs.sdk.websocket import JobEventSocket


def event(version: int, kind: str = "job.progress") -> dict[str, Any]:
    status = {"job.completed": "completed"}.get(kind, "processing")
    data = {"id": "job_1", "status": status, "progress": 0, "version": version, "outputs": []}
    return {"type": kind, "timestamp": "2026-01-01T00:00:00Z", "data": data}


class ScriptedServer:
    """Each connection runs the next script: it gets the connection and the subscribe requests it received."""

    def __init__(self, *scripts: Any):
        self.scripts = list(scripts)
        self.subscribes: list[list[int]] = []
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/ws"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handle(self, connection: ServerConnection) -> None:
        seen: list[int] = []
        self.subscribes.append(seen)
        self.scripts.pop(0)(connection, seen)

    def close(self) -> None:
        self._server.shutdown()


def since(connection: ServerConnection, seen: list[int]) -> int:
    request = json.loads(connection.recv(timeout=10))
    assert request["action"] == "subscribe" and request["job_id"] == "job_1"
    seen.append(request["since_version"])
    return request["since_version"]


@pytest.fixture
def tickets() -> Iterator[list[str]]:
    yield []


def follow(server: ScriptedServer, tickets: list[str]) -> JobEventSocket:
    def new_ticket() -> dict[str, str]:
        tickets.append(f"wst_{len(tickets)}")
        return {"url": f"{server.url}?ticket={tickets[-1]}"}

    return JobEventSocket("job_1", new_ticket)


def test_a_closed_connection_is_reopened_with_a_new_ticket_and_resumes_after_the_last_version(tickets):
    def first(connection: ServerConnection, seen: list[int]) -> None:
        since(connection, seen)
        connection.send(json.dumps({"type": "subscribed", "job_id": "job_1", "events": [event(1), event(2)]}))
        connection.close(code=1001, reason="Going away")  # API Gateway's 2-hour (or idle) limit

    def second(connection: ServerConnection, seen: list[int]) -> None:
        since(connection, seen)
        # A push overtakes the catch-up reply: it must not make the SDK skip version 3.
        connection.send(json.dumps(event(5, "job.completed")))
        reply = {"type": "subscribed", "job_id": "job_1", "events": [event(3)], "more": True, "next_since_version": 3}
        connection.send(json.dumps(reply))
        assert since(connection, seen) == 3
        reply = {"type": "subscribed", "job_id": "job_1", "events": [event(4), event(5, "job.completed")]}
        connection.send(json.dumps(reply))

    server = ScriptedServer(first, second)
    try:
        socket = follow(server, tickets)
        versions = [item.data.version for item in socket]
    finally:
        server.close()
    assert versions == [1, 2, 3, 4, 5]
    assert tickets == ["wst_0", "wst_1"] and socket.connections == 2
    assert server.subscribes == [[0], [2, 3]]


def test_an_error_reply_raises_instead_of_reconnecting_forever(tickets):
    def refuse(connection: ServerConnection, seen: list[int]) -> None:
        since(connection, seen)
        connection.send(json.dumps({"type": "error", "code": "not_found", "message": "not subscribed to this job"}))

    server = ScriptedServer(refuse)
    try:
        with pytest.raises(Exception, match="not_found"):
            list(follow(server, tickets))
    finally:
        server.close()
