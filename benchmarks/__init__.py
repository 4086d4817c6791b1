"""kerasjit's benchmark suite: `python -m benchmarks --help` (see README.md in this folder).

This package imports nothing heavy: the parent process only orchestrates; each engine and each model
preparation runs in a subprocess of its own.
"""
