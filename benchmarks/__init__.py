"""Benchmark scripts: each prints a table; run them with ``python -m benchmarks.NAME``."""
