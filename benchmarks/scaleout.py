"""The scale-out row: records per second of one kerasjit process against a local Dask cluster.

`python -m benchmarks.scaleout [--model mnist] [--records 20000] [--workers N] [--out DIR]`
compiles the model once, then scores the same records (a) with `CompiledModel.predict` in this
process, batch by batch, using all cores through numba's pool, and (b) with `kerasjit.scaleout` on a
`LocalCluster` of N single-threaded worker processes; each is the median of repeated runs after a
warm-up. The scaling ratio is (b) / (a). Writes `scaleout.json` and a Markdown row to stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _build(name: str, directory: Path) -> str:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    from . import models
    info = models.get(name)
    model = info.build(keras)
    path = directory / f"{name}.keras"
    model.save(path)
    return str(path)


def measure(model: str = "mnist", records: int = 20000, batch: int = 256, workers: int | None = None,
            repeats: int = 3) -> dict:
    """Records/s for one process and for a local Dask cluster on the same data."""
    import dask.array as da
    from distributed import Client, LocalCluster

    import kerasjit
    import kerasjit.scaleout as ks

    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cm = kerasjit.compile(_build(model, d), cache_dir=d / "cache")
        art = str(cm.save(d / "model.kjit"))
        shape = (records,) + tuple(cm.input_shapes[0][1:])
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

        def single() -> float:
            t = time.perf_counter()
            for i in range(0, records, batch):
                cm.predict(x[i:i + batch])
            return time.perf_counter() - t

        single()
        one = statistics.median(single() for _ in range(repeats))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=40) as lc, Client(lc):
            xd = da.from_array(x, chunks=(batch * 8,) + shape[1:])

            def cluster() -> float:
                t = time.perf_counter()
                ks.predict_array(art, xd, threads_per_worker=1).compute()
                return time.perf_counter() - t

            cluster()
            many = statistics.median(cluster() for _ in range(repeats))
    return {"model": model, "records": records, "batch": batch, "workers": workers,
            "one_process_records_per_s": records / one, "cluster_records_per_s": records / many,
            "scaling": one / many}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scaleout", description=__doc__)
    ap.add_argument("--model", default="mnist")
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", type=int)
    ap.add_argument("--out", type=Path, default=Path("bench_out"))
    a = ap.parse_args(argv)
    r = measure(a.model, a.records, a.batch, a.workers)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "scaleout.json").write_text(json.dumps(r, indent=1))
    print("| model | records | one process (records/s) | local Dask cluster, "
          f"{r['workers']} workers (records/s) | scaling |\n|---|---|---|---|---|\n"
          f"| {r['model']} | {r['records']} | {r['one_process_records_per_s']:,.0f} | "
          f"{r['cluster_records_per_s']:,.0f} | {r['scaling']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
