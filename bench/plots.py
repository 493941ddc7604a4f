"""PNG plots of the benchmark results: the load test's submission latency histogram, the submit overhead
percentiles, the drain scaling curve and the cold-start ratios. Reads ``bench/results/*.json``, writes the PNGs
there and copies them to ``bench/plots/`` (the figures ``bench/README.md`` embeds).

    .venv/bin/python -m bench.plots
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines

import matplotlib.pyplot as plt

from bench.common import RESULTS

PLOTS = Path(__file__).resolve().parent / "plots"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_latency(figure: plt.Figure, latencies: dict[str, Any], summary: dict[str, Any]) -> None:
    axes = figure.subplots()
    samples_ms = [seconds * 1000 for seconds in latencies["submit_latencies_s"]]
    axes.hist(samples_ms, bins=50, color="tab:blue")
    for label, style in (("p50_ms", "-"), ("p95_ms", "--"), ("p99_ms", ":")):
        value = summary["latency"][label]
        axes.axvline(value, color="black", linestyle=style, label=f"{label.removesuffix('_ms')} {value:.0f} ms")
    axes.set(
        title=f"POST /jobs latency: {summary['submissions']} submissions at concurrency {summary['concurrency']}",
        xlabel="latency (ms)",
        ylabel="requests",
    )
    axes.legend()


def submit_overhead(figure: plt.Figure, result: dict[str, Any]) -> None:
    axes = figure.subplots()
    paths = ["bare_boto3", "handler", "http"]
    percentiles = ["p50_ms", "p95_ms", "p99_ms"]
    width = 0.25
    for offset, label in enumerate(percentiles):
        values = [result[path][label] for path in paths]
        axes.bar([index + offset * width for index in range(len(paths))], values, width, label=label[:3])
    axes.set_xticks([index + width for index in range(len(paths))], ["bare PutItem+SendMessage", "handler", "HTTP"])
    axes.set(title="Submit overhead, one request at a time (ms)", ylabel="latency (ms)")
    axes.legend()


def drain_curve(figure: plt.Figure, summary: dict[str, Any]) -> None:
    axes = figure.subplots()
    jobs = [point["jobs"] for point in summary["drain"]]
    seconds = [point["drain_seconds"] for point in summary["drain"]]
    axes.plot(jobs, seconds, marker="o", label="measured")
    # Linear growth from the smallest batch's rate: the curve staying on it means no slowdown with size.
    rate = seconds[0] / jobs[0]
    axes.plot([0, jobs[-1]], [0, rate * jobs[-1]], linestyle="--", color="grey", label="linear from first point")
    axes.set(title="Drain time: first submit -> every job completed", xlabel="jobs", ylabel="seconds")
    axes.legend()


def cold_start(figure: plt.Figure, result: dict[str, Any]) -> None:
    axes = figure.subplots()
    functions = result["functions"]
    names = sorted(functions, key=lambda name: (functions[name]["kind"], functions[name]["ratio_to_boto3"]))
    ratios = [functions[name]["ratio_to_boto3"] for name in names]
    colors = ["tab:green" if functions[name]["goal_met"] else "tab:red" for name in names]
    axes.barh(names, ratios, color=colors)
    # Each function's goal (issue 14), as a tick on its own bar.
    goals = [functions[name]["goal_ratio"] for name in names]
    axes.scatter(goals, names, marker="|", s=400, color="black", label="goal (green: met, red: missed)", zorder=3)
    axes.axvline(1.0, color="grey", linestyle="--", label=f"import boto3 ({result['boto3_import_ms_p50']} ms)")
    axes.set(title="Handler import time / import boto3 (fresh interpreter, median)", xlabel="ratio")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)


def chunked(figure: plt.Figure, result: dict[str, Any]) -> None:
    local, projected = figure.subplots(1, 2)
    single, split = result["single"], result["chunked"]
    local.bar(
        ["single, 1 worker", f"chunked, 2 workers\n({split['chunks']} chunks)"],
        [single["wall_seconds"], split["wall_seconds"]],
    )
    local.bar(
        ["chunked, 2 workers\n(" + str(split["chunks"]) + " chunks)"],
        [result["overhead_seconds"]],
        color="tab:red",
        label="overhead",
    )
    measured = f"{result['input']['seconds']} s {result['input']['height']}p"
    local.set(title=f"Measured: {measured}, one run\n(shared 2-core VM: load in bench/README.md)", ylabel="seconds")
    local.legend()
    projection = result["projection"]
    workers = [point["workers"] for point in projection["chunked"]]
    projected.plot(workers, [p["wall_seconds"] for p in projection["chunked"]], marker="o", label="chunked (as built)")
    projected.plot(
        workers,
        [p["wall_seconds"] for p in projection["chunked_if_chunks_read_only_their_range"]],
        marker="o",
        linestyle="--",
        label="chunks reading only their range",
    )
    projected.axhline(projection["single"]["fargate_2vcpu"]["wall_seconds"], color="grey", label="single, Fargate")
    projected.axhline(projection["goal_wall_seconds_at_120"], color="black", linestyle=":", label="goal (120 s)")
    projected.axhline(93.5, color="tab:green", linestyle=":", label="Mux median (93.5 s)")
    projected.set(
        title="PROJECTION: 60 min 1080p ladder", xlabel="workers", ylabel="seconds", xscale="log", yscale="log"
    )
    projected.legend(fontsize="small")


def main() -> dict[str, Any]:
    figures = {
        "load_latency": (load_latency, ["load_latencies", "load"]),
        "submit_overhead": (submit_overhead, ["submit_overhead"]),
        "drain_scaling": (drain_curve, ["load"]),
        "cold_start": (cold_start, ["cold_start"]),
        "chunked": (chunked, ["chunked"]),
    }
    PLOTS.mkdir(exist_ok=True)
    written, missing = [], []
    for name, (draw, sources) in figures.items():
        inputs = [load(source) for source in sources]
        if any(value is None for value in inputs):
            missing.append(name)  # its benchmark did not run (or failed): no stale figure
            continue
        figure = plt.figure(figsize=(8, 4.5), layout="constrained")
        draw(figure, *inputs)
        path = RESULTS / f"{name}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        shutil.copy(path, PLOTS / path.name)
        written.append(str(PLOTS.relative_to(PLOTS.parents[1]) / path.name))
    return {"written": written, "missing_results": missing}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
