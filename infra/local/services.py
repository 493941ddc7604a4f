"""The wiring's container services (``wiring.SERVICES``) as supervised subprocesses, as ECS runs their tasks.

Each task is ``python -m <module>`` in its own process group (a container of its own: killing the group kills the
task and its ffmpeg), with the stack's environment. How many run is what the deployed scaling policy gives for
the queue's backlog (visible plus in-flight messages), evaluated by ``infra/scaling.py`` as Application Auto
Scaling would: none while the queue is empty, so a policy that gives no task for one job hangs that job here too.
A task that exits is replaced while the policy still wants it, as an ECS service replaces a stopped task; so a
test can SIGKILL a worker mid-job and watch the job recover.

Scale-in stops (SIGTERM) only tasks without scale-in protection, which each task sets through an emulated ECS
agent endpoint (``ECS_AGENT_URI``), as a Fargate task does; a protected task runs on until its protection ends.
Not emulated: the minute or more a Fargate task takes to be placed and to pull its image (README).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.local.functions import PROJECT_ROOT
from infra.scaling import Scaling, backlog_scaling
from videojobs import wiring

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL_SECONDS = 0.5
PROTECTION_PATH = "/task-protection/v1/state"


@dataclass
class Task:
    id: str
    process: subprocess.Popen[bytes]
    protected_until: float = 0.0
    """monotonic time; 0: not protected"""
    stopping: bool = field(default=False)

    @property
    def protected(self) -> bool:
        return time.monotonic() < self.protected_until


class ServiceTasks:
    def __init__(self, enabled: bool = True):
        self._enabled = enabled
        self._tasks: dict[str, list[Task]] = {name: [] for name in wiring.SERVICES}
        self._scaling: dict[str, Scaling] = {
            name: backlog_scaling(service.max_tasks) for name, service in wiring.SERVICES.items()
        }
        self._ids = itertools.count(1)
        self._env: dict[str, str] = {}
        self._sqs: Any = None
        self._queue_urls: dict[str, str] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self._agent: ThreadingHTTPServer | None = None
        self.rounds = 0
        """Scaling rounds done: a test waits for some to pass."""

    def start(self, env: Mapping[str, str], sqs: Any, queue_urls: Mapping[str, str]) -> None:
        """Run each service's tasks with ``env`` (the stack's complete environment), as many as its scaling
        gives for the backlog of its queue (``queue_urls``: queue name -> URL)."""
        if not self._enabled:
            return
        self._env, self._sqs, self._queue_urls = dict(env), sqs, dict(queue_urls)
        self._stopping.clear()
        self._agent = ThreadingHTTPServer(("127.0.0.1", 0), _agent_handler(self))
        threading.Thread(target=self._agent.serve_forever, name="ecs-agent", daemon=True).start()
        self._supervisor = threading.Thread(target=self._supervise, name="services", daemon=True)
        self._supervisor.start()

    def pids(self, service: str) -> list[int]:
        with self._lock:
            return [task.process.pid for task in self._tasks[service] if not task.stopping]

    def stop(self, timeout_seconds: float) -> None:
        """SIGTERM every task (a consumer gives its job back), then SIGKILL what is left after the timeout."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            tasks = [task for tasks in self._tasks.values() for task in tasks]
            for tasks_of_service in self._tasks.values():
                tasks_of_service.clear()
        for task in tasks:
            _signal_group(task.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        for task in tasks:
            try:
                task.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("service task %s did not stop in time; killing it", task.process.pid)
                _signal_group(task.process, signal.SIGKILL)
                task.process.wait()
        if self._agent is not None:
            self._agent.shutdown()
            self._agent.server_close()
            self._agent = None

    def protect(self, task_id: str, enabled: bool, minutes: float) -> dict[str, Any] | None:
        """What the ECS agent does for ``PUT task-protection/v1/state``; None for an unknown task."""
        with self._lock:
            task = next((t for tasks in self._tasks.values() for t in tasks if t.id == task_id), None)
            if task is None:
                return None
            task.protected_until = time.monotonic() + minutes * 60 if enabled else 0.0
            return {"ProtectionEnabled": task.protected, "TaskArn": f"local-task/{task_id}"}

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_INTERVAL_SECONDS):
            for name in wiring.SERVICES:
                try:
                    self._scale(name)
                except Exception:  # moto going away at shutdown, for one: try again on the next tick
                    log.warning("could not scale %s", name, exc_info=True)
            self.rounds += 1

    def _scale(self, name: str) -> None:
        queue_url = self._queue_urls[wiring.SERVICES[name].queue]
        counts = self._sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        backlog = int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"])
        with self._lock:
            if self._stopping.is_set():
                return
            tasks = self._tasks[name]
            for task in [t for t in tasks if t.process.poll() is not None]:
                if not task.stopping:
                    log.warning("%s task %s exited (%s)", name, task.process.pid, task.process.returncode)
                tasks.remove(task)
            running = [task for task in tasks if not task.stopping]
            desired = self._scaling[name].capacity(backlog, len(running))
            for _ in range(desired - len(running)):
                tasks.append(self._spawn(name))
            surplus = len(running) - desired
            for task in [task for task in running if not task.protected][: max(0, surplus)]:
                log.info("scaling %s in: stopping task %s", name, task.process.pid)
                task.stopping = True
                _signal_group(task.process, signal.SIGTERM)

    def _spawn(self, name: str) -> Task:
        task_id = f"{name}-{next(self._ids)}"
        assert self._agent is not None
        agent = f"http://127.0.0.1:{self._agent.server_address[1]}/{task_id}"
        process = subprocess.Popen(
            [sys.executable, "-m", wiring.SERVICES[name].module],
            cwd=PROJECT_ROOT,
            env={**self._env, "ECS_AGENT_URI": agent},
            start_new_session=True,
        )
        log.info("started %s task (pid %s)", name, process.pid)
        return Task(task_id, process)


def _agent_handler(tasks: ServiceTasks) -> type[BaseHTTPRequestHandler]:
    class Agent(BaseHTTPRequestHandler):
        """The task-protection endpoint of the ECS container agent, at ``<ECS_AGENT_URI>/task-protection/v1/state``."""

        def do_PUT(self) -> None:
            task_id, _, path = self.path.lstrip("/").partition("/")
            try:
                state = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                enabled = bool(state["ProtectionEnabled"])
                minutes = float(state.get("ExpiresInMinutes", 120)) if enabled else 0.0
            except (ValueError, KeyError, TypeError):
                self._answer(400, {"error": {"Code": "InvalidParameterException", "Message": "bad request body"}})
                return
            protection = tasks.protect(task_id, enabled, minutes) if "/" + path == PROTECTION_PATH else None
            if protection is None:
                self._answer(404, {"error": {"Code": "ResourceNotFoundException", "Message": self.path}})
            else:
                self._answer(200, {"protection": protection})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Agent


def _signal_group(task: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(task.pid, signum)
