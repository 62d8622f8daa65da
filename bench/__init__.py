"""Benchmarks of the real stack: `make bench` (python -m bench). Latest numbers: bench/RESULTS.md."""
