"""Cold starts: which modules a function's import loads (a module set, never a time), and the SnapStart hooks.

Each import runs in a fresh interpreter, as Lambda's init phase does. A failure names the heavy module and the
chain that pulled it in, so re-adding ``from pydantic import …`` to the authorizer's path fails here.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from functions.authorizer import handler as authorizer
from videojobs import settings, snapstart, wiring

ROOT = Path(__file__).resolve().parents[2]

# What the authorizer, which runs before every uncached request, must not load at import.
AUTHORIZER_MUST_NOT_LOAD = ("pydantic", "aws_lambda_powertools", "aws_xray_sdk")
# What no function but an HTTP one with a resolver needs: the X-Ray SDK loads on a traced handler's first call.
NOBODY_LOADS_AT_IMPORT = ("aws_xray_sdk",)

PROBE = """
import json, sys
import MODULE
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in TOPS)))
"""


def loaded(module: str, tops: tuple[str, ...]) -> set[str]:
    """Modules whose top-level package is one of ``tops``, loaded by importing ``module`` in a new interpreter."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "POWERTOOLS_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.replace("MODULE", module).replace("TOPS", repr(set(tops)))],
        cwd=ROOT,
        env=env | {"AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def handler_module(function: str) -> str:
    return wiring.FUNCTIONS[function].handler.rsplit(".", 1)[0]


def test_the_authorizer_imports_neither_pydantic_nor_powertools() -> None:
    heavy = loaded(handler_module(wiring.AUTHORIZER), AUTHORIZER_MUST_NOT_LOAD)
    assert heavy == set(), f"the authorizer's import loads {sorted({name.split('.')[0] for name in heavy})}"


def test_no_function_loads_the_xray_sdk_at_import() -> None:
    """The X-Ray SDK loads with the tracer, on a traced handler's first call (or before its snapshot)."""
    modules = [handler_module(function) for function in sorted(wiring.FUNCTIONS)]
    assert loaded(",".join(modules).replace(",", "\nimport "), NOBODY_LOADS_AT_IMPORT) == set()


def test_the_probe_sees_a_heavy_import() -> None:
    """The check above can fail: a module that imports pydantic is reported."""
    assert "pydantic" in loaded("videojobs.settings", AUTHORIZER_MUST_NOT_LOAD)


def test_the_authorizer_reads_what_its_settings_model_declares() -> None:
    """``AuthorizerSettings`` (read by infra for the environment) and the authorizer's plain read agree."""
    declared = {field.alias for field in settings.AuthorizerSettings.model_fields.values()}
    assert declared == {authorizer.API_KEYS_TABLE} == {settings.API_KEYS_TABLE}


def test_snap_start_is_on_for_the_functions_clients_wait_on_and_only_zip_ones() -> None:
    waited_on = {route.function for route in wiring.ROUTES} | {wiring.AUTHORIZER, wiring.WEBSOCKET_API.function}
    assert {name for name in wiring.FUNCTIONS if wiring.snap_start(name)} == {
        name for name in waited_on if not wiring.FUNCTIONS[name].image
    }
    assert not any(wiring.snap_start(name) for name in ("process", "notify", "deliver", "fail_dead_jobs"))


HOOKS_PROBE = """
import json, random, sys, types
before, after = [], []
runtime = types.ModuleType("snapshot_restore_py")
runtime.register_before_snapshot = before.append
runtime.register_after_restore = after.append
sys.modules["snapshot_restore_py"] = runtime
import botocore.endpoint
requests = []
botocore.endpoint.Endpoint.make_request = lambda *args, **kwargs: requests.append(args) or 1 / 0
from videojobs import aws
outcome = {}
for module in MODULES:
    before.clear()
    __import__(module)
    for hook in reversed(before):  # Lambda runs them in reverse order of registration
        hook()
    outcome[module] = {"hooks": len(before), "requests": len(requests)}
random.seed(7); first = random.random(); random.seed(7)
for hook in after:
    hook()
print(json.dumps({"functions": outcome, "clients": aws._client.cache_info().currsize,
                  "same_random_after_restore": random.random() == first}))
"""
SNAP_START = sorted(name for name in wiring.FUNCTIONS if wiring.snap_start(name))


def test_snapshot_hooks_build_the_clients_without_a_request_and_restore_reseeds_random() -> None:
    """With Lambda's hook library present (faked here), the init phase of each SnapStart function builds its AWS
    clients before the snapshot, sends nothing (a connection opened now would be stale after a restore), and the
    after-restore hook gives ``random`` a new seed (else every restored environment draws the same jitter)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("POWERTOOLS_")}
    env |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    env |= {table.env_var: name for name, table in wiring.TABLES.items()}
    env |= {bucket.env_var: name for name, bucket in wiring.BUCKETS.items()}
    for queue in wiring.QUEUES.values():
        env |= {
            var: "https://sqs.us-east-1.amazonaws.com/1/q" for var in (queue.env_var, queue.dead_letter_env_var) if var
        }
    env[wiring.WEBSOCKET_API.env_var] = "wss://example.invalid/v1"
    modules = [handler_module(function) for function in SNAP_START]
    probe = HOOKS_PROBE.replace("MODULES", repr(modules))
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert {module: seen["hooks"] >= 1 for module, seen in outcome["functions"].items()} == dict.fromkeys(modules, True)
    assert all(seen["requests"] == 0 for seen in outcome["functions"].values())
    assert outcome["clients"] >= 2  # dynamodb, s3, sqs: built before the snapshot
    assert outcome["same_random_after_restore"] is False


def test_without_lambdas_hook_library_nothing_is_registered_or_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests and the local stack: the hooks are not run, so no client exists before a handler's first call."""
    assert "snapshot_restore_py" not in sys.modules and snapstart._RUNTIME is None
    calls: list[int] = []
    assert snapstart.before_snapshot(lambda: calls.append(1)) is not None
    assert calls == []


def test_reseed_random_changes_the_shared_state() -> None:
    random.seed(7)
    state = random.getstate()
    snapstart.reseed_random()
    assert random.getstate() != state
