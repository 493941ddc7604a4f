"""Typed views of the API's answers, lenient on purpose: a client keeps working when the server adds fields,
statuses or output types (unknown ones are kept, as strings and extra attributes)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ErrorInfo(_Answer):
    code: str
    message: str = ""


class Output(_Answer):
    """A requested output; once it is ready (``status``, possibly before the job completes), ``url`` (and
    ``urls`` for several files) say where it is."""

    type: str
    status: str | None = None
    """``pending`` or ``ready``."""
    url: str | None = None
    urls: list[str] | None = None
    size_bytes: int | None = None
    content_type: str | None = None
    playable_url: str | None = None
    """An HLS output encoded in chunks, from ``job.playable`` on: its master playlist, playable while pending."""


class Job(_Answer):
    id: str
    status: str
    progress: int = 0
    stage: str | None = None
    eta_seconds: float | None = None
    version: int = 0
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    input: dict[str, Any] | None = None
    outputs: list[Output] = []
    error: ErrorInfo | None = None
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    """Once finished: ``processing_seconds``, ``gb_seconds``, ``input_bytes``, ``output_bytes``,
    ``estimated_cost_usd``."""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Upload(_Answer):
    """An uploaded file, ready to be the input of jobs."""

    upload_id: str
    size_bytes: int
    method: str
    """``POST`` (one presigned POST) or ``MULTIPART`` (presigned PUTs per part)."""


class JobEvent(_Answer):
    """One change of a job, as the events stream and webhooks carry it."""

    type: str
    timestamp: str | None = None
    data: Job
    output_index: int | None = None
    """Which output a ``job.output.ready`` or ``job.playable`` event announces."""

    @property
    def version(self) -> int:
        return self.data.version


def parse_output(spec: str | dict[str, Any]) -> dict[str, Any]:
    """An output request from the CLI's short form, or a dict or JSON object as it is.

    ``mp4:720`` (``mp4:720:high`` for a quality), ``hls:1080,720,480``, ``thumbnails:5`` (``thumbnails:5:320``
    for a width), ``audio:mp3``; anything starting with ``{`` is read as JSON.
    """
    if isinstance(spec, dict):
        return spec
    text = spec.strip()
    if text.startswith("{"):
        request: dict[str, Any] = json.loads(text)
        return request
    kind, _, rest = text.partition(":")
    args = rest.split(":") if rest else []
    try:
        if kind == "mp4" and 1 <= len(args) <= 2:
            return {"type": "mp4", "height": int(args[0])} | ({"quality": args[1]} if len(args) == 2 else {})
        if kind == "hls" and len(args) == 1:
            return {"type": "hls", "heights": [int(height) for height in args[0].split(",")]}
        if kind == "thumbnails" and 1 <= len(args) <= 2:
            return {"type": "thumbnails", "count": int(args[0])} | ({"width": int(args[1])} if len(args) == 2 else {})
        if kind == "audio" and len(args) == 1:
            return {"type": "audio", "format": args[0]}
    except ValueError:
        pass
    raise ValueError(
        f"cannot read output {spec!r}: use mp4:HEIGHT[:QUALITY], hls:H1,H2,..., thumbnails:COUNT[:WIDTH], "
        "audio:mp3|aac, or a JSON object"
    )
