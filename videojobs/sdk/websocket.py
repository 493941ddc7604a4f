"""A job's events over the WebSocket API, surviving API Gateway's closes.

API Gateway closes a WebSocket after 10 minutes without a message from the client and any WebSocket after
2 hours; a ticket opens one connection only. So on any close before the terminal event, this asks for a new
ticket, connects again and subscribes from the last version it yielded: nothing is missed, nothing repeated.
While waiting, it re-sends ``subscribe`` every ``keepalive_seconds``, which keeps the connection from going idle
(and catches up on anything missed). A ``subscribe`` reply holds as many events as fit in one message; with
``more`` set, it asks again from ``next_since_version``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from videojobs.sdk.errors import ApiError, TransportError
from videojobs.sdk.models import JobEvent

TERMINAL_EVENTS = frozenset({"job.completed", "job.failed", "job.cancelled"})
KEEPALIVE_SECONDS = 300.0  # half of API Gateway's 10-minute idle timeout
OPEN_TIMEOUT_SECONDS = 10.0


class JobEventSocket:
    """Iterate for the job's events after ``since_version``, in order, until its terminal event.

    :param new_ticket: returns a fresh ``{"url": ...}`` from ``POST /jobs/{id}/ws-ticket`` (one per connection).
    :param max_failures: connections in a row that may fail to open before ``TransportError``.
    """

    def __init__(
        self,
        job_id: str,
        new_ticket: Callable[[], dict[str, Any]],
        *,
        since_version: int = 0,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        max_failures: int = 3,
    ):
        self.job_id = job_id
        self.last_version = since_version
        self.connections = 0
        """Connections opened so far (more than one: it reconnected)."""
        self._new_ticket = new_ticket
        self._keepalive = keepalive_seconds
        self._max_failures = max_failures

    def __iter__(self) -> Iterator[JobEvent]:
        failures = 0
        while True:
            url = self._new_ticket()["url"]
            try:
                with connect(url, open_timeout=OPEN_TIMEOUT_SECONDS) as socket:
                    self.connections += 1
                    failures = 0
                    for event in self._events(socket):
                        self.last_version = event.data.version
                        yield event
                        if event.type in TERMINAL_EVENTS:
                            return
            except ConnectionClosed:
                pass  # closed by API Gateway (idle, 2 hours) or by the service: reconnect and catch up
            except (InvalidHandshake, OSError) as error:
                failures += 1
                if failures > self._max_failures:
                    raise TransportError(f"cannot open the WebSocket of {self.job_id}: {error}") from error

    def _events(self, socket: ClientConnection) -> Iterator[JobEvent]:
        """The connection's events in version order. Pushes start at ``$connect``, before the catch-up reply:
        they wait until the catch-up is complete, so that an older event in it is not skipped."""
        self._subscribe(socket)
        catching_up = True
        waiting: list[JobEvent] = []
        newest = self.last_version
        while True:
            try:
                text = socket.recv(timeout=self._keepalive)
            except TimeoutError:
                self._subscribe(socket)  # a client message keeps the connection from idling out
                continue
            message = json.loads(text)
            if message.get("type") == "error":
                raise ApiError(400, message.get("code", "error"), message.get("message", ""))
            if message.get("type") == "subscribed":
                found = [JobEvent.model_validate(item) for item in message.get("events", [])]
                if message.get("more"):
                    self._subscribe(socket, message.get("next_since_version"))
                elif catching_up:
                    catching_up = False
                    found += waiting
                    waiting = []
            elif "data" in message and "type" in message:
                found = [JobEvent.model_validate(message)]
                if catching_up:
                    waiting += found
                    continue
            else:
                continue  # e.g. API Gateway's own {"message": ...} answers
            for event in sorted(found, key=lambda event: event.data.version):
                if event.data.version > newest:  # a push that a catch-up already gave, or the reverse
                    newest = event.data.version
                    yield event

    def _subscribe(self, socket: ClientConnection, since_version: int | None = None) -> None:
        since = self.last_version if since_version is None else since_version
        socket.send(json.dumps({"action": "subscribe", "job_id": self.job_id, "since_version": since}))
