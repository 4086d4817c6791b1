"""The suite: prepare each model, start one worker per engine, time them in interleaved rounds, report.

For each model:
  1. prepare (subprocesses): Keras 3 build with random weights -> model.keras + reference output;
     tf.keras build with the same weights -> model.h5 -> model.onnx (when a TF-based engine runs);
  2. start one worker process per engine, one after another; each sets up its engine twice (cold,
     warm) and checks its output against the Keras 3 reference;
  3. warm up every (engine, batch), then `rounds` rounds: in each round every engine in turn (the order
     rotates by one each round) runs its calls for every batch; only one worker runs at any moment;
  4. read each worker's memory, close the workers, then time kerasjit's fresh-process start from the
     artifact it saved.
The figures are medians over all samples of all rounds. Nothing an engine does can stop the suite: a
failure is recorded for that (model, engine) and the suite goes on.
"""
from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import models, stats, sysinfo
from .client import WorkerClient, WorkerError, worker_env
from .coldstart import measure as measure_coldstart
from .engines import engine_device
from .files import PreparedModel
from .kerasjit_import import REPO_ROOT
from .progress import Progress

__all__ = ["SuiteConfig", "run_suite"]

#: engines that need the tf.keras build (and TensorFlow, tf_keras installed) to run
TF_BASED = ("tensorflow", "onnxruntime")


@dataclass
class SuiteConfig:
    """Everything that decides what the suite measures and how (recorded in results.json)."""

    out: Path
    models: list[str]
    engines: list[str]
    quick: bool = False
    threads: int = 1
    rounds: int = 10
    #: seconds of calls per (engine, batch) per round; the call count is fixed after warm-up
    round_s: float = 0.5
    max_calls_per_round: int = 200
    warmup_calls: int = 3
    warmup_s: float = 1.0
    cpu_batches: tuple[int, ...] = (1, 16)
    gpu_batches: tuple[int, ...] = (1, 16, 32, 256)
    coldstart_runs: int = 3
    #: seconds allowed for preparing a model, starting a worker, setting an engine up
    prepare_timeout: float = 1200.0
    start_timeout: float = 300.0
    setup_timeout: float = 1800.0

    @classmethod
    def preset(cls, out: Path, models: list[str], engines: list[str], quick: bool, threads: int) -> "SuiteConfig":
        """The full or `--quick` settings."""
        if quick:
            return cls(out, models, engines, True, threads, rounds=3, round_s=0.1, warmup_calls=2,
                       warmup_s=0.2, coldstart_runs=1)
        return cls(out, models, engines, False, threads)

    def batches(self, engine: str) -> tuple[int, ...]:
        return self.gpu_batches if engine_device(engine) == "cuda" else self.cpu_batches


@dataclass
class EngineRun:
    """One engine on one model while the suite runs; `record()` is what results.json keeps."""

    name: str
    status: str = "pending"  # ok | failed | unavailable
    error: str | None = None
    client: WorkerClient | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    calls: dict[int, int] = field(default_factory=dict)
    samples: dict[int, list[float]] = field(default_factory=dict)

    def fail(self, e: BaseException) -> None:
        unavailable = isinstance(e, WorkerError) and e.unavailable
        self.status = "unavailable" if unavailable else "failed"
        self.error = str(e)
        if isinstance(e, WorkerError) and e.reply.get("traceback"):
            self.facts["traceback"] = e.reply["traceback"]
        if self.client is not None:
            self.client.kill()
            self.client.close()
            self.client = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "error": self.error, **self.facts}
        out["batches"] = {str(b): {**stats.summarize(s, b), "calls_per_round": self.calls.get(b)}
                          for b, s in self.samples.items() if s}
        return out


def _prepare(step: str, pm: PreparedModel, cfg: SuiteConfig, extra: list[str], log: Path) -> dict[str, Any]:
    """Run one preparation subprocess; its JSON record, or a failure record."""
    cmd = [sys.executable, "-m", "benchmarks.prepare", step, "--model", pm.name, "--dir", str(pm.dir), *extra]
    (pm.dir / f"prep_{step}.json").unlink(missing_ok=True)
    with open(log, "ab") as f:
        try:
            subprocess.run(cmd, stdout=f, stderr=f, cwd=REPO_ROOT, env=worker_env(cfg.threads),
                           timeout=cfg.prepare_timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"timeout after {cfg.prepare_timeout:.0f} s"}
    record = pm.prep(step)
    return record or {"ok": False, "error": f"prepare {step} wrote no record (see {log})"}


def _tf_stack_missing() -> str | None:
    """Why the tf.keras build cannot be made in this interpreter (without importing TensorFlow), or None."""
    missing = [m for m in ("tensorflow", "tf_keras") if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(missing)} (needed for the tf.keras build)" if missing else None


