"""The wiring's container services (``wiring.SERVICES``) as supervised subprocesses, as ECS runs their tasks.

Each task is ``python -m <module>`` in its own process group (a container of its own: killing the group kills the
task and its ffmpeg), with the stack's environment. A task that exits is started again, as an ECS service
replaces a stopped task; so a test can SIGKILL a worker mid-job and watch the job recover.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from infra.local.functions import PROJECT_ROOT
from videojobs import wiring

log = logging.getLogger(__name__)

SUPERVISE_INTERVAL_SECONDS = 0.5


class ServiceTasks:
    def __init__(self, tasks_per_service: int = 1):
        self._tasks_per_service = tasks_per_service
        self._tasks: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        self._env: dict[str, str] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None

    def start(self, env: Mapping[str, str]) -> None:
        """Start every task with ``env`` (the stack's complete environment) and keep them running."""
        self._env = dict(env)
        self._stopping.clear()
        with self._lock:
            for name in wiring.SERVICES:
                for index in range(self._tasks_per_service):
                    self._tasks[(name, index)] = self._spawn(name)
        self._supervisor = threading.Thread(target=self._supervise, name="services", daemon=True)
        self._supervisor.start()

    def stop(self, timeout_seconds: float) -> None:
        """SIGTERM every task (a consumer gives its job back), then SIGKILL what is left after the timeout."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            tasks = list(self._tasks.values())
            self._tasks.clear()
        for task in tasks:
            _signal_group(task, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        for task in tasks:
            try:
                task.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("service task %s did not stop in time; killing it", task.pid)
                _signal_group(task, signal.SIGKILL)
                task.wait()

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        task = subprocess.Popen(
            [sys.executable, "-m", wiring.SERVICES[name].module],
            cwd=PROJECT_ROOT,
            env=self._env,
            start_new_session=True,
        )
        log.info("started %s task (pid %s)", name, task.pid)
        return task

    def _supervise(self) -> None:
        while not self._stopping.wait(SUPERVISE_INTERVAL_SECONDS):
            with self._lock:
                for (name, index), task in list(self._tasks.items()):
                    if task.poll() is not None and not self._stopping.is_set():
                        log.warning("%s task %s exited (%s); starting another", name, task.pid, task.returncode)
                        self._tasks[(name, index)] = self._spawn(name)


def _signal_group(task: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(task.pid, signum)
