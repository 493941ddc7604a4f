"""Execution environments as child processes, for the functions named with ``--sandbox``: an invocation that
can die as a Lambda sandbox dies.

Lambda runs each execution environment in a microVM of its own. A timeout, running out of memory or a crash
ends the runtime and every process it started (ffmpeg) at once, with no chance to clean up: the invocation fails
(``Runtime.ExitError``, ``Sandbox.Timedout``), the next one gets a fresh environment, and the SQS batch it held
comes back when its visibility timeout ends. A thread in the stack's process cannot die like that, so a function
named here runs each environment as ``python -m infra.local.sandbox HANDLER FD`` in a process group of its own:
``os.killpg(pid, SIGKILL)`` is what Lambda does to a sandbox, and what a test does to kill a worker mid-encode.

The parent sends one invocation per line on the child's stdin (the event and the context's fields, as JSON) and
reads the answer from a pipe of its own (fd ``FD``), so that the handler's logs on stdout and stderr go where
the stack's go. The child imports the handler before it says it is ready: that is Lambda's init phase, outside
the invocation's timeout.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

from infra.local.lambda_context import LambdaContext

READY = "ready"
INIT_TIMEOUT_SECONDS = 10.0
"""Lambda's init phase limit (for on-demand functions)."""


class SandboxDied(Exception):
    """The environment's process ended (was killed) before it answered."""


class SandboxTimedOut(Exception):
    """No answer within the timeout."""


class Sandbox:
    """One execution environment of one function: a child process in its own process group."""

    def __init__(self, handler_string: str, env: Mapping[str, str], cwd: str):
        answers, answer_fd = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, handler_string, str(answer_fd)],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.PIPE,
                pass_fds=(answer_fd,),
                start_new_session=True,  # its own process group: the sandbox and whatever it starts
            )
        finally:
            os.close(answer_fd)
        self._answers = answers
        self._buffer = b""
        self._closed = False
        try:
            if self._read(time.monotonic() + INIT_TIMEOUT_SECONDS) != {READY: True}:
                raise SandboxDied("the runtime did not start")
        except (SandboxDied, SandboxTimedOut):
            self.kill()
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def invoke(self, event: Any, context: Mapping[str, Any], timeout_seconds: float) -> dict[str, Any]:
        """Run one invocation: ``{"result": JSON text}`` or ``{"error": {"kind", "message"}}``. Raises
        ``SandboxDied`` or ``SandboxTimedOut``; the sandbox is then unusable (``kill`` it)."""
        request = json.dumps({"event": event, "context": dict(context)}) + "\n"
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(request.encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise SandboxDied(str(error)) from error
        answer: dict[str, Any] = self._read(time.monotonic() + timeout_seconds)
        return answer

    def kill(self) -> None:
        """End the sandbox and every process in its group, as Lambda ends a microVM. Any thread may call it: an
        invocation waiting on the sandbox then sees it die."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        """Release the pipes (by the thread that invokes it, once it is dead)."""
        if self._closed:
            return
        self._closed = True
        os.close(self._answers)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # a broken pipe: what was buffered cannot be sent
                self.process.stdin.close()

    def exit_reason(self) -> str:
        """Lambda's words for how the runtime ended (call once it has: ``SandboxDied``)."""
        code = self.process.wait()
        if code < 0:
            return f"Runtime exited with error: signal: {(signal.strsignal(-code) or str(-code)).lower()}"
        return f"Runtime exited with error: exit status {code}"

    def _read(self, deadline: float) -> Any:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxTimedOut()
            ready, _, _ = select.select([self._answers], [], [], left)
            if not ready:
                continue
            data = os.read(self._answers, 1 << 20)
            if not data:
                raise SandboxDied("the runtime exited")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)


# --- the child: Lambda's runtime in the sandbox ----------------------------------------------------------------


def _main(handler_string: str, answer_fd: int) -> int:
    answers = os.fdopen(answer_fd, "w")

    def answer(value: Any) -> None:
        answers.write(json.dumps(value) + "\n")
        answers.flush()

    module_name, _, attribute = handler_string.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)  # init: an error ends the runtime
    answer({READY: True})
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(**request["context"])  # its clock starts now, with the invocation
        try:
            result = handler(request["event"], context)
        except Exception as failure:  # what Lambda reports as the function's error, and logs
            traceback.print_exc()
            answer({"error": {"kind": "Unhandled", "message": f"{type(failure).__name__}: {failure}"}})
            continue
        try:
            answer({"result": json.dumps(result)})
        except (TypeError, ValueError) as failure:
            answer({"error": {"kind": "Runtime.MarshalError", "message": f"{type(failure).__name__}: {failure}"}})
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], int(sys.argv[2])))