class Suite:
    """State of one suite run: configuration, engine notes, per-model results."""

    def __init__(self, cfg: SuiteConfig):
        self.cfg = cfg
        self.unavailable: dict[str, str] = {}
        self.engine_versions: dict[str, dict[str, str]] = {}
        self.results: dict[str, Any] = {
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
            "machine": sysinfo.machine(), "versions": sysinfo.versions(), "engines": {}, "models": {}}
        tf_missing = _tf_stack_missing()
        if tf_missing:
            for e in TF_BASED:
                if e in cfg.engines:
                    self.unavailable[e] = tf_missing
        if "onnxruntime" in cfg.engines and "onnxruntime" not in self.unavailable \
                and importlib.util.find_spec("tf2onnx") is None:
            self.unavailable["onnxruntime"] = "not installed: tf2onnx (needed for the ONNX conversion)"

    # ------------------------------------------------------------------------------------------ model

    def run_model(self, name: str, progress: Progress) -> dict[str, Any]:
        """Everything for one model; returns its results.json entry."""
        cfg = self.cfg
        info = models.get(name)
        pm = PreparedModel(name, cfg.out / "models" / name)
        pm.dir.mkdir(parents=True, exist_ok=True)
        logs = cfg.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        entry: dict[str, Any] = {"title": info.title, "inputs": [asdict(s) for s in info.inputs], "engines": {}}

        progress.describe(f"{name}: preparing")
        entry["prep_keras3"] = _strip(_prepare("keras3", pm, cfg, [], logs / f"{name}.prepare.log"))
        if not entry["prep_keras3"].get("ok"):
            entry["error"] = f"preparation failed: {entry['prep_keras3'].get('error')}"
            return entry
        tf_engines = [e for e in cfg.engines if e in TF_BASED and e not in self.unavailable]
        if tf_engines:
            onnx = ["--onnx"] if "onnxruntime" in tf_engines else []
            entry["prep_tf"] = _strip(_prepare("tf", pm, cfg, onnx, logs / f"{name}.prepare.log"))
        progress.update()

        runs = [EngineRun(e) for e in cfg.engines if e not in self.unavailable]
        entry["load_average"] = {"start": _load()}
        try:
            self._start_and_setup(pm, runs, progress)
            progress.update()
            self._rounds(runs, progress)
            for run in runs:
                self._finish(run)
        finally:
            for run in runs:
                if run.client is not None:
                    run.client.kill()
                    run.client.close()
                    run.client = None
        for run in runs:
            if run.status == "ok" and "artifact" in run.facts.get("info", {}):
                progress.describe(f"{name}: {run.name} fresh-process start")
                run.facts["coldstart"] = self._coldstart(Path(run.facts["info"]["artifact"]), name)
        entry["load_average"]["end"] = _load()
        self._add_ratios(runs)
        for run in runs:
            entry["engines"][run.name] = run.record()
        return entry

    def _start_and_setup(self, pm: PreparedModel, runs: list[EngineRun], progress: Progress) -> None:
        cfg = self.cfg
        for run in runs:
            if run.name in self.unavailable:
                run.status, run.error = "unavailable", self.unavailable[run.name]
                continue
            progress.describe(f"{pm.name}: {run.name} setup")
            workdir = cfg.out / "work" / pm.name / run.name
            log = cfg.out / "logs" / f"{pm.name}.{run.name}.log"
            try:
                run.client = WorkerClient(run.name, cfg.threads, workdir, log, cfg.start_timeout)
            except WorkerError as e:
                run.fail(e)
                if e.unavailable:  # the engine cannot run on this machine at all: note it once
                    self.unavailable[run.name] = str(e)
                continue
            hello = run.client.hello
            self.engine_versions[run.name] = hello.get("versions", {})
            run.facts.update(import_s=hello.get("import_s"), pinned_cpus=hello.get("pinned_cpus"),
                             memory={"baseline_rss_mib": hello.get("baseline_rss_mib")})
            try:
                reply = run.client.request("setup", cfg.setup_timeout, model=pm.name, dir=str(pm.dir))
                run.facts.update({k: reply[k] for k in ("setup_cold_s", "setup_warm_s", "verify", "info") if k in reply})
                for batch in cfg.batches(run.name):
                    w = run.client.request("warmup", cfg.setup_timeout, batch=batch, min_calls=cfg.warmup_calls,
                                           min_s=cfg.warmup_s)
                    per_call = max(w["per_call_s"], 1e-9)
                    run.calls[batch] = max(1, min(cfg.max_calls_per_round, round(cfg.round_s / per_call)))
                    run.samples[batch] = []
                run.status = "ok"
            except WorkerError as e:
                run.fail(e)

    def _rounds(self, runs: list[EngineRun], progress: Progress) -> None:
        cfg = self.cfg
        for r in range(cfg.rounds):
            active = [run for run in runs if run.status == "ok"]
            if not active:
                progress.update(cfg.rounds - r)
                return
            shift = r % len(active)
            for run in active[shift:] + active[:shift]:
                progress.describe(f"round {r + 1}/{cfg.rounds}: {run.name}")
                try:
                    for batch in cfg.batches(run.name):
                        n = run.calls[batch]
                        timeout = max(120.0, 50 * n * (_median(run.samples[batch]) or 1.0))
                        assert run.client is not None
                        reply = run.client.request("time", timeout, batch=batch, n=n)
                        run.samples[batch].extend(reply["samples"])
                except WorkerError as e:
                    run.fail(e)
            progress.update()

    def _finish(self, run: EngineRun) -> None:
        if run.client is None:
            return
        try:
            mem = run.client.request("stats", 60)
            run.facts.setdefault("memory", {}).update(peak_rss_mib=mem["peak_rss_mib"], rss_mib=mem["rss_mib"])
        except WorkerError as e:
            run.fail(e)
            return
        run.client.close()
        run.client = None

    def _coldstart(self, artifact: Path, model: str) -> dict[str, Any]:
        tries = [measure_coldstart(artifact, model, self.cfg.threads, self.cfg.setup_timeout)
                 for _ in range(self.cfg.coldstart_runs)]
        good = [t for t in tries if "error" not in t]
        out: dict[str, Any] = {"runs": tries}
        if good:
            for key in ("inside_s", "outside_s", "import_s", "load_s", "predict_s", "peak_rss_mib"):
                out[key] = _median([t[key] for t in good])
        else:
            out["error"] = tries[0]["error"] if tries else "not run"
        return out

    def _add_ratios(self, runs: list[EngineRun]) -> None:
        medians = {(run.name, b): stats.summarize(s, b).get("median_s") for run in runs for b, s in run.samples.items()}
        for run in runs:
            ref = "kerasjit-cuda" if engine_device(run.name) == "cuda" else "kerasjit-cpu"
            run.facts["ratio_reference"] = ref
            run.facts["ratio_to_kerasjit"] = {
                str(b): stats.ratio(medians.get((run.name, b)), medians.get((ref, b))) for b in run.samples}

    # ------------------------------------------------------------------------------------------ suite

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        progress = Progress(total=len(cfg.models) * (2 + cfg.rounds))
        t0 = time.perf_counter()
        try:
            for name in cfg.models:
                tm = time.perf_counter()
                try:
                    self.results["models"][name] = self.run_model(name, progress)
                except KeyboardInterrupt:
                    self.results["interrupted"] = f"interrupted during {name}; later models not run"
                    progress.write(f"[bench] {self.results['interrupted']}")
                    break
                except Exception as e:  # noqa: BLE001 - a bug here must not lose the other models
                    self.results["models"][name] = {"title": models.get(name).title,
                                                    "error": f"suite error: {type(e).__name__}: {e}", "engines": {}}
                progress.write(f"[bench] {name}: {_model_line(self.results['models'][name])} "
                               f"({time.perf_counter() - tm:.0f} s)")
                self._save_partial()
        finally:
            progress.close()
        self.results["engines"] = {
            e: ({"status": "unavailable", "note": self.unavailable[e]} if e in self.unavailable
                else {"status": "ran", "versions": self.engine_versions.get(e, {})}) for e in cfg.engines}
        self.results["wall_s"] = time.perf_counter() - t0
        return self.results

    def _save_partial(self) -> None:
        (self.cfg.out / "results.partial.json").write_text(json.dumps(self.results, indent=1, default=str))


def _median(xs: list[float]) -> float | None:
    """Median of a possibly empty list."""
    return statistics.median(xs) if xs else None


def _load() -> float | None:
    """The 1-minute load average: above the thread count, other processes competed for the CPUs."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    """A preparation record without its tracebacks (they are in the logs)."""
    return {k: v for k, v in record.items() if "traceback" not in k}


def _model_line(entry: dict[str, Any]) -> str:
    if entry.get("error"):
        return entry["error"]
    parts = []
    for e, r in entry["engines"].items():
        b1 = r.get("batches", {}).get("1", {}).get("median_s")
        parts.append(f"{e} {b1 * 1e3:.3g} ms" if b1 else f"{e} {r['status']}")
    return ", ".join(parts)


def run_suite(cfg: SuiteConfig) -> dict[str, Any]:
    """Run the whole suite and return the results.json content (the report is written by report.py)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    return Suite(cfg).run()
