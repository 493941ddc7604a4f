"""SQS fair queues, emulated on moto: a quiet tenant's messages are delivered before a noisy tenant's backlog.

In AWS every standard queue is fair once its messages carry a ``MessageGroupId`` (the tenant): SQS watches each
tenant's share of the queue's consumers and, when one tenant is *noisy*, hands out the other tenants' messages
first. moto 5.2.5 stores ``MessageGroupId`` on standard queues but delivers in arrival order, so a tenant with a
backlog of 100 jobs would delay another tenant's first job by all 100. This module makes moto's ``ReceiveMessage``
pick messages the way AWS describes its algorithm ("How Amazon SQS fair queues work", SQS Developer Guide):

- **Tenants** are message group ids; a message without one is a tenant of its own.
- **Detection**, recomputed at every receive: a tenant is noisy when it holds more than 10 % of the queue's
  in-flight messages and at least 30 of them (concurrency share), or more than 10 % of the consumers' recent
  processing time (processing-time share). Processing time is what a consumer spends on a message: from its
  receive to its delete (or, still in flight, to now), counted over the last ``PROCESSING_WINDOW_SECONDS``.
- **Delivery order**: quiet tenants' messages first, in arrival order; then noisy tenants', the one with the
  fewest in-flight messages first (as AWS does), ties broken by the lesser recent processing time (our choice).
  Nothing is dropped, delayed or throttled: with no quiet message waiting, the noisy tenant's come as usual.

The reordering happens inside the queue, as in AWS: a poller receives one message and it is the fair one. So a
message passed over is never received, and its receive count (which the redrive policy counts to the DLQ) does
not move. Reordering in the poller (receive ten, keep one, release nine) would have marched a backlog to the DLQ.

Where it differs from AWS:
- AWS keeps a tenant flagged as noisy until its backlog is drained or it sent nothing for 5 minutes; here the
  flag is recomputed at each receive, so a noisy tenant whose share falls to 10 % is at once quiet again.
- AWS's thresholds are approximate (a distributed system) and its processing-time window is unpublished; here
  they are exact and the window is ``PROCESSING_WINDOW_SECONDS``.
- With very few consumers (the local stack polls the jobs queue with two), the processing-time share does the
  work: any tenant using two consumers out of two is noisy. AWS advises enough consumers for the concurrency
  share to mean something; the Lambda event source's ``max_concurrency`` (10) is that pool.

``configure(fair=False)`` turns the emulation off (arrival order, as moto alone): the fairness benchmark's
comparison run (``bench/fairness.py``) and ``python -m infra.local --no-fair-queues``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from moto.sqs.models import Message, Queue

NOISY_SHARE = 0.10
"""A tenant above this share of in-flight messages (with ``NOISY_MIN_IN_FLIGHT``) or of processing time is noisy."""
NOISY_MIN_IN_FLIGHT = 30
PROCESSING_WINDOW_SECONDS = 300.0
"""How far back "recent processing time" looks: long enough to cover a few of the jobs queue's jobs."""

_settings = {"fair": True}
_lock = threading.Lock()

Item = TypeVar("Item")


def configure(*, fair: bool = True) -> None:
    """Process-wide, like moto's backends: whether standard queues deliver fairly (True, as AWS does)."""
    _settings["fair"] = fair


@dataclass(frozen=True)
class TenantLoad:
    """What the queue knows of one tenant's use of its consumers right now."""

    in_flight: int = 0
    processing_seconds: float = 0.0


def noisy_tenants(load: Mapping[str, TenantLoad]) -> set[str]:
    """The tenants that AWS's detection would flag (see the module docstring)."""
    total_in_flight = sum(tenant.in_flight for tenant in load.values())
    total_processing = sum(tenant.processing_seconds for tenant in load.values())
    return {
        name
        for name, tenant in load.items()
        if (tenant.in_flight > NOISY_SHARE * total_in_flight and tenant.in_flight >= NOISY_MIN_IN_FLIGHT)
        or (total_processing > 0 and tenant.processing_seconds > NOISY_SHARE * total_processing)
    }


