"""Benchmarks of the real stack: `make bench` (python -m tests.bench). Latest numbers: RESULTS.md."""
