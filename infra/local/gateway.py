"""API Gateway (REST, stage ``v1``) in front of the functions: HTTP in, Lambda proxy events out.

It does what the deployed API does before and after a handler runs: route matching on ``wiring.ROUTES``, the
REQUEST authorizer with its identity source and result cache, the 10 MB payload limit, the gateway responses
the CDK stack configures (our JSON error shape), and the mapping of the proxy response back to HTTP.

What a failed invocation becomes is API Gateway's answer: a function error (the handler raised, timed out or
returned an oversized or non-JSON result) is 502, a throttled invocation 500 (API Gateway never passes Lambda's
429 on), an event over Lambda's 6 MB 413. ``custom_domain=True`` serves the API as a custom domain with the
base-path mapping does: only under ``/v1``, with the base path kept in the event's ``path``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from infra.local.functions import FunctionError, Functions, RequestTooLarge, Throttled
from infra.local.websocket import ConnectionLimits, LocalWebSocketApi
from videojobs import lambda_streaming, wiring
from videojobs.usage_plans import UsagePlans

log = logging.getLogger(__name__)

STAGE = wiring.API_STAGE
API_ID = "local"
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
INTEGRATION_TIMEOUT_SECONDS = 29  # API Gateway's integration timeout
AUTHORIZER_CACHE_SECONDS = wiring.AUTHORIZER_CACHE_SECONDS


class AuthorizerError(Exception):
    """The authorizer answered something API Gateway rejects (AuthorizerConfigurationException in AWS)."""


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def gateway_error(response_type: str) -> JSONResponse:
    """One of the gateway responses the wiring declares (``wiring.GATEWAY_ERRORS``), as the CDK stack answers it."""
    declared = wiring.GATEWAY_ERRORS[response_type]
    if declared.status is None or declared.message is None:
        raise ValueError(f"{response_type} keeps API Gateway's own status or message")
    return error(declared.status, str(declared.code), declared.message, dict(declared.headers) or None)


@dataclass(frozen=True)
class CompiledRoute:
    route: wiring.Route
    pattern: re.Pattern[str]
    static_segments: int


def compile_route(route: wiring.Route) -> CompiledRoute:
    """``/jobs/{id}`` -> a pattern capturing ``id`` from one path segment (``{name+}`` takes the rest)."""
    parts, static = [], 0
    for segment in route.path.strip("/").split("/"):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        single = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif single:
            parts.append(f"(?P<{single.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            static += 1
    return CompiledRoute(route, re.compile("/" + "/".join(parts)), static)


def canonical_header(name: str) -> str:
    """ASGI servers lowercase header names; restore the usual capitalisation (as Go's net/http does), which is
    what HTTP/1.1 clients such as curl and browsers send. Handlers must still compare names case-insensitively:
    HTTP/2 clients send lowercase names."""
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


def policy_allows(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM evaluation of an authorizer's policy for one method ARN: an explicit Deny wins, else an Allow is needed.

    API Gateway evaluates the cached policy against every request, so a policy that names only the first
    request's method denies the others."""
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    allowed = False
    for statement in statements:
        if not (
            _matches_any(statement.get("Action", []), "execute-api:Invoke")
            and _matches_any(statement.get("Resource", []), method_arn)
        ):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _matches_any(patterns: str | list[str], value: str) -> bool:
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
        if re.fullmatch(regex, value, flags=re.IGNORECASE if pattern.startswith("execute-api:") else 0):
            return True
    return False


@dataclass
class _CachedPolicy:
    expires: float
    principal_id: str
    policy: dict[str, Any]
    context: dict[str, str]
    usage_identifier_key: str | None = None


@dataclass
class _TokenBucket:
    """API Gateway's throttle of one key: ``rate`` tokens a second, at most ``burst`` saved, one per request."""

    tokens: float
    updated: float
    plan: tuple[float, int]

    def take(self, rate: float, burst: int, now: float) -> bool:
        self.tokens = min(float(burst), self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class UsagePlanThrottle:
    """Usage plans as API Gateway applies them to a method that requires an API key: the key the authorizer
    named must be in a plan of the stage (else 403 ``INVALID_API_KEY``), whose token bucket it must pass (else
    429 ``THROTTLED``). Plans are read from moto at each request, so a changed rate holds from the next one."""

    def __init__(self, plans: UsagePlans, clock: Any = time.monotonic):
        self._plans = plans
        self._clock = clock
        self._buckets: dict[str, _TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, key_value: str | None) -> str | None:
        """None when the request may go on, else the gateway response type that refuses it."""
        throttle = self._plans.throttle_for(key_value) if key_value else None
        if throttle is None:
            return "INVALID_API_KEY"
        rate, burst = throttle
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key_value or "")
            if bucket is None or bucket.plan != throttle:  # a key moved to another plan starts a new bucket
                bucket = self._buckets[key_value or ""] = _TokenBucket(float(burst), now, throttle)
            return None if bucket.take(rate, burst, now) else "THROTTLED"


class LocalGateway:
    """The ASGI application. ``functions`` runs the handlers; ``region`` and ``account_id`` fill ARNs."""

    def __init__(
        self,
        functions: Functions,
        region: str,
        account_id: str,
        integration_timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS,
        authorizer_cache_seconds: float = AUTHORIZER_CACHE_SECONDS,
        custom_domain: bool = False,
        binary_media_types: Iterable[str] = wiring.BINARY_MEDIA_TYPES,
        websocket_limits: ConnectionLimits | None = None,
        usage_plans: UsagePlanThrottle | None = None,
        response_streaming: wiring.ResponseStreaming | None = wiring.RESPONSE_STREAMING,
    ):
        """``usage_plans``: throttle each tenant as its usage plan says (the local stack always passes it);
        None leaves API keys out, for tests of other behaviours. ``response_streaming``: the limits of streamed
        responses, for routes whose function has a ``stream_handler`` (as the CDK stack streams them by
        default); None buffers every response, as the stack's long-poll fallback does."""
        self._functions = functions
        self._usage_plans = usage_plans
        self._authorizer_cache_seconds = authorizer_cache_seconds
        self._custom_domain = custom_domain
        self._binary_media_types = tuple(binary_media_types)
        self._region = region
        self._account_id = account_id
        self._integration_timeout = integration_timeout_seconds
        self._routes = sorted((compile_route(route) for route in wiring.ROUTES), key=lambda r: -r.static_segments)
        self._policies: dict[str, _CachedPolicy] = {}  # only touched on the event loop: no lock
        self._route_lock = threading.Lock()
        self._websocket = LocalWebSocketApi(functions, region, account_id, websocket_limits)
        self._streaming = response_streaming
        self.streams_cut = 0
        """Streamed responses API Gateway cut (past their maximum duration or idle too long)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._websocket.handles(scope):  # the WebSocket API and its management endpoint
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":  # uvicorn runs with lifespan off; nothing else is served
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except Exception:
            log.exception("local gateway failed on %s %s", request.method, request.url.path)
            response = error(500, "internal_error", "internal server error")
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response | _StreamedResponse:
        called_path = request.url.path
        base = f"/{wiring.API_BASE_PATH if self._custom_domain else STAGE}"
        if self._custom_domain and not called_path.startswith(f"{base}/"):
            return gateway_error("MISSING_AUTHENTICATION_TOKEN")  # no base-path mapping for it
        # Otherwise served both at the root and under the stage prefix, so that links built from the request
        # context (``requestContext.path`` carries the stage in AWS) work locally too.
        path = called_path.removeprefix(base) if called_path.startswith(f"{base}/") else called_path
        found = self._match(path)
        if found is None:
            return gateway_error("MISSING_AUTHENTICATION_TOKEN")
        candidates, params = found
        route = next((c for c in candidates if c.method == request.method), None)
        if route is None:
            allow = ", ".join(sorted(c.method for c in candidates))
            return error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here (allowed: {allow})",
                headers={"Allow": allow},
            )

        body = await _read_body(request)
        if body is None:
            return gateway_error("REQUEST_TOO_LARGE")
        # Behind a custom domain, the event's ``path`` keeps the base path; ``resource`` never has it.
        event = self._proxy_event(
            request, route, called_path if self._custom_domain else path, called_path, params, body
        )

        if route.authorized:
            denied = await self._authorize(request, event, path)
            if denied is not None:
                return denied

        if self._streaming is not None and route.long_poll and wiring.FUNCTIONS[route.function].stream_handler:
            return await self._stream(route, event, request.method, path, self._streaming)
        run = _in_daemon_thread if route.long_poll else run_in_threadpool
        call = asyncio.ensure_future(run(self._invoke_route, route, event))
        done, _ = await asyncio.wait({call}, timeout=self._integration_timeout)
        if not done:  # the handler thread runs on (nothing can stop it); the client gets API Gateway's answer
            log.error(
                "%s did not answer %s %s within %s s", route.function, request.method, path, self._integration_timeout
            )
            return error(504, "internal_error", "endpoint request timed out")
        try:
            result = call.result()
        except RequestTooLarge:
            return gateway_error("REQUEST_TOO_LARGE")
        except Throttled:
            log.warning("%s throttled on %s %s", route.function, request.method, path)
            return error(500, "internal_error", "internal server error")
        except FunctionError:
            log.exception("%s failed on %s %s", route.function, request.method, path)
            return error(502, "internal_error", "internal server error")
        return _to_response(route.function, result, self._binary_response(request))

    def _binary_response(self, request: Request) -> bool:
        """API Gateway decodes a base64 proxy response only when the request accepts a binary media type."""
        accepted = [part.split(";")[0].strip() for part in request.headers.get("accept", "").split(",")]
        return any(_media_type_matches(kind, self._binary_media_types) for kind in accepted if kind)

    def _invoke_route(self, route: wiring.Route, event: dict[str, Any]) -> Any:
        # One at a time: Powertools' REST resolver keeps the current event in a class attribute shared by every
        # resolver in the process, so two handlers resolving at once would read each other's request. In AWS
        # each invocation has its own process. Long polls are plain handlers and may wait: they run alongside.
        if route.long_poll:
            return self._functions.invoke(route.function, event)
        with self._route_lock:
            return self._functions.invoke(route.function, event)

    async def _stream(
        self, route: wiring.Route, event: dict[str, Any], method: str, path: str, limits: wiring.ResponseStreaming
    ) -> Response | _StreamedResponse:
        """A response streamed as the function sends it (``ResponseTransferMode.STREAM``): API Gateway starts
        answering once the metadata arrived, and cuts the response at ``limits.max_seconds`` or after
        ``limits.idle_seconds`` with nothing sent (the client sees the connection close mid-body)."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        cancelled = threading.Event()

        def produce() -> None:
            def put(item: bytes | BaseException | None) -> None:
                with contextlib.suppress(RuntimeError):  # the server stopped meanwhile
                    loop.call_soon_threadsafe(chunks.put_nowait, item)

            try:
                for chunk in self._functions.invoke_stream(route.function, event, cancelled):
                    put(chunk)
            except Exception as failure:
                put(failure)
            put(None)

        threading.Thread(target=produce, name="response-stream", daemon=True).start()
        started = time.monotonic()
        prelude = b""
        try:
            while lambda_streaming.DELIMITER not in prelude:
                item = await asyncio.wait_for(chunks.get(), timeout=limits.max_seconds)
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    raise FunctionError(route.function, "Runtime.MalformedResponse", "the stream ended early")
                prelude += item
            metadata, _, rest = prelude.partition(lambda_streaming.DELIMITER)
            status, headers = lambda_streaming.decode_metadata(metadata)
        except TimeoutError:
            cancelled.set()
            return error(504, "internal_error", "endpoint request timed out")
        except RequestTooLarge:
            return gateway_error("REQUEST_TOO_LARGE")
        except Throttled:
            log.warning("%s throttled on %s %s", route.function, method, path)
            return error(500, "internal_error", "internal server error")
        except FunctionError:
            log.exception("%s failed on %s %s", route.function, method, path)
            return error(502, "internal_error", "internal server error")
        except (KeyError, TypeError, ValueError) as failure:
            cancelled.set()
            log.error("%s streamed malformed metadata: %s", route.function, failure)
            return error(502, "internal_error", "malformed Lambda proxy response")
        return _StreamedResponse(self, status, headers, rest, chunks, cancelled, started, limits)

    def _match(self, path: str) -> tuple[list[wiring.Route], dict[str, str]] | None:
        """The routes of the most specific matching resource (static segments win, as in API Gateway)."""
        for compiled in self._routes:
            match = compiled.pattern.fullmatch(path)
            if match:
                template = compiled.route.path
                return [c.route for c in self._routes if c.route.path == template], match.groupdict()
        return None

    # --- events --------------------------------------------------------------------------------------------

    def _proxy_event(
        self, request: Request, route: wiring.Route, path: str, called_path: str, params: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        client_ip = request.client.host if request.client else "127.0.0.1"
        headers, multi_headers = _headers(request, client_ip)
        query, multi_query = _query(request)
        is_base64 = _media_type_matches(headers.get("Content-Type", ""), self._binary_media_types)
        text = _body_text(body, is_base64)
        now = datetime.now(UTC)
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": request.method,
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self._account_id,
                "apiId": API_ID,
                "stage": STAGE,
                "requestId": str(uuid.uuid4()),
                "extendedRequestId": str(uuid.uuid4()),
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "httpMethod": request.method,
                # The path as the client called it: with the stage prefix in AWS and when called so locally.
                "path": called_path,
                "resourcePath": route.path,
                "resourceId": f"{API_ID}-{route.method}-{route.path}",
                "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
                "domainName": headers.get("Host", "localhost"),
                "domainPrefix": headers.get("Host", "localhost").split(".")[0],
                "identity": {
                    "sourceIp": client_ip,
                    "userAgent": headers.get("User-Agent"),
                    "accessKey": None,
                    "accountId": None,
                    "apiKey": None,
                    "apiKeyId": None,
                    "caller": None,
                    "cognitoAuthenticationProvider": None,
                    "cognitoAuthenticationType": None,
                    "cognitoIdentityId": None,
                    "cognitoIdentityPoolId": None,
                    "principalOrgId": None,
                    "user": None,
                    "userArn": None,
                    "clientCert": None,
                },
            },
            "body": text,
            "isBase64Encoded": is_base64,
        }

    def _method_arn(self, event: dict[str, Any], api_path: str) -> str:
        return (
            f"arn:aws:execute-api:{self._region}:{self._account_id}:{API_ID}/{STAGE}/"
            f"{event['httpMethod']}/{api_path.lstrip('/')}"
        )

    # --- authorizer ----------------------------------------------------------------------------------------

    async def _authorize(self, request: Request, event: dict[str, Any], api_path: str) -> Response | None:
        """None when the request may go on (``event`` then carries the authorizer's context), else the answer."""
        token = request.headers.get("authorization")
        if not token:  # the identity source is missing: API Gateway answers without calling the authorizer
            return gateway_error("UNAUTHORIZED")
        method_arn = self._method_arn(event, api_path)
        cached = self._policies.get(token)
        if cached is None or cached.expires <= time.monotonic():
            authorizer_event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                **{
                    key: event[key]
                    for key in (
                        "resource",
                        "path",
                        "httpMethod",
                        "headers",
                        "multiValueHeaders",
                        "queryStringParameters",
                        "multiValueQueryStringParameters",
                        "pathParameters",
                        "stageVariables",
                    )
                },
                "requestContext": dict(event["requestContext"]),
            }
            try:
                result = await run_in_threadpool(self._functions.invoke, wiring.AUTHORIZER, authorizer_event)
                cached = _parse_authorizer_result(result, self._authorizer_cache_seconds)
            except Throttled:  # AUTHORIZER_FAILURE: 500, which the stack's DEFAULT_5XX response shapes
                log.warning("%s throttled on %s %s", wiring.AUTHORIZER, request.method, api_path)
                return error(500, "internal_error", "internal server error")
            except Exception as failure:
                # The documented way to a 401 is an authorizer failing with this exact message, which Lambda
                # counts as a function error; ours answers Deny instead (ACCESS_DENIED, mapped to 401).
                if isinstance(failure, FunctionError) and str(failure.__cause__) == "Unauthorized":
                    return gateway_error("UNAUTHORIZED")
                log.exception("authorizer failed")
                return error(500, "internal_error", "authorizer configuration error")
            self._policies[token] = cached
        if not policy_allows(cached.policy, method_arn):
            return gateway_error("ACCESS_DENIED")
        if self._usage_plans is not None:
            refused = await run_in_threadpool(self._usage_plans.check, cached.usage_identifier_key)
            if refused is not None:
                return gateway_error(refused)
        event["requestContext"]["authorizer"] = {
            "principalId": cached.principal_id,
            **cached.context,
            "integrationLatency": 0,
        }
        return None


