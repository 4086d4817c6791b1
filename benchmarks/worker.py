"""One engine in its own process, driven by the parent over a JSON-lines pipe.

    python -m benchmarks.worker ENGINE --threads N --workdir DIR

Why a process per (model, engine): TensorFlow, JAX, ONNX Runtime and numba each bring thread pools and
allocators that should not share a process with their competitors, and the peak resident memory of
the process (getrusage) is then one engine's on one model. The parent waits for every reply before it
sends the next request, so only one engine runs at any moment: the workers take turns, which keeps
the suite's interleaving.

Protocol: the worker first answers `{"ok": true, "ready": ...}` (or `{"ok": false, "unavailable": true}`),
then one reply per request line. Requests: `setup`, `warmup`, `time`, `stats`, `exit` (see `Worker`).
Replies go to the original stdout descriptor only; fd 1 is redirected to stderr so that frameworks
printing to stdout cannot corrupt the protocol.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO


from . import files, models
from .engines import Engine, EngineUnavailable, Ready, create
from .files import PreparedModel
from .util import current_rss_mib, peak_rss_mib, short_reason


class Worker:
    """The request handlers; state is the engine, the current model and its inputs per batch."""

    def __init__(self, engine: Engine, workdir: Path):
        self.engine = engine
        self.workdir = workdir
        self.pm: PreparedModel | None = None
        self.ready: Ready | None = None
        self.inputs: dict[int, Any] = {}

    def _inputs(self, batch: int) -> Any:
        assert self.pm is not None
        if batch not in self.inputs:
            xs = models.make_inputs(self.pm.info, batch, files.SEED_BENCH)
            self.inputs[batch] = self.engine.prepare_inputs(xs)
        return self.inputs[batch]

    def setup(self, model: str, dir: str) -> dict[str, Any]:
        """Cold setup, warm setup (each up to the first batch-1 result), then the output check."""
        self.pm = pm = PreparedModel(model, Path(dir))
        reason = self.engine.supports(pm.info)
        if reason:
            return {"ok": False, "unavailable": True, "error": reason}
        x1 = self._inputs(1)
        t0 = time.perf_counter()
        ready = self.engine.setup(pm, cold=True, workdir=self.workdir)
        ready.predict(x1)
        cold = time.perf_counter() - t0
        del ready
        gc.collect()
        t0 = time.perf_counter()
        self.ready = self.engine.setup(pm, cold=False, workdir=self.workdir)
        self.ready.predict(x1)
        warm = time.perf_counter() - t0
        reply: dict[str, Any] = {"ok": True, "setup_cold_s": cold + self.engine.cold_extra_s(pm),
                                 "setup_warm_s": warm, "info": self.ready.info}
        if self.engine.verifies:
            y = self.ready.predict(self.engine.prepare_inputs(pm.verify_inputs()))
            reply["verify"] = files.compare(y, pm.reference())
        else:
            reply["verify"] = {"ok": None, "skipped": "engine has its own weights"}
        return reply

    def warmup(self, batch: int, min_calls: int, min_s: float, max_calls: int = 1000) -> dict[str, Any]:
        """Call until both `min_calls` and `min_s` are reached; reply with the median call time."""
        assert self.ready is not None
        x, predict = self._inputs(batch), self.ready.predict
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < min_s):
            t0 = time.perf_counter()
            predict(x)
            times.append(time.perf_counter() - t0)
        return {"ok": True, "calls": len(times), "per_call_s": statistics.median(times[len(times) // 2:])}

    def time(self, batch: int, n: int) -> dict[str, Any]:
        """`n` timed calls at `batch`, one sample each, with the garbage collector off."""
        assert self.ready is not None
        x, predict = self._inputs(batch), self.ready.predict
        samples = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(n):
                t0 = time.perf_counter()
                predict(x)
                samples.append(time.perf_counter() - t0)
        finally:
            gc.enable()
        return {"ok": True, "samples": samples}

    def stats(self) -> dict[str, Any]:
        """Peak (getrusage) and current resident memory of this process, MiB."""
        return {"ok": True, "peak_rss_mib": peak_rss_mib(), "rss_mib": current_rss_mib()}


def _pin_threads(threads: int) -> list[int] | None:
    """Restrict this process to `threads` CPUs when that is fewer than it may use; return them."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if threads >= len(cpus):
        return None
    os.sched_setaffinity(0, cpus[:threads])
    return cpus[:threads]


def _send(out: TextIO, reply: dict[str, Any]) -> None:
    out.write(json.dumps(reply, default=float) + "\n")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve requests from stdin until `exit` or end of input."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    ap.add_argument("engine")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    args = ap.parse_args(argv)

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    pinned = _pin_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    try:
        engine = create(args.engine)
        versions = engine.load(args.threads)
    except (EngineUnavailable, ImportError) as e:
        _send(out, {"ok": False, "unavailable": True, "error": short_reason(e) if isinstance(e, ImportError) else str(e)})
        return 0
    except Exception as e:  # noqa: BLE001
        _send(out, {"ok": False, "error": short_reason(e), "traceback": traceback.format_exc()})
        return 1
    _send(out, {"ok": True, "ready": True, "versions": versions, "import_s": time.perf_counter() - t0,
                "baseline_rss_mib": current_rss_mib(), "pinned_cpus": pinned, "pid": os.getpid()})

    worker = Worker(engine, args.workdir)
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "exit":
            break
        try:
            reply = getattr(worker, cmd)(**request)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which fails this model only
            traceback.print_exc()
            reply = {"ok": False, "error": short_reason(e), "traceback": traceback.format_exc()}
        _send(out, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
