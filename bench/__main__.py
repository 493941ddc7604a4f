"""``make bench``: run every benchmark, write ``bench/results/*.json``, print a summary."""

from __future__ import annotations

import importlib
import json
import sys
import time

# Each module has ``main() -> dict`` that measures its figure against a baseline in the same run.
BENCHMARKS = [
    "bench.submit_overhead",
    "bench.worker",
    "bench.notify_latency",
    "bench.cold_start",
    "bench.load",
    "bench.plots",  # last: draws the figures from the results the others wrote
]


def run() -> int:
    failures = 0
    for name in BENCHMARKS:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            result = importlib.import_module(name).main()
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failures += 1
            print(f"   FAILED: {error!r}", flush=True)
            continue
        print(json.dumps(result, indent=2), flush=True)
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
