"""Server-Sent Events, read line by line as the HTML standard describes (``text/event-stream``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    """The reconnection delay the server asks for, in milliseconds."""


def parse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events from a stream's lines (without their line endings); a blank line ends each event."""
    event, data = "", list[str]()
    event_id: str | None = None
    retry: int | None = None
    for line in lines:
        if not line:
            if data or event_id is not None or retry is not None:
                yield ServerSentEvent(event or "message", "\n".join(data), event_id, retry)
            event, data, event_id, retry = "", [], None, None
            continue
        if line.startswith(":"):  # a comment: servers send them to keep idle connections open
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id" and "\0" not in value:
            event_id = value
        elif field == "retry" and value.isdigit():
            retry = int(value)
