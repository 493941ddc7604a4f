"""API Gateway's WebSocket API (``wiring.WEBSOCKET_API``), emulated on the local gateway's port.

``ws://<host>:<port>/ws`` accepts WebSocket connections and turns each into the events AWS sends the
function: ``$connect`` (with the query string and headers; any non-2xx answer refuses the handshake),
one event per message routed on its ``action`` (unknown actions get AWS's ``Forbidden`` message, declared
reply routes send the handler's body back), and ``$disconnect``. ``http://<host>:<port>/ws/@connections/<id>``
is the management API (POST a message, DELETE to close, GET to describe; an unknown connection is 410
``GoneException``), so the same ``apigatewaymanagementapi`` client code that runs in AWS reaches these sockets.

AWS's limits hold here too (``ConnectionLimits``): a message over 128 KB from the client closes the connection
(1009), a reply or post over 128 KB is refused, a connection with no message from its client for 10 minutes
is closed, and so is any connection after 2 hours (1001, "Going away"). Tests shorten the timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from infra.local.functions import Functions
from videojobs import wiring

log = logging.getLogger(__name__)

PATH = "/ws"
MANAGEMENT_PREFIX = f"{PATH}/@connections/"
STAGE = wiring.API_STAGE
API_ID = "local-ws"
MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's WebSocket message limit
GOING_AWAY = 1001
MESSAGE_TOO_BIG = 1009


@dataclass(frozen=True)
class ConnectionLimits:
    """API Gateway's WebSocket quotas: the idle timeout counts from the client's last message (pushes to the
    client do not keep a connection open), the maximum from the handshake."""

    idle_seconds: float = 600
    max_seconds: float = 7200
    max_message_bytes: int = MAX_MESSAGE_BYTES


def gone(connection_id: str) -> JSONResponse:
    """The management API's answer for a connection that is not (or no longer) open."""
    return JSONResponse(
        {"message": f"connection {connection_id} is gone"},
        status_code=410,
        headers={"x-amzn-ErrorType": "GoneException"},
    )


class _Connection:
    def __init__(self, socket: WebSocket):
        self.socket = socket
        self.connected_at = time.time()
        self.last_active_at = self.connected_at
        self.opened = time.monotonic()
        self.last_message = self.opened  # from the client: what the idle timeout counts from
        self.lock = asyncio.Lock()  # one frame at a time: replies and pushes come from different tasks

    async def send(self, text: str) -> None:
        async with self.lock:
            await self.socket.send_text(text)
        self.last_active_at = time.time()


