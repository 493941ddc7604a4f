"""A received message's visibility, against SQS's rule (which moto does not enforce): a visibility may not end
more than 12 h after the message was received, however many ``ChangeMessageVisibility`` calls came between."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from videojobs.queues import LAMBDA_RECEIVE_MARGIN_SECONDS, MAX_VISIBILITY_SECONDS, ReceivedMessage

HOUR = 3600


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class StrictSqs:
    """``ChangeMessageVisibility`` as SQS answers it for a message received at ``received_at`` (making it
    visible at once is always allowed)."""

    def __init__(self, clock: Clock, received_at: float):
        self._clock = clock
        self._received_at = received_at
        self.visibility: list[int] = []

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> dict[str, Any]:
        elapsed = self._clock() - self._received_at
        if not 0 <= VisibilityTimeout <= MAX_VISIBILITY_SECONDS or (
            VisibilityTimeout > 0 and elapsed + VisibilityTimeout > MAX_VISIBILITY_SECONDS
        ):
            error = {
                "Code": "InvalidParameterValue",
                "Message": "Total VisibilityTimeout for the message is beyond the limit",
            }
            raise ClientError({"Error": error}, "ChangeMessageVisibility")
        self.visibility.append(VisibilityTimeout)
        return {}


def message(clock: Clock, received_at: float) -> tuple[ReceivedMessage, StrictSqs]:
    sqs = StrictSqs(clock, received_at)
    return ReceivedMessage(sqs, "https://sqs/q", "r", received_at, clock=clock), sqs


def test_a_wait_past_12_hours_from_the_receive_is_cut_where_sqs_allows() -> None:
    clock = Clock()
    received, sqs = message(clock, clock.now)
    clock.now += 11 * HOUR  # e.g. a long job's consumer, 11 h after the receive
    assert received.hide_for(12 * HOUR) == HOUR
    assert received.hide_for(5 * 60) == 5 * 60  # a heartbeat within the limit is kept as asked
    assert sqs.visibility == [HOUR, 5 * 60]


def test_a_fresh_message_may_stay_hidden_12_hours_and_never_less_than_zero() -> None:
    clock = Clock()
    received, _ = message(clock, clock.now)
    assert received.hide_for(20 * HOUR) == MAX_VISIBILITY_SECONDS
    clock.now += 13 * HOUR
    assert received.hide_for(60) == 0  # past the limit only "visible at once" is left
    assert received.hide_for(-5) == 0


def test_a_lambda_message_counts_from_before_the_handler_started(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr("videojobs.queues.time.monotonic", clock)
    # The event source received it up to a batching window before the invocation: SQS counts from then.
    sqs = StrictSqs(clock, clock.now - LAMBDA_RECEIVE_MARGIN_SECONDS)
    received = ReceivedMessage.from_lambda(sqs, "https://sqs/q", "r")
    assert received.hide_for(12 * HOUR) == MAX_VISIBILITY_SECONDS - LAMBDA_RECEIVE_MARGIN_SECONDS
