"""Per-tenant limits through the admin CLI, as an operator runs it, and their 429s on the local stack."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, RunningStack, _clean_env

pytestmark = pytest.mark.e2e

LIMIT_KEYS = {
    "max_active_jobs",
    "max_pending_jobs",
    "max_upload_bytes_per_day",
    "requests_per_second",
    "burst",
    "max_open_streams",
}


def admin(stack: RunningStack, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "videojobs.cli", "admin", *arguments, "--local-state", str(stack.state_file)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_clean_env())


def show_limits(stack: RunningStack, tenant: str) -> dict[str, float]:
    shown = admin(stack, "show-limits", "--tenant", tenant)
    assert shown.returncode == 0, shown.stderr
    limits: dict[str, float] = json.loads(shown.stdout)
    return limits


def test_show_limits_prints_exactly_the_six_limits_defaults_included(stack: RunningStack) -> None:
    limits = show_limits(stack, "limits-fresh")
    assert set(limits) == LIMIT_KEYS
    assert limits["max_pending_jobs"] == int(stack.env.get("TENANT_MAX_PENDING_JOBS", 1000))


def test_set_limits_overrides_some_and_keeps_the_rest(stack: RunningStack) -> None:
    before = show_limits(stack, "limits-set")
    changed = admin(stack, "set-limits", "--tenant", "limits-set", "--max-pending-jobs", "3", "--burst", "7")
    assert changed.returncode == 0, changed.stderr
    assert (
        json.loads(changed.stdout) == show_limits(stack, "limits-set") == before | {"max_pending_jobs": 3, "burst": 7}
    )
    assert show_limits(stack, "limits-other") == before


def test_set_limits_refuses_bad_values_and_bad_tenant_names(stack: RunningStack) -> None:
    refused = admin(stack, "set-limits", "--tenant", "limits-bad", "--max-open-streams", "0")
    assert refused.returncode == 2 and "--max-open-streams" in refused.stderr
    assert admin(stack, "set-limits", "--tenant", "Not A Name", "--burst", "1").returncode == 2
    assert (
        show_limits(stack, "limits-bad")["max_open_streams"] == show_limits(stack, "limits-fresh")["max_open_streams"]
    )
