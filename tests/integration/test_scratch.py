"""Scratch files a killed worker left in a reused /tmp are removed when the next worker starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.process import consumer
from functions.process import handler as process_handler
from infra.local.resources import Resources


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("worker", [process_handler, consumer], ids=["lambda", "fargate"])
def test_a_starting_worker_removes_scratch_left_by_a_dead_worker_and_keeps_live_ones(
    aws: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker
) -> None:
    stale = tmp_path / f"job_{'a' * 32}-pid{_dead_pid()}-x1y2"  # as a worker killed mid-encode leaves it
    (stale / "outputs").mkdir(parents=True)
    (stale / "input").write_bytes(b"\0" * 1024)
    live = tmp_path / f"job_{'b' * 32}-pid{os.getpid()}-z3"  # a worker at work beside us (locally they share)
    live.mkdir()
    other = tmp_path / "not-ours"
    other.mkdir()
    monkeypatch.setenv("SCRATCH_DIR", str(tmp_path))
    worker.get_deps.cache_clear()
    try:
        worker.get_deps()
    finally:
        worker.get_deps.cache_clear()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([live.name, other.name])
