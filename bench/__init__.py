"""Benchmarks: every figure is a ratio or distribution measured side by side with its baseline in one run."""