class LocalWebSocketApi:
    """The ASGI side of the WebSocket API: give it every scope for which ``handles`` is true."""

    def __init__(self, functions: Functions, region: str, account_id: str, limits: ConnectionLimits | None = None):
        self._functions = functions
        self._region = region
        self._account_id = account_id
        self._limits = limits or ConnectionLimits()
        self._connections: dict[str, _Connection] = {}  # only touched on the event loop

    @staticmethod
    def handles(scope: Scope) -> bool:
        path = scope.get("path", "")
        return (scope["type"] == "websocket" and path == PATH) or (
            scope["type"] == "http" and path.startswith(MANAGEMENT_PREFIX)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._session(WebSocket(scope, receive, send))
        else:
            response = await self._manage(Request(scope, receive))
            await response(scope, receive, send)

    # --- connections ---------------------------------------------------------------------------------------

    async def _session(self, socket: WebSocket) -> None:
        connection_id = secrets.token_urlsafe(12)
        answer = await self._invoke(self._event(socket, connection_id, "$connect", "CONNECT"))
        status = _status_of(answer)
        if not 200 <= status < 300:
            await self._refuse(socket, status)
            return
        await socket.accept()
        connection = self._connections[connection_id] = _Connection(socket)
        timers = asyncio.create_task(self._expire(connection))
        try:
            while True:
                text = await socket.receive_text()
                connection.last_active_at = time.time()
                connection.last_message = time.monotonic()
                if len(text.encode()) > self._limits.max_message_bytes:
                    await self._close(connection, MESSAGE_TOO_BIG, "Message too big")
                    break
                await self._message(connection, connection_id, text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            timers.cancel()
            self._connections.pop(connection_id, None)
            await self._invoke(self._event(socket, connection_id, "$disconnect", "DISCONNECT"))

    async def _expire(self, connection: _Connection) -> None:
        """Close the connection when it has been idle too long, or open too long."""
        while True:
            now = time.monotonic()
            due = min(connection.last_message + self._limits.idle_seconds, connection.opened + self._limits.max_seconds)
            if now >= due:
                await self._close(connection, GOING_AWAY, "Going away")
                return
            await asyncio.sleep(due - now)

    @staticmethod
    async def _close(connection: _Connection, code: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            async with connection.lock:
                await connection.socket.close(code=code, reason=reason)

    async def _message(self, connection: _Connection, connection_id: str, text: str) -> None:
        route = _route_of(text)
        if route not in wiring.WEBSOCKET_API.routes:
            # What AWS answers when no route (and no $default) matches.
            await connection.send(
                json.dumps({"message": "Forbidden", "connectionId": connection_id, "requestId": str(uuid.uuid4())})
            )
            return
        answer = await self._invoke(self._event(connection.socket, connection_id, route, "MESSAGE", body=text))
        body = answer.get("body") if isinstance(answer, dict) else None
        if route in wiring.WEBSOCKET_API.reply_routes and body:
            if len(body.encode()) > self._limits.max_message_bytes:
                # API Gateway cannot send it: the client gets an error instead of the reply.
                log.error(
                    "%s replied %d bytes to %s: over the WebSocket message limit", route, len(body), connection_id
                )
                body = json.dumps(
                    {"message": "Internal server error", "connectionId": connection_id, "requestId": str(uuid.uuid4())}
                )
            await connection.send(body)

    @staticmethod
    async def _refuse(socket: WebSocket, status: int) -> None:
        # AWS answers the handshake with the handler's status; servers without the denial extension send 403.
        if "websocket.http.response" in socket.scope.get("extensions", {}):
            await socket.send_denial_response(Response(status_code=status))
        else:
            await socket.close(code=1008)

    async def _invoke(self, event: dict[str, Any]) -> Any:
        try:
            return await run_in_threadpool(self._functions.invoke, wiring.WEBSOCKET_API.function, event)
        except Exception:
            log.exception("%s raised on %s", wiring.WEBSOCKET_API.function, event["requestContext"]["routeKey"])
            return {"statusCode": 500}

    # --- management API ------------------------------------------------------------------------------------

    async def _manage(self, request: Request) -> Response:
        connection_id = request.url.path.removeprefix(MANAGEMENT_PREFIX)
        connection = self._connections.get(connection_id)
        if connection is None:
            return gone(connection_id)
        if request.method == "POST":
            data = await request.body()
            if len(data) > self._limits.max_message_bytes:
                return JSONResponse(
                    {"message": "payload too large"},
                    status_code=413,
                    headers={"x-amzn-ErrorType": "PayloadTooLargeException"},
                )
            try:
                await connection.send(data.decode("utf-8", "replace"))
            except (RuntimeError, OSError):
                return gone(connection_id)
            return Response(status_code=200)
        if request.method == "DELETE":
            try:
                async with connection.lock:
                    await connection.socket.close(code=1000)
            except (RuntimeError, OSError):
                return gone(connection_id)
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse(
                {
                    "connectedAt": _iso(connection.connected_at),
                    "lastActiveAt": _iso(connection.last_active_at),
                    "identity": {"sourceIp": _client_ip(connection.socket), "userAgent": None},
                }
            )
        return JSONResponse({"message": "method not allowed"}, status_code=405)

    # --- events --------------------------------------------------------------------------------------------

    def _event(
        self, socket: WebSocket, connection_id: str, route: str, kind: str, body: str | None = None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        context = {
            "routeKey": route,
            "eventType": kind,
            "messageDirection": "IN",
            "connectionId": connection_id,
            "requestId": str(uuid.uuid4()),
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "connectedAt": int(now.timestamp() * 1000),
            "stage": STAGE,
            "apiId": API_ID,
            "domainName": socket.headers.get("host", "localhost"),
            "identity": {"sourceIp": _client_ip(socket), "userAgent": socket.headers.get("user-agent")},
        }
        event: dict[str, Any] = {"requestContext": context, "isBase64Encoded": False}
        if kind == "CONNECT":
            event["headers"] = dict(socket.headers)
            event["multiValueHeaders"] = {name: [value] for name, value in socket.headers.items()}
            query = dict(socket.query_params)
            event["queryStringParameters"] = query or None
            event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
        if body is not None:
            event["body"] = body
        return event


def _route_of(text: str) -> str | None:
    """The route selection expression ``$request.body.action``."""
    try:
        action = json.loads(text).get("action")
    except (ValueError, AttributeError):
        return None
    return action if isinstance(action, str) and not action.startswith("$") else None


def _status_of(answer: Any) -> int:
    try:
        return int(answer.get("statusCode", 200)) if isinstance(answer, dict) else 200
    except (TypeError, ValueError):
        return 500


def _client_ip(socket: WebSocket) -> str:
    return socket.client.host if socket.client else "127.0.0.1"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