class _StreamedResponse:
    """The ASGI side of a streamed response: each chunk written as it arrives, under API Gateway's limits."""

    def __init__(
        self,
        gateway: LocalGateway,
        status: int,
        headers: dict[str, str],
        first: bytes,
        chunks: asyncio.Queue[bytes | BaseException | None],
        cancelled: threading.Event,
        started: float,
        limits: wiring.ResponseStreaming,
    ):
        self._gateway, self._status, self._headers, self._first = gateway, status, headers, first
        self._chunks, self._cancelled, self._started, self._limits = chunks, cancelled, started, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.ensure_future(self._watch_disconnect(receive))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self._status,
                    "headers": list(_raw_headers({name: [value] for name, value in self._headers.items()})),
                }
            )
            if self._first:
                await send({"type": "http.response.body", "body": self._first, "more_body": True})
            while True:
                now = time.monotonic()
                left = self._started + self._limits.max_seconds - now
                try:
                    item = await asyncio.wait_for(self._chunks.get(), timeout=min(self._limits.idle_seconds, left))
                except TimeoutError:
                    # API Gateway closes the connection: no last chunk, so the client sees the body cut short.
                    self._gateway.streams_cut += 1
                    log.warning("a streamed response was cut (idle or past %s s)", self._limits.max_seconds)
                    return
                if item is None:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if isinstance(item, BaseException):  # the function failed mid-stream: the stream just stops
                    log.error("a streaming function failed mid-stream: %s", item)
                    self._gateway.streams_cut += 1
                    return
                await send({"type": "http.response.body", "body": item, "more_body": True})
        finally:
            self._cancelled.set()
            watcher.cancel()

    async def _watch_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self._cancelled.set()


