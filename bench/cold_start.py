"""Cold start: the import time of each function's handler module in a fresh interpreter against ``import boto3``
alone (what any Python Lambda on AWS pays), interleaved over several rounds; which heavy libraries each handler
drags in; and, for the SnapStart functions, the init that goes into their snapshot.

    .venv/bin/python -m bench.cold_start [--rounds 5]

Each sample is one new ``python`` process timing its own import with ``perf_counter`` (interpreter start-up is
the same for all and left out). The figure is the median over the rounds and its ratio to boto3's, next to the
issue's goal for the function's kind. ``snapshot_init_ms_p50`` adds the before-snapshot hooks (settings, clients,
tracer: ``videojobs.snapstart``) run with a stand-in for Lambda's hook library: the init SnapStart moves out of
every cold start, and what a function without it pays on its first call instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import write_result
from videojobs import wiring

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "boto3"
# Libraries a function should carry only if it needs them: media decoding, an HTTP client, numeric code, the
# Powertools resolver with its pydantic validation (only HTTP functions need it) and the X-Ray SDK (the tracer).
HEAVY = ["av", "imageio_ffmpeg", "httpx", "numpy", "pydantic", "aws_lambda_powertools.event_handler", "aws_xray_sdk"]
# Issue 14's goals, as import time / import boto3.
GOALS = {"authorizer": 1.3, "api": 1.6, "consumer": 1.5}
PROBE = """
import json, sys, time, types
hooks = []
runtime = types.ModuleType("snapshot_restore_py")  # what Lambda's Python runtime provides
runtime.register_before_snapshot = hooks.append
runtime.register_after_restore = lambda hook: None
sys.modules["snapshot_restore_py"] = runtime
started, started_cpu = time.perf_counter(), time.process_time()
import {module}
imported, imported_cpu = time.perf_counter(), time.process_time()
heavy = [name for name in {heavy!r} if name in sys.modules]  # at import, before the hooks load the tracer
for hook in reversed(hooks):
    hook()
initialized = time.perf_counter()
print(json.dumps({{"seconds": imported - started, "cpu_seconds": imported_cpu - started_cpu,
                  "init_seconds": initialized - started,
                  "heavy": heavy}}))
"""


def kind(function: str) -> str:
    """Which of the issue's goals applies: the authorizer, the other API functions, or a queue/stream consumer."""
    if function == wiring.AUTHORIZER:
        return "authorizer"
    return "api" if wiring.snap_start(function) else "consumer"


def handler_modules() -> dict[str, str]:
    """Function name -> its handler module (``functions.submit.handler.lambda_handler`` -> ``...handler``)."""
    return {name: function.handler.rsplit(".", 1)[0] for name, function in wiring.FUNCTIONS.items()}


def _environment() -> dict[str, str]:
    """Settings every function can build its dependencies from (no call is made: clients connect lazily)."""
    env = os.environ | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    env |= {table.env_var: name for name, table in wiring.TABLES.items()}
    env |= {bucket.env_var: name for name, bucket in wiring.BUCKETS.items()}
    for queue in wiring.QUEUES.values():
        env |= {
            var: "https://sqs.us-east-1.amazonaws.com/1/q" for var in (queue.env_var, queue.dead_letter_env_var) if var
        }
    return env | {wiring.WEBSOCKET_API.env_var: "wss://example.invalid/v1"}


def time_import(module: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def main(rounds: int = 5) -> dict[str, Any]:
    modules = {BASELINE: BASELINE, **handler_modules()}
    samples: dict[str, list[float]] = {name: [] for name in modules}
    init_samples: dict[str, list[float]] = {name: [] for name in modules}
    cpu_samples: dict[str, list[float]] = {name: [] for name in modules}
    heavy: dict[str, list[str]] = {}
    time_import(BASELINE)  # warm the file-system cache once, for everyone alike
    for _ in range(rounds):
        for name, module in modules.items():  # interleaved: noise hits every module alike
            probe = time_import(module)
            samples[name].append(probe["seconds"])
            init_samples[name].append(probe["init_seconds"])
            cpu_samples[name].append(probe["cpu_seconds"])
            heavy[name] = probe["heavy"]
    base = statistics.median(samples[BASELINE])
    cpu_base = statistics.median(cpu_samples[BASELINE])
    functions = {}
    for name, values in samples.items():
        if name == BASELINE:
            continue
        ratio = round(statistics.median(values) / base, 2)
        functions[name] = {
            "kind": kind(name),
            "snap_start": wiring.snap_start(name),
            "import_ms_p50": round(statistics.median(values) * 1000, 1),
            "ratio_to_boto3": ratio,
            "goal_ratio": GOALS[kind(name)],
            "goal_met": ratio <= GOALS[kind(name)],
            # CPU time is steadier than wall time on a shared machine: a check on the wall-time ratio.
            "cpu_ratio_to_boto3": round(statistics.median(cpu_samples[name]) / cpu_base, 2),
            "snapshot_init_ms_p50": round(statistics.median(init_samples[name]) * 1000, 1),
            "heavy_imports": heavy[name],
        }
    result = {
        "what": "handler module import in a fresh interpreter vs `import boto3` alone (median of rounds)",
        "rounds": rounds,
        "boto3_import_ms_p50": round(base * 1000, 1),
        "boto3_import_cpu_ms_p50": round(cpu_base * 1000, 1),
        "functions": functions,
    }
    write_result("cold_start", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    print(json.dumps(main(parser.parse_args().rounds), indent=2))
