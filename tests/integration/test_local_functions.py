"""The local stack's Lambda invocation, on its own: what Lambda checks and refuses around a handler."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.local import LocalStack
from infra.local.functions import (
    MAX_REQUEST_PAYLOAD_BYTES,
    FunctionError,
    Functions,
    RequestTooLarge,
    Throttled,
)
from infra.local.gateway import LocalGateway
from tests.integration.fake_functions import recorder as fake
from tests.integration.test_local_pollers import eventually
from videojobs import wiring

FAKE = "tests.integration.fake_functions.handlers"


@pytest.fixture
def functions() -> Iterator[Functions]:
    fake.reset()
    # "events" has reserved concurrency in the wiring; the others share the account's (here 1).
    handlers = {"status": f"{FAKE}.hold", "cancel": f"{FAKE}.hold", "events": f"{FAKE}.dlq_consumer"}
    created = Functions("eu-west-1", "123456789012", handlers, account_concurrency=1, timeouts={"cancel": 0.5})
    yield created
    fake.release.set()
    created.unload()


def in_background(functions: Functions, name: str) -> threading.Thread:
    """Start an invocation that holds its environment until ``fake.release`` is set."""
    before = len(fake.calls("hold"))
    thread = threading.Thread(target=lambda: _quietly(functions, name), daemon=True)
    thread.start()
    while len(fake.calls("hold")) == before:  # bounded by the handler's own wait
        threading.Event().wait(0.01)
    return thread


def _quietly(functions: Functions, name: str) -> None:
    with contextlib.suppress(FunctionError):
        functions.invoke(name, {})


def test_event_and_result_go_through_json(functions: Functions) -> None:
    fake.release.set()
    event = {"Records": [1, 2]}

    assert functions.invoke("status", event) == {"ok": True}
    assert event == {"Records": [1, 2]}  # the handler changed its own copy
    with pytest.raises(TypeError):  # what is not JSON cannot be sent to Lambda at all
        functions.invoke("status", {"when": {1, 2}})


def test_an_event_over_6_mb_is_refused_before_any_handler_runs(functions: Functions) -> None:
    with pytest.raises(RequestTooLarge):
        functions.invoke("status", {"body": "x" * MAX_REQUEST_PAYLOAD_BYTES})

    assert fake.calls("hold") == []
    assert functions.errors() == 0  # an invoke error, not a function error


def test_past_its_timeout_an_invocation_fails_and_its_environment_is_discarded(functions: Functions) -> None:
    with pytest.raises(FunctionError, match="timed out"):
        functions.invoke("cancel", {})
    fake.release.set()
    functions.invoke("cancel", {})

    assert functions.errors("cancel") == 1
    assert functions.environments("cancel") == 2  # the timed-out environment was not reused


def test_beyond_the_account_concurrency_an_invocation_is_throttled(functions: Functions) -> None:
    busy = in_background(functions, "status")

    with pytest.raises(Throttled):
        functions.invoke("cancel", {})
    assert functions.throttles("cancel") == 1 and functions.errors() == 0
    # Reserved concurrency is a pool of its own: the account's being taken does not throttle it.
    assert functions.invoke("events", {}) == {"batchItemFailures": []}
    fake.release.set()
    busy.join(10)
    assert functions.invoke("cancel", {}) == {"ok": True}  # the slot is free again


def test_a_throttled_sqs_receive_still_counts_towards_the_dead_letter_queue() -> None:
    fake.reset()
    handlers = {"process": f"{FAKE}.sqs_consumer", "fail_dead_jobs": f"{FAKE}.dlq_consumer"}
    # No unreserved concurrency at all: every invocation of the queue's consumer is throttled.
    with LocalStack(port=0, visibility_timeout_seconds=1, handlers=handlers, account_concurrency=0) as stack:
        sqs, queue = stack.client("sqs"), stack.resources.queues["jobs"]
        sqs.send_message(QueueUrl=queue.url, MessageBody="never-run")

        dead = eventually(lambda: sqs.receive_message(QueueUrl=queue.dlq_url).get("Messages"), timeout=60)
        assert [message["Body"] for message in dead] == ["never-run"]
        assert fake.calls("sqs") == []  # no handler ever saw it
        assert stack.functions.throttles("process") == wiring.QUEUES["jobs"].max_receive_count
        assert stack.functions.errors() == 0


def test_a_cold_start_is_outside_the_function_timeout_but_inside_the_gateways() -> None:
    fake.reset()
    fake.release.set()
    handlers = {"cancel": f"{FAKE}.hold", "status": f"{FAKE}.echo"}
    # Init takes longer than both the function's timeout and the gateway's integration timeout here.
    functions = Functions("us-east-1", "123456789012", handlers, cold_start_seconds=3, timeouts={"cancel": 1})
    gateway = LocalGateway(functions, "us-east-1", "123456789012", integration_timeout_seconds=1.5)

    async def health_answers() -> list[int]:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            answers = [(await http.get("/health")).status_code]
            # Once the environment is warm (the abandoned call finished), the same request answers.
            while answers[-1] != 201 and len(answers) < 20:
                await asyncio.sleep(0.5)
                answers.append((await http.get("/health")).status_code)
            return answers

    try:
        assert functions.invoke("cancel", {}) == {"ok": True}  # Lambda's timeout starts after init
        answers = asyncio.run(health_answers())
        assert answers[0] == 504  # API Gateway's 29 s include init
        assert answers[-1] == 201
        assert functions.environments("status") == 1
    finally:
        functions.unload()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not reaped yet


def _pids_once_written(path: Path) -> tuple[int, int]:
    deadline = time.monotonic() + 30  # hang guard: the sandbox's init and the handler's start
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, "the handler never started"
        time.sleep(0.05)
    own, child = path.read_text().split()
    return int(own), int(child)


def test_a_sandboxed_environment_killed_mid_invocation_fails_it_as_a_dead_lambda_sandbox(tmp_path: Path) -> None:
    functions = Functions("us-east-1", "123456789012", {"chunk": f"{FAKE}.spawner"}, sandboxed=["chunk"])
    failures: list[FunctionError] = []

    def invoke() -> None:
        try:
            functions.invoke("chunk", {"pids": str(tmp_path / "pids"), "seconds": 60})
        except FunctionError as failure:
            failures.append(failure)

    try:
        running = threading.Thread(target=invoke)
        running.start()
        sandbox, child = _pids_once_written(tmp_path / "pids")
        assert sandbox != os.getpid()  # not a thread of this process
        os.killpg(sandbox, signal.SIGKILL)  # as Lambda ends a sandbox (timeout, out of memory): its children too
        running.join(10)

        [failure] = failures
        assert (failure.kind, str(failure).endswith("Runtime exited with error: signal: killed")) == (
            "Runtime.ExitError",
            True,
        )
        assert not _alive(sandbox) and not _alive(child)
        again = functions.invoke("chunk", {"pids": str(tmp_path / "again")})
        assert again["pid"] != sandbox  # a fresh environment
        assert (functions.environments("chunk"), functions.errors("chunk")) == (2, 1)
    finally:
        functions.unload()


def test_past_its_timeout_a_sandboxed_environment_is_ended_with_its_children(tmp_path: Path) -> None:
    handlers = {"chunk": f"{FAKE}.spawner"}
    functions = Functions("us-east-1", "123456789012", handlers, sandboxed=["chunk"], timeouts={"chunk": 1})
    try:
        with pytest.raises(FunctionError, match="timed out") as raised:
            functions.invoke("chunk", {"pids": str(tmp_path / "pids"), "seconds": 60})
        sandbox, child = _pids_once_written(tmp_path / "pids")

        assert raised.value.kind == "Sandbox.Timedout"
        assert not _alive(sandbox) and not _alive(child)  # a thread would have been left running, and its child
    finally:
        functions.unload()
