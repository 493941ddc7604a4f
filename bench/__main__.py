"""``make bench``: run every benchmark, write ``bench/results/*.json``, print a summary."""

from __future__ import annotations

import subprocess
import sys
import time

# Each module measures its figure against a baseline in the same run and writes bench/results/<name>.json.
BENCHMARKS = [
    "bench.submit_overhead",
    "bench.worker",
    "bench.notify_latency",
    "bench.sse_transport",
    "bench.cold_start",
    "bench.load",
    "bench.fairness",
    "bench.chunked",
    "bench.plots",  # last: draws the figures from the results the others wrote
]


def run() -> int:
    failures = 0
    for name in BENCHMARKS:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        # Each in a fresh interpreter: a local stack owns its process's environment and moto state, and one
        # benchmark's leftovers (cached clients, imported handlers) must not skew or break the next.
        if subprocess.run([sys.executable, "-m", name]).returncode != 0:
            failures += 1
            print(f"   FAILED: {name}", flush=True)  # the others' figures still count
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
