"""GET /jobs/{id}/events as one streamed response, on the local stack with API Gateway's streaming limits shortened.

The job is emulated by writing its changes to the jobs table as a worker would (claim, progress, each output
ready, completion), slowly: its quiet gaps are longer than the idle limit and, in the resume test, the whole
job is longer than the response cap. The real notify function turns the writes into events and the real events
function streams them through the local gateway.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest

from infra.local import LocalStack
from infra.local.stack import DEV_TENANT
from videojobs import settings, wiring
from videojobs.ids import new_job_id
from videojobs.job_store import JobStore
from videojobs.models import Job, StoredOutput, utcnow
from videojobs.notification_store import EventLog
from videojobs.sdk import sse

GAP_SECONDS = 2.5
"""Between two changes of the emulated job: longer than the idle limit below."""
IDLE_SECONDS = 2.0
PATIENCE_SECONDS = 60


@pytest.fixture(autouse=True)
def fresh_handlers() -> None:
    """The stacks here run the real handlers in this process: a handler module another test imported keeps the
    settings and clients it cached then (another moto, default limits); a new deployment starts without them."""
    for name, module in list(sys.modules.items()):
        if name.startswith("functions."):
            for cached in ("get_deps", "get_settings"):
                clear = getattr(getattr(module, cached, None), "cache_clear", None)
                if clear is not None:
                    clear()


@dataclass
class Followed:
    """What an SSE client saw: the events, how many requests it made, how each response ended."""

    events: list[tuple[str, str, dict]] = field(default_factory=list)
    requests: int = 0
    endings: list[str] = field(default_factory=list)
    """Per response: "terminal" (the job's end), "clean" (ended by the server, resume), "cut" (broken off)."""
    comments: int = 0


def follow(stack: LocalStack, job_id: str, last_id: str | None = None) -> Followed:
    """An EventSource: read each response as it streams, resume with Last-Event-ID, stop after the terminal
    event or on 204."""
    seen = Followed()
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.api_key}"}) as client:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            seen.requests += 1
            ending = "clean"
            try:
                with client.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=10) as response:
                    if response.status_code == 204:
                        seen.endings.append("no content")
                        return seen
                    assert response.status_code == 200, response.read()
                    assert response.headers["content-type"].startswith("text/event-stream")

                    def lines(response: httpx.Response = response) -> Iterator[str]:
                        for line in response.iter_lines():
                            seen.comments += line.startswith(":")
                            yield line

                    for message in sse.parse(lines()):
                        if not message.data:
                            continue
                        event = httpx.Response(200, content=message.data).json()
                        assert message.id == str(event["data"]["version"])
                        seen.events.append((message.id, message.event, event))
                        last_id = message.id
                        if event["type"] in ("job.completed", "job.failed", "job.cancelled"):
                            ending = "terminal"
            except httpx.RemoteProtocolError:
                ending = "cut"
            seen.endings.append(ending)
            if ending == "terminal":
                return seen
    raise AssertionError(f"the stream did not end: {seen}")


def warm_up(stack: LocalStack, jobs: JobStore) -> None:
    """Import the functions first (notify's on a first job's record, the events function's on a request): an
    import holds the interpreter for a while, which would count as a stream's idle time here."""
    job = jobs.create(new_job(stack))
    events = EventLog(stack.client("dynamodb"), stack.resources.tables["job_events"])
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not events.after(job.id, 0) and time.monotonic() < deadline:
        time.sleep(0.1)
    headers = {"Authorization": f"Bearer {stack.api_key}", "Last-Event-ID": "1"}
    # Cancelled, then asked after its end: the events function answers 204 at once.
    assert jobs.cancel_queued(job.id) is not None
    while len(events.after(job.id, 0)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"{stack.url}/jobs/{job.id}/events", headers=headers | {"Last-Event-ID": "2"}).status_code == 204


def new_job(stack: LocalStack) -> Job:
    now = utcnow()
    return Job(
        id=new_job_id(),
        tenant_id=DEV_TENANT,
        created_at=now,
        updated_at=now,
        upload_id="upl_1",
        input_key="uploads/dev/upl_1",
        outputs=[StoredOutput(spec={"type": "mp4", "height": 144}), StoredOutput(spec={"type": "mp4", "height": 240})],
    )


