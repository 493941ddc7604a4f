"""DNS rebinding: a web page on evil.example that rebinds its name to 127.0.0.1 sends ``Host: evil.example``.
Every route of the local stack (the dev key in /config.json, the API, the WebSocket) answers only loopback names."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from infra.local.websocket import PATH as WEBSOCKET_PATH
from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e

REFUSED_HOSTS = ["evil.example", "evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example", ""]
ALLOWED_HOSTS = ["127.0.0.1", "127.0.0.1:9", "localhost", "localhost:8080", "[::1]", "[::1]:8080", "LOCALHOST"]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
@pytest.mark.parametrize(("method", "path"), [("GET", "/config.json"), ("GET", "/jobs"), ("POST", "/uploads")])
def test_a_foreign_host_is_refused_on_every_route(stack: RunningStack, host: str, method: str, path: str) -> None:
    with stack.client() as api:
        response = api.request(method, path, headers={"Host": host}, json={})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "api_key" not in response.text


@pytest.mark.parametrize("host", ALLOWED_HOSTS)
def test_loopback_names_on_any_port_are_served(stack: RunningStack, host: str) -> None:
    with stack.client() as api:
        assert api.get("/config.json", headers={"Host": host}).json()["api_key"] == stack.api_key
        assert api.get("/jobs", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize(("host", "status"), [("evil.example", b"403"), ("localhost", b"401")])
def test_a_websocket_handshake_from_a_foreign_host_is_refused(stack: RunningStack, host: str, status: bytes) -> None:
    # A raw handshake: WebSocket clients set Host from the URL. (401: a loopback host reaches the ticket check.)
    address = urlsplit(stack.url)
    handshake = (
        f"GET {WEBSOCKET_PATH}?ticket=wst_forged HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(handshake.encode())
        assert connection.recv(4096).split(b" ", 2)[1] == status
