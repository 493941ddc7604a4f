"""The local WebSocket API enforces API Gateway's limits: the idle and maximum-duration timers, and 128 KB
messages both ways (the timers are shortened here; the defaults are AWS's 10 minutes and 2 hours)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from infra.local.websocket import PATH, ConnectionLimits, LocalWebSocketApi

# Only guards against a hang: each test waits for something the server must do on its own.
PATIENCE_SECONDS = 30


class FakeFunctions:
    """Accepts every connection; ``subscribe`` answers ``reply``."""

    def __init__(self) -> None:
        self.reply = json.dumps({"type": "subscribed", "events": []})
        self.routes: list[str] = []

    def invoke(self, name: str, event: dict[str, Any]) -> dict[str, Any]:
        self.routes.append(event["requestContext"]["routeKey"])
        return {"statusCode": 200, "body": self.reply}


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeFunctions]]:
    limits = request.param
    functions = FakeFunctions()
    api = LocalWebSocketApi(functions, "us-east-1", "123456789012", limits)  # type: ignore[arg-type]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(api, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"ws://127.0.0.1:{sock.getsockname()[1]}{PATH}", functions
    server.should_exit = True
    thread.join(5)


def closed_code(url: str) -> int | None:
    with connect(url, open_timeout=10) as client:
        try:
            client.recv(timeout=PATIENCE_SECONDS)
        except TimeoutError:
            pytest.fail("the connection was never closed")
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


@pytest.mark.parametrize("served", [ConnectionLimits(idle_seconds=0.5)], indirect=True)
def test_a_connection_without_client_messages_is_closed_when_idle(served):
    url, functions = served
    assert closed_code(url) == 1001
    assert functions.routes[0] == "$connect"


@pytest.mark.parametrize("served", [ConnectionLimits(idle_seconds=0.5, max_seconds=1.5)], indirect=True)
def test_even_a_busy_connection_is_closed_at_the_maximum_duration(served):
    url, _ = served
    started = time.monotonic()
    assert closed_code_busy(url) == 1001
    assert time.monotonic() - started >= 1.5  # it was kept open past the idle timeout by the messages


def closed_code_busy(url: str) -> int | None:
    with connect(url, open_timeout=10) as client:
        deadline = time.monotonic() + PATIENCE_SECONDS
        try:
            while time.monotonic() < deadline:
                client.send(json.dumps({"action": "subscribe", "job_id": "job_1"}))
                client.recv(timeout=PATIENCE_SECONDS)  # the reply
                time.sleep(0.1)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    pytest.fail("the connection was never closed")


@pytest.mark.parametrize("served", [ConnectionLimits()], indirect=True)
def test_a_message_over_128_kb_closes_the_connection_and_a_reply_over_it_is_not_sent(served):
    url, functions = served
    functions.reply = json.dumps({"type": "subscribed", "events": ["x" * 200_000]})
    with connect(url, open_timeout=10, max_size=None) as client:
        client.send(json.dumps({"action": "subscribe", "job_id": "job_1"}))
        assert json.loads(client.recv(timeout=PATIENCE_SECONDS))["message"] == "Internal server error"
    with connect(url, open_timeout=10) as client:
        client.send(json.dumps({"action": "subscribe", "pad": "x" * 140_000}))
        with pytest.raises(ConnectionClosed) as closed:
            client.recv(timeout=PATIENCE_SECONDS)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
