"""Key management through the admin CLI, as an operator runs it: list a tenant's keys (never the key or its
hash), revoke one by id. A revoked key that API Gateway has not cached is refused at once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT, RunningStack, _clean_env
from videojobs.ids import hash_api_key

pytestmark = pytest.mark.e2e


def admin(stack: RunningStack, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "videojobs.cli", "admin", *arguments, "--local-state", str(stack.state_file)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=_clean_env())


def test_list_keys_shows_ids_and_dates_never_the_key_or_its_hash(stack: RunningStack) -> None:
    keys = [stack.create_key("lister"), stack.create_key("lister")]
    stack.create_key("someone-else")
    listed = admin(stack, "list-keys", "--tenant", "lister")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    assert [set(record) for record in records] == [{"id", "prefix", "created_at", "last_used_at", "revoked_at"}] * 2
    assert sorted(record["prefix"] for record in records) == sorted(key[:7] for key in keys)
    for key in keys:
        assert key not in listed.stdout and hash_api_key(key) not in listed.stdout


def test_a_revoked_key_is_refused_and_an_unknown_id_exits_1(stack: RunningStack) -> None:
    key = stack.create_key("revoker")
    [record] = json.loads(admin(stack, "list-keys", "--tenant", "revoker").stdout)
    assert admin(stack, "revoke-key", record["id"]).returncode == 0
    with stack.client(key) as api:  # never used, so never cached by the gateway: refused at once
        response = api.get("/jobs")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthorized")
    [revoked] = json.loads(admin(stack, "list-keys", "--tenant", "revoker").stdout)
    assert revoked["revoked_at"] is not None
    assert admin(stack, "revoke-key", "key_0123456789abcdef").returncode == 1


def test_a_key_in_use_records_when_it_was_last_used(stack: RunningStack) -> None:
    key = stack.create_key("user")
    with stack.client(key) as api:
        assert api.get("/jobs").status_code == 200
    [record] = json.loads(admin(stack, "list-keys", "--tenant", "user").stdout)
    assert record["last_used_at"] is not None and record["revoked_at"] is None