async def _in_daemon_thread(function: Any, *args: Any) -> Any:
    """Run a long poll in a thread of its own that does not hold up the process's exit (the thread pool's do)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(outcome: Any, failed: bool) -> None:
        if not future.done():
            (future.set_exception if failed else future.set_result)(outcome)

    def run() -> None:
        try:
            outcome, failed = function(*args), False
        except Exception as failure:
            outcome, failed = failure, True
        with contextlib.suppress(RuntimeError):  # the server stopped meanwhile: nobody waits for the answer
            loop.call_soon_threadsafe(settle, outcome, failed)

    threading.Thread(target=run, name="long-poll", daemon=True).start()
    return await future


def _parse_authorizer_result(result: Any, cache_seconds: float) -> _CachedPolicy:
    if (
        not isinstance(result, dict)
        or not result.get("principalId")
        or not isinstance(result.get("policyDocument"), dict)
    ):
        raise AuthorizerError("the authorizer must return principalId and policyDocument")
    context = {}
    for key, value in (result.get("context") or {}).items():
        # API Gateway accepts only flat string, number and boolean values, and hands them on as strings.
        if isinstance(value, dict | list):
            raise AuthorizerError(f"authorizer context value {key!r} is not a string, number or boolean")
        if value is not None:
            context[key] = str(value).lower() if isinstance(value, bool) else str(value)
    key = result.get("usageIdentifierKey")
    return _CachedPolicy(
        time.monotonic() + cache_seconds,
        str(result["principalId"]),
        result["policyDocument"],
        context,
        str(key) if key else None,
    )


# --- request and response mapping --------------------------------------------------------------------------


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds API Gateway's limit (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _headers(request: Request, client_ip: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    multi: dict[str, list[str]] = {}
    for raw_name, raw_value in request.headers.raw:
        multi.setdefault(canonical_header(raw_name.decode("latin-1")), []).append(raw_value.decode("latin-1"))
    # Headers API Gateway adds on the way in.
    forwarded = multi.get("X-Forwarded-For", [])
    multi["X-Forwarded-For"] = [", ".join([*forwarded, client_ip])]
    multi.setdefault("X-Forwarded-Proto", [request.url.scheme])
    multi.setdefault("X-Forwarded-Port", [str(request.url.port or (443 if request.url.scheme == "https" else 80))])
    return {name: values[-1] for name, values in multi.items()}, multi


def _query(request: Request) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    pairs = parse_qsl(request.scope.get("query_string", b"").decode("utf-8", "replace"), keep_blank_values=True)
    if not pairs:
        return None, None
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _media_type_matches(content_type: str, binary_media_types: Iterable[str]) -> bool:
    """Whether a Content-Type or Accept type is one of ``binaryMediaTypes`` (which may hold wildcards)."""
    kind = content_type.split(";")[0].strip().lower()
    return bool(kind) and any(
        re.fullmatch(re.escape(pattern.lower()).replace(r"\*", ".*"), kind) for pattern in binary_media_types
    )


def _body_text(body: bytes, is_base64: bool) -> str | None:
    """The event's body: base64 for a binary media type; else text, as API Gateway passes any other body
    (bytes that are not UTF-8 do not survive as they were)."""
    if not body:
        return None
    return base64.b64encode(body).decode() if is_base64 else body.decode("utf-8", errors="replace")


def _to_response(function: str, result: Any, binary: bool) -> Response:
    """A Lambda proxy response as HTTP; a malformed one is a 502, as API Gateway answers it."""
    try:
        if not isinstance(result, dict):
            raise TypeError(f"the response is a {type(result).__name__}, not an object")
        status = int(result["statusCode"])
        body = result.get("body")
        if body is not None and not isinstance(body, str):
            raise TypeError("body must be a string")
        # A base64 body stays base64 text unless the request accepts a binary media type.
        content = base64.b64decode(body or "") if result.get("isBase64Encoded") and binary else (body or "").encode()
        multi: dict[str, list[str]] = {
            name: [str(value) for value in values] for name, values in (result.get("multiValueHeaders") or {}).items()
        }
        for name, value in (result.get("headers") or {}).items():
            multi.setdefault(name, [str(value)])
    except (KeyError, TypeError, ValueError, AttributeError) as failure:
        log.error("%s returned a malformed proxy response: %s", function, failure)
        return error(502, "internal_error", "malformed Lambda proxy response")
    response = Response(content=content, status_code=status)
    response.raw_headers.extend(_raw_headers(multi))
    return response


def _raw_headers(headers: dict[str, list[str]]) -> Iterable[tuple[bytes, bytes]]:
    for name, values in headers.items():
        if name.lower() in ("content-length", "transfer-encoding", "connection"):
            continue  # framing is the server's business
        for value in values:
            yield name.lower().encode("latin-1"), value.encode("latin-1")
