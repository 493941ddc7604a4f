"""The declared functions, run in this process: handler strings resolved lazily and invoked with a fake context.

Handlers are imported on first use, after the local stack has set the environment, because they read their
settings (and build their AWS clients) from it.

Lambda never runs two invocations in one execution environment at a time, so handler modules may keep
per-invocation state in module globals (Powertools' ``BatchProcessor`` does). Here, each concurrent invocation
of a function gets its own "environment": a separate copy of the handler module, loaded when the existing ones
are all busy and reused afterwards, as Lambda reuses warm environments.

An invocation is what Lambda makes of it: the event and the result go through JSON (6 MB each way), the
declared timeout is enforced (a late result is a failed invocation, and the environment is thrown away), a new
environment may take a cold-start delay, reserved concurrency and an optional account concurrency limit throttle,
and every function error is counted (``errors``) so that tests can prove routine traffic causes none.

The functions named in ``sandboxed`` run each environment in a child process instead (``infra.local.sandbox``):
a killed environment fails its invocation as a dead Lambda sandbox does, and a timeout kills it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.local.lambda_context import LambdaContext
from infra.local.sandbox import Sandbox, SandboxDied, SandboxTimedOut
from videojobs import lambda_streaming, wiring

# Lambda resolves handler strings against the code root, which is the repository root here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

Handler = Callable[[dict[str, Any], Any], Any]
STREAM_POOL_SUFFIX = "#stream"

log = logging.getLogger(__name__)

# Lambda's synchronous invoke limits (RequestEntityTooLargeException; the response may be 100 bytes longer).
MAX_REQUEST_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_PAYLOAD_BYTES = 6 * 1024 * 1024 + 100
FUNCTION_ERROR_LOG = "function error"
"""Every function error is logged with this prefix: an e2e test reads the stack's output for it."""


class InvokeError(Exception):
    """Lambda refused the invocation before running the handler (not a function error)."""


class RequestTooLarge(InvokeError):
    """RequestEntityTooLargeException: the event is over 6 MB as JSON."""


class Throttled(InvokeError):
    """TooManyRequestsException: no concurrency left for the function (reserved) or the account."""


class FunctionError(Exception):
    """The invocation ran and failed: the handler raised, ran past its timeout, or returned something Lambda
    cannot send back (not JSON, over 6 MB). Lambda counts it in the function's ``Errors`` metric."""

    def __init__(self, function: str, kind: str, message: str):
        super().__init__(f"{function}: {kind}: {message}")
        self.function = function
        self.kind = kind


def physical_function_name(name: str) -> str:
    return f"videojobs-{name}"


