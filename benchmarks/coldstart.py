"""First prediction of a fresh process from a saved kerasjit artifact (targets.md: under 0.5 s).

    python -m benchmarks.coldstart ARTIFACT_DIR --model mnist

Prints one JSON line: seconds from this module's start to the result ("inside"), split into import,
`kerasjit.load` and the first `predict`, and the process's peak RSS. The parent adds the wall time of
the whole process ("outside": interpreter start-up and exit included), see `measure`.
"""
from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def measure(artifact: Path, model: str, threads: int, timeout: float) -> dict[str, Any]:
    """Run this module in a fresh process; its reply plus `outside_s`, or `{"error": ...}`."""
    from .client import worker_env
    from .kerasjit_import import REPO_ROOT

    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.coldstart", str(artifact), "--model", model],
                              capture_output=True, text=True, cwd=REPO_ROOT, env=worker_env(threads), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    outside = time.perf_counter() - t0
    lines = proc.stdout.strip().splitlines()
    try:
        reply = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"rc={proc.returncode}: {tail[:160]}"}
    reply["outside_s"] = outside
    return reply


def main(argv: list[str] | None = None) -> int:
    """Load the artifact, predict once at batch 1, print the timings as JSON."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.coldstart")
    ap.add_argument("artifact", type=Path)
    ap.add_argument("--model", required=True)
    args = ap.parse_args(argv)
    try:
        from . import files, models
        from .util import peak_rss_mib

        xs = models.make_inputs(models.get(args.model), 1, files.SEED_BENCH)
        t_inputs = time.perf_counter()
        from .kerasjit_import import import_kerasjit

        kerasjit = import_kerasjit()
        t_import = time.perf_counter()
        cm = kerasjit.load(str(args.artifact))
        t_load = time.perf_counter()
        cm.predict(xs[0] if len(xs) == 1 else xs)
        t_done = time.perf_counter()
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"{type(e).__name__}: {e}"[:200]}))
        return 1
    print(json.dumps({"inside_s": t_done - _T_START, "import_s": t_import - t_inputs, "load_s": t_load - t_import,
                      "predict_s": t_done - t_load, "inputs_s": t_inputs - _T_START, "peak_rss_mib": peak_rss_mib(),
                      "pid": os.getpid()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