def fair_order(
    items: Iterable[Item], tenant_of: Callable[[Item], str | None], load: Mapping[str, TenantLoad]
) -> list[Item]:
    """``items`` (in arrival order) in the order a fair queue delivers them: quiet tenants first, then noisy
    ones by fewest in-flight messages, then by least recent processing time; arrival order within each."""
    noisy = noisy_tenants(load)
    idle = TenantLoad()

    def rank(entry: tuple[int, Item]) -> tuple[int, int, float, int]:
        arrival, item = entry
        tenant = tenant_of(item)
        if tenant is None or tenant not in noisy:  # no group id: a tenant of its own, so never noisy
            return (0, 0, 0.0, arrival)
        tenant_load = load.get(tenant, idle)
        return (1, tenant_load.in_flight, tenant_load.processing_seconds, arrival)

    return [item for _, item in sorted(enumerate(items), key=rank)]


# --- moto ------------------------------------------------------------------------------------------------


def _now() -> float:
    return time.time()


def _received_at(message: Message) -> float | None:
    received: float | None = message.__dict__.get("_fair_received_at")
    return received


def _in_flight(message: Message, now_ms: float) -> bool:
    return bool(message.approximate_receive_count) and message.visible_at > now_ms


def _finished(queue: Queue) -> deque[tuple[str, float, float]]:
    """(tenant, received, deleted) of the queue's recently deleted messages."""
    finished: deque[tuple[str, float, float]] = queue.__dict__.setdefault("_fair_finished", deque())
    return finished


def tenant_load(queue: Queue, now: float | None = None) -> dict[str, TenantLoad]:
    """Each tenant's in-flight messages and recent processing time in ``queue``."""
    now = _now() if now is None else now
    since = now - PROCESSING_WINDOW_SECONDS
    in_flight: dict[str, int] = {}
    processing: dict[str, float] = {}
    for message in list(queue._messages):
        received = _received_at(message)
        if message.group_id is None or received is None or not _in_flight(message, now * 1000):
            continue
        in_flight[message.group_id] = in_flight.get(message.group_id, 0) + 1
        processing[message.group_id] = processing.get(message.group_id, 0.0) + now - max(received, since)
    with _lock:
        finished = _finished(queue)
        while finished and finished[0][2] < since:
            finished.popleft()
        for tenant, received, deleted in finished:
            processing[tenant] = processing.get(tenant, 0.0) + deleted - max(received, since)
    return {
        tenant: TenantLoad(in_flight.get(tenant, 0), processing.get(tenant, 0.0))
        for tenant in set(in_flight) | set(processing)
    }


def make_sqs_fair() -> None:
    """Patch moto's standard queues to deliver fairly while ``configure(fair=True)`` (the default). Idempotent."""
    arrival_order = vars(Queue)["messages"].fget
    if getattr(arrival_order, "_fair", False):
        return
    original_mark_received = Message.mark_received
    original_delete = Queue.delete_message

    def messages(self: Queue) -> list[Message]:
        visible: list[Message] = arrival_order(self)
        if not _settings["fair"] or self.fifo_queue or len(visible) < 2:
            return visible
        return fair_order(visible, lambda message: message.group_id, tenant_load(self))

    def mark_received(self: Message, visibility_timeout: int | None = None) -> None:
        original_mark_received(self, visibility_timeout)
        self.__dict__["_fair_received_at"] = _now()

    def delete_message(self: Queue, receipt_handle: str) -> None:
        now = _now()
        done = [
            (message.group_id, received)
            for message in self._messages
            if message.had_receipt_handle(receipt_handle)
            and message.group_id is not None
            and (received := _received_at(message)) is not None
            and _in_flight(message, now * 1000)
        ]
        original_delete(self, receipt_handle)
        with _lock:
            for tenant, received in done:
                _finished(self).append((tenant, received, now))

    messages._fair = True  # type: ignore[attr-defined]
    Queue.messages = property(messages)  # type: ignore[method-assign,assignment]
    Message.mark_received = mark_received  # type: ignore[method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign]
