"""Webhooks as Standard Webhooks (standardwebhooks.com) defines them: signing, secrets, retries, one POST.

A delivery is one job event for one webhook URL. Its ``webhook-id`` stays the same across every attempt (and
a manual redelivery), so a receiver can drop duplicates; ``webhook-timestamp`` is the attempt's time; the
signature is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` with the tenant's secret (two
signatures, space-separated, while a rotated secret is still honoured). The body is sent exactly as signed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import urllib3
from pydantic import BaseModel

from videojobs.ssrf import Target

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MAX_RETRY_AFTER_SECONDS = 3600
"""A receiver's ``Retry-After`` is honoured up to this; beyond it the schedule goes on."""
MAX_RESPONSE_BYTES = 4096
"""Of a receiver's answer, only this much is read (and kept, shortened, in the ledger)."""
JITTER = 0.1
MAX_ATTEMPTS_KEPT = 20
"""Attempts listed per delivery; older ones are only counted (a DynamoDB item holds at most 400 KB, and
manual redeliveries add attempts without end)."""
REDELIVER_INTERVAL_SECONDS = 60
"""A delivery may be redelivered by hand at most once per this many seconds."""
USER_AGENT = "videojobs-webhooks/1"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Every attempt of the schedule failed, or the receiver answered 410 Gone."""


class DeliveryMessage(BaseModel):
    """The delivery queue's message. ``sequence`` tells a redelivery's message from older ones. A delivery to a
    webhook endpoint names it (and its tenant); ``job_id`` is then "" for an event of no job."""

    job_id: str
    delivery_id: str
    sequence: int = 0
    endpoint_id: str | None = None
    tenant_id: str | None = None


class DeliveryAttempt(BaseModel):
    at: str
    status_code: int | None
    latency_ms: int
    error: str | None = None


class AttemptSummary(BaseModel):
    """Attempts older than the ones a delivery lists, counted (a ledger item holds a bounded number)."""

    count: int
    first_at: str
    last_at: str


class Delivery(BaseModel):
    """A delivery as the ledger shows it (``GET /jobs/{id}/deliveries``); ``id`` is the ``webhook-id``."""

    id: str
    job_id: str | None = None
    """The job whose event it is (None for an endpoint's ``endpoint.disabled``)."""
    event_type: str
    version: int
    url: str
    status: DeliveryStatus
    created_at: str
    next_attempt_at: str | None = None
    attempts: list[DeliveryAttempt]
    """The most recent attempts, oldest first (at most ``MAX_ATTEMPTS_KEPT``)."""
    earlier_attempts: AttemptSummary | None = None


class DeliveryList(BaseModel):
    deliveries: list[Delivery]


class WebhookSecret(BaseModel):
    secret: str
    previous_expires_at: str | None = None
    """After a rotation: until then, deliveries are signed with the previous secret too."""


def delivery_id(job_id: str, version: int) -> str:
    """The ``webhook-id`` of a job's event: derived from the event, so that replaying a stream record or
    retrying a failed fan-out yields the same id, never a second delivery."""
    return f"msg_{job_id.removeprefix('job_')}_{version}"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """One Standard Webhooks signature, ``v1,<base64>``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(signing_secrets: list[str], message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The headers of one attempt, with a signature per secret (the current one first)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(secret, message_id, timestamp, body) for secret in signing_secrets),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


@dataclass(frozen=True)
class Response:
    """What one attempt got: a status code, or an error (refused, timeout, connection failure)."""

    status_code: int | None
    latency_ms: int
    error: str | None = None
    retry_after_seconds: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """410: the receiver asks us to stop for good."""
        return self.status_code == 410


TIMEOUT_ERROR = "timeout"
"""The ledger's ``error`` for an attempt that ran out of time (connecting, sending or waiting for the answer)."""


class _Deadline:
    """A wall-clock limit on one attempt. urllib3's timeouts bound each socket operation, so a receiver that
    trickles a byte at a time would hold an attempt (and the deliverer's Lambda) for as long as it likes; at
    the deadline, this shuts the attempt's socket down, which ends whatever read or write is waiting on it."""

    def __init__(self, seconds: float):
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor of the same connection: it stays valid when TLS takes the original over.
        with self._lock:
            self._sockets.append(sock.dup())
            if self.expired:
                self._shut()

    def _expire(self) -> None:
        with self._lock:
            if not self._done:
                self.expired = True
                self._shut()

    def _shut(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _watched(connection_class: type[Any], deadline: _Deadline) -> type[Any]:
    class Watched(connection_class):  # type: ignore[misc]  # urllib3's connection class, chosen at run time
        def _new_conn(self) -> socket.socket:
            sock: socket.socket = super()._new_conn()
            deadline.watch(sock)
            return sock

    return Watched


def post(target: Target, headers: dict[str, str], body: bytes, timeout_seconds: float) -> Response:
    """POST ``body`` to the checked address of ``target``, with the URL's host name as Host and as TLS server
    name (the certificate is verified against it). No redirects, no retries, at most a few KB read back, and
    at most ``timeout_seconds`` in all, connecting included (then the error is ``timeout``)."""
    started = time.monotonic()
    timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, retries=False, maxsize=1)
    deadline = _Deadline(timeout_seconds)
    pool.ConnectionCls = _watched(pool.ConnectionCls, deadline)
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers={**headers, "host": target.host_header},
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            excerpt = response.read(MAX_RESPONSE_BYTES)
        finally:
            response.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as error:
        if deadline.expired or isinstance(error, urllib3.exceptions.TimeoutError):
            return Response(None, _elapsed_ms(started), TIMEOUT_ERROR)
        return Response(None, _elapsed_ms(started), f"connection failed: {type(error).__name__}")
    finally:
        deadline.finish()
        pool.close()
    if deadline.expired:  # the answer came too slowly, even if some of it arrived
        return Response(None, _elapsed_ms(started), TIMEOUT_ERROR)
    refusal = None
    if not 200 <= response.status < 300:
        text = excerpt.decode("utf-8", "replace").strip()
        refusal = f"HTTP {response.status}" + (f": {text[:200]}" if text else "")
    retry_after = None
    if response.status in (429, 503):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
    return Response(response.status, _elapsed_ms(started), refusal, retry_after)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (it may be a number of seconds or an HTTP date); None if absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def retry_delay(
    attempts_made: int,
    delays: tuple[float, ...],
    retry_after_seconds: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next attempt after ``attempts_made`` failed ones, or None when the schedule is done.
    The scheduled delay gets ±10 % jitter; a receiver's ``Retry-After`` can lengthen it, up to a bound."""
    if attempts_made > len(delays):
        return None
    scheduled = delays[attempts_made - 1] * (1 + (rng or random).uniform(-JITTER, JITTER))
    if retry_after_seconds is not None:
        scheduled = max(scheduled, min(retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
    return scheduled