def slow_job(stack: LocalStack, steps: int, stop: threading.Event | None = None) -> Job:
    """A job of two outputs that a 'worker' runs in the background: claim, ``steps`` progress writes, each
    output ready, completion, each change ``GAP_SECONDS`` after the last (until ``stop`` is set)."""
    stop = stop or threading.Event()
    jobs = JobStore(stack.client("dynamodb"), stack.resources.tables["jobs"])
    warm_up(stack, jobs)
    job = jobs.create(new_job(stack))

    def work() -> None:
        time.sleep(GAP_SECONDS)
        claimed = jobs.claim(job.id, "worker-1", timedelta(minutes=5))
        assert claimed is not None
        for step in range(1, steps + 1):
            if stop.wait(GAP_SECONDS):
                return
            jobs.record_progress(job.id, "worker-1", 80 * step // steps, timedelta(minutes=5))
        outputs = list(claimed.outputs)
        for index in range(len(outputs)):
            time.sleep(GAP_SECONDS)
            outputs[index] = outputs[index].model_copy(update={"key": f"outputs/dev/{job.id}/a1/{index}.mp4"})
            jobs.record_outputs(job.id, "worker-1", outputs)
        time.sleep(GAP_SECONDS)
        assert jobs.complete(job.id, "worker-1", outputs) is not None

    threading.Thread(target=work, daemon=True).start()
    return job


def expected_types(steps: int) -> list[str]:
    return (
        ["job.queued", "job.processing"]
        + ["job.progress"] * steps
        + ["job.output.ready", "job.output.ready", "job.completed"]
    )


def test_one_connection_carries_every_event_of_a_job_with_keepalives_through_its_quiet_gaps() -> None:
    # A response may last a minute, but the stream is cut after two seconds of silence: the job (about 15 s)
    # pauses longer than that between changes, so only the keep-alive comments keep it open.
    with LocalStack(port=0, response_streaming=wiring.ResponseStreaming(60, IDLE_SECONDS)) as stack:
        job = slow_job(stack, steps=2)
        seen = follow(stack, job.id)
        cut = stack.gateway.streams_cut
    assert seen.requests == 1 and seen.endings == ["terminal"]
    assert [kind for _, kind, _ in seen.events] == expected_types(2)
    versions = [int(event_id) for event_id, _, _ in seen.events]
    assert versions == sorted(set(versions))
    assert seen.comments >= 5  # keep-alives: at least one per quiet gap
    assert cut == 0
    ready = [event for _, kind, event in seen.events if kind == "job.output.ready"]
    assert [event["output_index"] for event in ready] == [0, 1]
    assert [output["status"] for output in ready[0]["data"]["outputs"]] == ["ready", "pending"]


def test_a_stream_ends_cleanly_before_the_response_cap_and_the_client_resumes_with_last_event_id() -> None:
    # A response is cut at 4 s: the handler ends each one cleanly before that (wiring.ResponseStreaming), and
    # the job (about 15 s) takes several responses, each resumed after the last event id. Seconds, not
    # milliseconds, of margin: a loaded machine delays the handler's loop.
    limits = wiring.ResponseStreaming(4, IDLE_SECONDS)
    with LocalStack(port=0, response_streaming=limits) as stack:
        job = slow_job(stack, steps=2)
        seen = follow(stack, job.id)
        cut = stack.gateway.streams_cut
        assert stack.env[settings.SSE_STREAM_SECONDS] == f"{limits.stream_seconds:g}"
    assert seen.requests >= 3
    assert set(seen.endings[:-1]) == {"clean"} and seen.endings[-1] == "terminal"
    assert cut == 0
    # Every event exactly once, in order, across the responses.
    assert [kind for _, kind, _ in seen.events] == expected_types(2)
    versions = [int(event_id) for event_id, _, _ in seen.events]
    assert versions == sorted(set(versions))


@pytest.mark.parametrize(
    ("stream_seconds", "keepalive_seconds"),
    [("30", "0.2"), ("30", "5")],
    ids=["past-the-response-cap", "quiet-past-the-idle-limit"],
)
def test_the_gateway_cuts_a_stream_that_outlives_the_response_cap_or_goes_quiet(
    stream_seconds: str, keepalive_seconds: str
) -> None:
    # The emulation itself: a handler whose settings ignore the limits streams past the cap, or keeps quiet
    # longer than the idle limit, and API Gateway cuts it there: the client sees the body break off.
    with LocalStack(port=0, response_streaming=wiring.ResponseStreaming(2, IDLE_SECONDS * 2)) as stack:
        # Read at the events function's first call; the stack restores the environment when it stops.
        os.environ[settings.SSE_STREAM_SECONDS] = stream_seconds
        os.environ[settings.SSE_KEEPALIVE_SECONDS] = keepalive_seconds
        stop = threading.Event()
        job = slow_job(stack, steps=20, stop=stop)
        assert follow_once(stack, job.id) == "cut"
        assert stack.gateway.streams_cut == 1
        stop.set()


def follow_once(stack: LocalStack, job_id: str) -> str:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.url, headers=headers) as client:
        try:
            with client.stream("GET", f"/jobs/{job_id}/events", timeout=10) as response:
                for _ in response.iter_lines():
                    pass
        except httpx.RemoteProtocolError:
            return "cut"
    return "clean"