class Functions:
    """Every function of ``wiring.FUNCTIONS``, callable by its logical name.

    ``handlers`` replaces handler strings by function name (tests run the machinery with tiny fake handlers).
    """

    def __init__(
        self,
        region: str,
        account_id: str,
        handlers: Mapping[str, str] | None = None,
        *,
        account_concurrency: int | None = None,
        cold_start_seconds: float = 0.0,
        timeouts: Mapping[str, float] | None = None,
        stream_handlers: Mapping[str, str] | None = None,
        sandboxed: Collection[str] = (),
    ):
        """``account_concurrency``: the account's unreserved concurrency (None: unlimited); functions with
        ``reserved_concurrency`` in the wiring have their own pool, as in AWS. ``cold_start_seconds``: the init
        time of each new environment. ``timeouts``: function name -> seconds, replacing the declared timeout
        (tests make a timeout short instead of waiting for it). ``sandboxed``: functions whose environments are
        child processes (``infra.local.sandbox``), which a test can kill as a Lambda sandbox dies."""
        named = set(handlers or {}) | set(timeouts or {}) | set(stream_handlers or {}) | set(sandboxed)
        unknown = named - set(wiring.FUNCTIONS)
        if unknown:
            raise ValueError(f"overrides for unknown functions: {sorted(unknown)}")
        streaming = sorted(name for name in sandboxed if wiring.FUNCTIONS[name].stream_handler)
        if streaming:
            raise ValueError(f"streaming functions run in this process only: {streaming}")
        self._region = region
        self._account_id = account_id
        self._handler_strings = {name: fn.handler for name, fn in wiring.FUNCTIONS.items()} | dict(handlers or {})
        self._stream_handler_strings = {
            name: fn.stream_handler for name, fn in wiring.FUNCTIONS.items() if fn.stream_handler
        } | dict(stream_handlers or {})
        self._timeouts = (
            {name: float(fn.timeout_seconds) for name, fn in wiring.FUNCTIONS.items()}
            | {f"{name}{STREAM_POOL_SUFFIX}": float(seconds) for name, seconds in (timeouts or {}).items()}
            | dict(timeouts or {})
        )
        self._cold_start_seconds = cold_start_seconds
        self._account_concurrency = account_concurrency
        self._running: Counter[str] = Counter()
        self._unreserved_running = 0
        self._idle: dict[str, list[Handler]] = {}
        self._environments: dict[str, int] = {}
        self._imported_modules: set[str] = set()
        self._sandboxed = frozenset(sandboxed)
        self._idle_sandboxes: dict[str, list[Sandbox]] = {}
        self._sandboxes: set[Sandbox] = set()
        self._errors: Counter[str] = Counter()
        self._throttles: Counter[str] = Counter()
        self._lock = threading.Lock()

    def invoke(self, name: str, event: Any) -> Any:
        """Call the function's handler as Lambda would and return its result as Lambda hands it on.

        Raises ``RequestTooLarge`` or ``Throttled`` when Lambda would refuse the invocation, and ``FunctionError``
        when the invocation fails (the handler's exception is its ``__cause__``)."""
        payload = json.dumps(event)  # what cannot be JSON never reaches a Lambda function
        if len(payload.encode()) > MAX_REQUEST_PAYLOAD_BYTES:
            raise RequestTooLarge(f"{name}: the request must be smaller than {MAX_REQUEST_PAYLOAD_BYTES} bytes")
        self._reserve(name)
        try:
            return self._run(name, json.loads(payload))
        finally:
            self._release(name)

    def invoke_stream(self, name: str, event: Any, cancelled: threading.Event | None = None) -> Iterator[bytes]:
        """InvokeWithResponseStream of the function's ``stream_handler``: the bytes it sends, as it sends them
        (``lambda_streaming.encode``: the metadata and delimiter first). The invocation holds its concurrency
        until the stream ends; it runs until its timeout (``RESPONSE_STREAMING.max_seconds`` unless overridden).

        Raises ``RequestTooLarge`` or ``Throttled`` before the handler runs, and ``FunctionError`` when it fails
        before its first chunk or, from the iterator, mid-stream or past its timeout. Setting ``cancelled`` (the
        client went away) closes the handler's body at its next chunk."""
        stream_handler = self._stream_handler_strings.get(name)
        if stream_handler is None:
            raise ValueError(f"{name} declares no stream_handler")
        payload = json.dumps(event)
        if len(payload.encode()) > MAX_REQUEST_PAYLOAD_BYTES:
            raise RequestTooLarge(f"{name}: the request must be smaller than {MAX_REQUEST_PAYLOAD_BYTES} bytes")
        self._reserve(name)
        released = False
        try:
            pool = f"{name}{STREAM_POOL_SUFFIX}"
            handler, cold = self._acquire(pool, stream_handler)
            if cold and self._cold_start_seconds:
                time.sleep(self._cold_start_seconds)
            timeout = self._timeouts.get(f"{name}{STREAM_POOL_SUFFIX}", wiring.RESPONSE_STREAMING.max_seconds)
            deadline = time.monotonic() + timeout
            context = self._context(name, timeout)
            try:
                chunks = lambda_streaming.encode(handler(json.loads(payload), context))
                first = next(chunks)
            except BaseException as failure:
                self._give_back(pool, handler)
                self._fail(name, "Unhandled", f"{type(failure).__name__}: {failure}", failure)
            released = True
            return self._stream(name, pool, handler, first, chunks, deadline, timeout, cancelled)
        finally:
            if not released:
                self._release(name)

    def _stream(
        self,
        name: str,
        pool: str,
        handler: Handler,
        first: bytes,
        chunks: Iterator[bytes],
        deadline: float,
        timeout: float,
        cancelled: threading.Event | None,
    ) -> Iterator[bytes]:
        try:
            yield first
            for chunk in chunks:
                if cancelled is not None and cancelled.is_set():
                    break
                if time.monotonic() > deadline:
                    self._fail(name, "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
                yield chunk
        except FunctionError:
            raise
        except Exception as failure:
            self._fail(name, "Unhandled", f"{type(failure).__name__}: {failure}", failure)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            self._give_back(pool, handler)
            self._release(name)

    def _give_back(self, pool: str, handler: Handler) -> None:
        with self._lock:
            self._idle.setdefault(pool, []).append(handler)

    def _context(self, name: str, timeout: float) -> LambdaContext:
        physical = physical_function_name(name)
        return LambdaContext(
            function_name=physical,
            memory_limit_in_mb=wiring.FUNCTIONS[name].memory_mb,
            invoked_function_arn=f"arn:aws:lambda:{self._region}:{self._account_id}:function:{physical}",
            timeout_seconds=timeout,
        )

    def errors(self, name: str | None = None) -> int:
        """Function errors so far, of one function or of all (Lambda's ``Errors`` metric)."""
        with self._lock:
            return self._errors[name] if name else sum(self._errors.values())

    def throttles(self, name: str | None = None) -> int:
        """Invocations refused for want of concurrency (Lambda's ``Throttles`` metric)."""
        with self._lock:
            return self._throttles[name] if name else sum(self._throttles.values())

    def _run(self, name: str, event: Any) -> Any:
        if name in self._sandboxed:
            return self._run_sandboxed(name, event)
        timeout = self._timeouts[name]
        handler, cold = self._acquire(name, self._handler_strings[name])
        if cold and self._cold_start_seconds:
            # Init (the runtime starting, the module importing) is not in the function's timeout, but a caller
            # such as API Gateway waits for it: its 29 s include it.
            time.sleep(self._cold_start_seconds)
        context = self._context(name, timeout)
        outcome: dict[str, Any] = {}
        finished = threading.Event()

        def run() -> None:
            try:
                result = handler(event, context)
            except BaseException as failure:  # whatever escapes the handler fails the invocation
                outcome["error"] = ("Unhandled", failure)
                finished.set()
                return
            try:
                outcome["result"] = json.dumps(result)
            except (TypeError, ValueError) as failure:
                outcome["error"] = ("Runtime.MarshalError", failure)
            finally:
                finished.set()

        # A thread of its own, so that a handler running past its timeout can be left behind (nothing can stop
        # it); Lambda then discards the environment, so it is not given back.
        threading.Thread(target=run, name=f"lambda:{name}", daemon=True).start()
        if not finished.wait(timeout):
            self._fail(name, "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
        with self._lock:
            self._idle[name].append(handler)
        if "error" in outcome:
            kind, failure = outcome["error"]
            self._fail(name, kind, f"{type(failure).__name__}: {failure}", failure)
        result: str = outcome["result"]
        if len(result.encode()) > MAX_RESPONSE_PAYLOAD_BYTES:
            self._fail(name, "Function.ResponseSizeTooLarge", "Response payload size exceeded maximum allowed size")
        return json.loads(result)

    def _run_sandboxed(self, name: str, event: Any) -> Any:
        try:
            sandbox, cold = self._acquire_sandbox(name)
        except (SandboxDied, SandboxTimedOut) as failure:  # its init failed: Lambda counts a function error
            self._fail(name, "Runtime.ExitError", f"the runtime did not start: {failure}", failure)
        if cold and self._cold_start_seconds:
            time.sleep(self._cold_start_seconds)
        timeout = self._timeouts[name]
        context = self._context(name, timeout)
        fields = {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "timeout_seconds": timeout,
            "aws_request_id": context.aws_request_id,
        }
        try:
            answer = sandbox.invoke(event, fields, timeout)
        except SandboxTimedOut:
            self._discard(sandbox)  # Lambda stops the sandbox: ffmpeg and all
            self._fail(name, "Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds")
        except SandboxDied:
            self._discard(sandbox)
            reason = sandbox.exit_reason()
            self._fail(name, "Runtime.ExitError", f"RequestId: {context.aws_request_id} Error: {reason}")
        with self._lock:
            self._idle_sandboxes.setdefault(name, []).append(sandbox)
        if "error" in answer:
            self._fail(name, answer["error"]["kind"], answer["error"]["message"])
        result: str = answer["result"]
        if len(result.encode()) > MAX_RESPONSE_PAYLOAD_BYTES:
            self._fail(name, "Function.ResponseSizeTooLarge", "Response payload size exceeded maximum allowed size")
        return json.loads(result)

    def _acquire_sandbox(self, name: str) -> tuple[Sandbox, bool]:
        with self._lock:
            idle = self._idle_sandboxes.setdefault(name, [])
            if idle:
                return idle.pop(), False
            self._environments[name] = self._environments.get(name, 0) + 1
        # Started outside the lock (its init takes a second or two); it inherits the stack's environment.
        sandbox = Sandbox(self._handler_strings[name], os.environ, str(PROJECT_ROOT))
        with self._lock:
            self._sandboxes.add(sandbox)
        return sandbox, True

    def _discard(self, sandbox: Sandbox) -> None:
        sandbox.kill()
        sandbox.close()
        with self._lock:
            self._sandboxes.discard(sandbox)

    def _fail(self, name: str, kind: str, message: str, cause: BaseException | None = None) -> None:
        with self._lock:
            self._errors[name] += 1
        log.error("%s: %s %s: %s", FUNCTION_ERROR_LOG, physical_function_name(name), kind, message)
        raise FunctionError(name, kind, message) from cause

    def _reserve(self, name: str) -> None:
        reserved = wiring.FUNCTIONS[name].reserved_concurrency
        with self._lock:
            if reserved is not None:
                available = self._running[name] < reserved
            else:
                available = self._account_concurrency is None or self._unreserved_running < self._account_concurrency
            if not available:
                self._throttles[name] += 1
                raise Throttled(f"{name}: Rate Exceeded (concurrency)")
            self._running[name] += 1
            if reserved is None:
                self._unreserved_running += 1

    def _release(self, name: str) -> None:
        with self._lock:
            self._running[name] -= 1
            if wiring.FUNCTIONS[name].reserved_concurrency is None:
                self._unreserved_running -= 1

    def environments(self, name: str) -> int:
        """How many environments (module copies) the function has needed so far."""
        with self._lock:
            return self._environments.get(name, 0)

    def unload(self) -> None:
        """Forget the handler modules this instance imported, so that a later stack in the same process imports
        them afresh instead of reusing dependencies they cached against this stack's endpoint; end the
        sandboxes (an invocation still running in one fails)."""
        with self._lock:
            idle = {sandbox for sandboxes in self._idle_sandboxes.values() for sandbox in sandboxes}
            busy = self._sandboxes - idle
            self._sandboxes.clear()
            self._idle_sandboxes.clear()
        for sandbox in idle:
            sandbox.kill()
            sandbox.close()
        for sandbox in busy:  # its invocation's thread sees it die and closes it
            sandbox.kill()
        with self._lock:
            for module in self._imported_modules:
                sys.modules.pop(module, None)
            self._imported_modules.clear()
            self._idle.clear()
            self._environments.clear()

    def _acquire(self, pool: str, handler_string: str) -> tuple[Handler, bool]:
        """An idle environment's handler, or a new environment's (True: a cold start). ``pool``: the function's
        name, or with ``STREAM_POOL_SUFFIX`` for its streaming handler (an environment runs one of the two)."""
        with self._lock:  # loading under the lock too: it happens once per environment
            idle = self._idle.setdefault(pool, [])
            if idle:
                return idle.pop(), False
            index = self._environments.get(pool, 0)
            module_name, _, attribute = handler_string.rpartition(".")
            handler = getattr(self._load(module_name, index), attribute)
            self._environments[pool] = index + 1
            return handler, True

    def _load(self, module_name: str, index: int) -> ModuleType:
        if str(PROJECT_ROOT) not in sys.path:
            sys.path.insert(0, str(PROJECT_ROOT))
        if index == 0:  # the first environment is the module itself
            if module_name in sys.modules:
                # Imported before this stack (by a test): what it cached (settings, clients) belongs to another
                # deployment; a new environment starts without it.
                _forget_caches(sys.modules[module_name])
            else:
                self._imported_modules.add(module_name)
            return importlib.import_module(module_name)
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(module_name)
        copy_name = f"{module_name}__env{index}"  # same package, so its imports resolve as the original's
        copy_spec = importlib.util.spec_from_file_location(copy_name, spec.origin)
        if copy_spec is None or copy_spec.loader is None:
            raise ModuleNotFoundError(module_name)
        module = importlib.util.module_from_spec(copy_spec)
        sys.modules[copy_name] = module  # registered, as tools that resolve annotations look a module up there
        self._imported_modules.add(copy_name)
        copy_spec.loader.exec_module(module)
        return module


def _forget_caches(module: ModuleType) -> None:
    """Clear the ``functools.cache``s a module defines (``get_deps``, ``get_settings``…)."""
    for value in list(vars(module).values()):
        clear = getattr(value, "cache_clear", None)
        if callable(clear) and getattr(value, "__module__", None) == module.__name__:
            clear()
