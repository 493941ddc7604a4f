"""Make moto's SQS count the 12 h visibility cap from the receive, as SQS does.

SQS refuses a ``ChangeMessageVisibility`` that would keep a message hidden more than 12 hours after the receive
that returned its receipt handle. moto counts from when the message was *sent* instead, which refuses a
legitimate heartbeat on a message that waited in the queue, and says nothing of the receive.
"""

from __future__ import annotations

from typing import Any

from moto.core.utils import unix_time_millis
from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
from moto.sqs.models import Message, SQSBackend

MAX_HIDDEN_AFTER_RECEIVE_MS = 43200 * 1000


def make_sqs_visibility_strict() -> None:
    """Idempotent: patching twice wraps once."""
    if getattr(SQSBackend.change_message_visibility, "_strict", False):
        return
    original_mark_received = Message.mark_received

    def mark_received(self: Any, visibility_timeout: int | None = None) -> None:
        original_mark_received(self, visibility_timeout)
        # Per receipt handle: an older handle keeps the time of its own receive.
        self.__dict__.setdefault("_received_at_ms", {})[self.receipt_handle] = unix_time_millis()

    def change_message_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        queue = self.get_queue(queue_name)
        for message in queue._messages:
            if message.had_receipt_handle(receipt_handle):
                received = message.__dict__.get("_received_at_ms", {}).get(receipt_handle)
                hidden_until = unix_time_millis() + int(visibility_timeout) * 1000
                if received is not None and hidden_until - received > MAX_HIDDEN_AFTER_RECEIVE_MS:
                    raise InvalidParameterValue(
                        f"Value {visibility_timeout} for parameter VisibilityTimeout is invalid. Reason: Total "
                        "VisibilityTimeout for the message is beyond the limit [43200 seconds]"
                    )
                message.change_visibility(visibility_timeout)
                if message.visible and message in queue.pending_messages:
                    queue.pending_messages.remove(message)
                return
        raise ReceiptHandleIsInvalid

    change_message_visibility._strict = True  # type: ignore[attr-defined]
    Message.mark_received = mark_received  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]
