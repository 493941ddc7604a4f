"""Cold start: the import time of each function's handler module in a fresh interpreter against ``import boto3``
alone (what any Python Lambda on AWS pays), interleaved over several rounds; and which heavy libraries each
handler drags in.

    .venv/bin/python -m bench.cold_start [--rounds 5]

Each sample is one new ``python`` process timing its own import with ``perf_counter`` (interpreter start-up is
the same for all and left out). The figure is the median over the rounds and its ratio to boto3's.
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
# Libraries a function should carry only if it needs them: media decoding, an HTTP client, numeric code, and
# the Powertools resolver with its pydantic validation (only HTTP functions need it).
HEAVY = ["av", "imageio_ffmpeg", "httpx", "numpy", "pydantic", "aws_lambda_powertools.event_handler"]
PROBE = """
import json, sys, time
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "heavy": [name for name in {heavy!r} if name in sys.modules]}}))
"""


def handler_modules() -> dict[str, str]:
    """Function name -> its handler module (``functions.submit.handler.lambda_handler`` -> ``...handler``)."""
    return {name: function.handler.rsplit(".", 1)[0] for name, function in wiring.FUNCTIONS.items()}


def time_import(module: str) -> dict[str, Any]:
    env = os.environ | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def main(rounds: int = 5) -> dict[str, Any]:
    modules = {BASELINE: BASELINE, **handler_modules()}
    samples: dict[str, list[float]] = {name: [] for name in modules}
    heavy: dict[str, list[str]] = {}
    time_import(BASELINE)  # warm the file-system cache once, for everyone alike
    for _ in range(rounds):
        for name, module in modules.items():  # interleaved: noise hits every module alike
            probe = time_import(module)
            samples[name].append(probe["seconds"])
            heavy[name] = probe["heavy"]
    base = statistics.median(samples[BASELINE])
    functions = {
        name: {
            "import_ms_p50": round(statistics.median(values) * 1000, 1),
            "ratio_to_boto3": round(statistics.median(values) / base, 2),
            "heavy_imports": heavy[name],
        }
        for name, values in samples.items()
        if name != BASELINE
    }
    result = {
        "what": "handler module import in a fresh interpreter vs `import boto3` alone (median of rounds)",
        "rounds": rounds,
        "boto3_import_ms_p50": round(base * 1000, 1),
        "functions": functions,
    }
    write_result("cold_start", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    print(json.dumps(main(parser.parse_args().rounds), indent=2))
