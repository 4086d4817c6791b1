"""results.json -> results.md (Markdown tables) and ratios.png (bar chart)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["write_reports", "markdown"]

METHOD = """\
## Method
- Each engine runs in its own worker process per model (TensorFlow, JAX, ONNX Runtime and numba never
  share a process). The parent starts them one after another and asks one at a time, so exactly one
  engine computes at any moment. After a warm-up of every (engine, batch), each round lets every engine
  in turn (order rotated by one per round) make its calls for every batch; a figure is the median of all
  samples of all rounds, one sample per `predict` call, garbage collector off.
- Every call is numpy in, numpy out: host-to-device copies and the device sync are inside the time.
- Threads: every engine gets the same count (`--threads`, default: all CPUs this process may use):
  OMP/MKL/OPENBLAS/NUMBA_NUM_THREADS and TF_NUM_INTRA/INTEROP_THREADS are set for every worker;
  TensorFlow's intra- and inter-op pools and ONNX Runtime's intra-op pool (sequential execution) are set
  to it; XLA (JAX) sizes its pool by the CPUs it may use, which the worker restricts by affinity when
  `--threads` is below the count.
- Compile cold / warm: from the model file to the first batch-1 result, in a worker whose framework is
  already imported. kerasjit: `compile()` into an emptied cache dir, then `compile()` again (cache hit).
  JAX: `load_model` + `jax.jit` + first call, twice in the process. TensorFlow: `load_model(h5)` +
  `tf.function` trace + first call, twice. ONNX Runtime: cold = h5 load + tf2onnx conversion (timed at
  preparation) + session + first run; warm = a second session from the .onnx file.
- Fresh-process start (kerasjit): a new Python process runs `kerasjit.load(artifact)` + one batch-1
  predict; "inside" is from the start of that script, "outside" the parent's wall time of the process.
- Memory: peak resident set (getrusage ru_maxrss) of the engine's worker process after all timing; it
  includes the framework import and the engine's setup (compilation, conversion). The base RSS after the
  import alone is in results.json.
- Correctness: every engine's output on a fixed batch is compared with Keras 3 (JAX backend) on the same
  weights; tolerance `1e-4 * max(1, max|keras|)`. The tf.keras build gets the Keras 3 weights layer by
  layer. torchvision models have their own random weights and are not compared.
"""


def _ms(s: float | None) -> str:
    if s is None:
        return "-"
    ms = s * 1e3
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms:,.0f} ms"


def _secs(s: float | None) -> str:
    return "-" if s is None else (f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s")


def _rate(x: float | None) -> str:
    if not x:
        return ""
    return f"{x / 1e3:.3g}k/s" if x >= 1e3 else f"{x:.3g}/s"


def _engines_shown(results: dict[str, Any]) -> list[str]:
    """Engines that appear as columns: those that ran or failed on some model, in suite order."""
    seen = {e for m in results["models"].values() for e, r in m.get("engines", {}).items()
            if r["status"] in ("ok", "failed")}
    return [e for e in results["config"]["engines"] if e in seen]


def _cell(engine: str, rec: dict[str, Any] | None, batch: str) -> str:
    if rec is None:
        return "-"
    if rec["status"] == "failed" and not rec.get("batches", {}).get(batch):
        return f"failed ({_short(rec.get('error'))})"
    if rec["status"] == "unavailable":
        return "-"
    b = rec.get("batches", {}).get(batch)
    if not b or not b.get("median_s"):
        return "-"
    text = _ms(b["median_s"])
    if batch != "1":
        text += f" · {_rate(b.get('throughput_per_s'))}"
    r = (rec.get("ratio_to_kerasjit") or {}).get(batch)
    if r and engine != rec.get("ratio_reference"):
        text += f" ({r:.2f}x)"
    if (rec.get("verify") or {}).get("ok") is False:
        text += " !"
    return text


def _short(text: str | None, limit: int = 70) -> str:
    text = (text or "unknown").replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def markdown(results: dict[str, Any]) -> str:
    """The report as Markdown: header, speed table, setup/start/memory table, correctness, notes, method."""
    m, cfg = results["machine"], results["config"]
    engines = _engines_shown(results)
    v = {k: val for k, val in results["versions"].items() if val}
    lines = [
        "# kerasjit benchmarks", "",
        f"{m['date']} · {m['cpu_model']} · {m['cpus_allowed']} CPUs, {cfg['threads']} threads per engine"
        + (f" · GPU: {'; '.join(m['gpus'])}" if m.get("gpus") else "")
        + f" · {'quick' if cfg['quick'] else 'full'} run, {cfg['rounds']} rounds"
        + (f" · load average at start {m['load_average'][0]:.2f}" if m.get("load_average") else ""), "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items())
        + (f"; kerasjit commit {m['kerasjit_commit']}" if m.get("kerasjit_commit") else ""), "",
        "## Speed", "",
        "Median time per `predict` call; batches above 1 add samples per second. In parentheses: the "
        "engine's time / kerasjit's on the same device (above 1: kerasjit is faster). `!`: output does "
        "not match Keras (see Correctness).", "",
        "| model | batch | " + " | ".join(engines) + " |",
        "|---|---|" + "---|" * len(engines),
    ]
    for entry in results["models"].values():
        if entry.get("error"):
            lines.append(f"| {entry['title']} | | " + " | ".join([f"failed ({_short(entry['error'])})"] * max(1, len(engines))) + " |")
            continue
        batches = sorted({b for r in entry["engines"].values() for b in r.get("batches", {})}, key=int) or ["1"]
        for batch in batches:
            cells = [_cell(e, entry["engines"].get(e), batch) for e in engines]
            lines.append(f"| {entry['title']} | {batch} | " + " | ".join(cells) + " |")

    lines += ["", "## Setup, start, memory", "",
              "Per engine: compile cold / warm (model file to first result) · peak RSS of its process "
              "(+ growth over the framework import alone). kerasjit adds its fresh-process first predict "
              "from a saved artifact: inside / outside the process, and that process's peak RSS.", "",
              "| model | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for entry in results["models"].values():
        if entry.get("error"):
            continue
        cells = []
        for e in engines:
            rec = entry["engines"].get(e)
            if rec is None or rec["status"] == "unavailable" or "setup_cold_s" not in rec:
                cells.append("-" if rec is None or rec["status"] == "unavailable" else f"failed ({_short(rec.get('error'), 40)})")
                continue
            text = f"{_secs(rec.get('setup_cold_s'))} / {_secs(rec.get('setup_warm_s'))}"
            mem = rec.get("memory") or {}
            if mem.get("peak_rss_mib"):
                text += f" · {mem['peak_rss_mib']:.0f} MiB"
                if mem.get("baseline_rss_mib"):
                    text += f" (+{mem['peak_rss_mib'] - mem['baseline_rss_mib']:.0f})"
            cs = rec.get("coldstart")
            if cs:
                text += (f" · start {_secs(cs['inside_s'])} / {_secs(cs['outside_s'])}, {cs['peak_rss_mib']:.0f} MiB"
                         if "inside_s" in cs else f" · start failed ({_short(cs.get('error'), 40)})")
            cells.append(text)
        lines.append(f"| {entry['title']} | " + " | ".join(cells) + " |")

    lines += ["", "## Correctness", "",
              "Max abs difference from Keras 3 on the same weights and input; `ok` within "
              "`1e-4 * max(1, max|keras|)`, `MISMATCH` outside it.", "",
              "| model | max abs Keras output | " + " | ".join(engines) + " |", "|---|---|" + "---|" * len(engines)]
    for entry in results["models"].values():
        if entry.get("error"):
            continue
        cells = []
        for e in engines:
            ver = (entry["engines"].get(e) or {}).get("verify")
            if not ver:
                cells.append("-")
            elif ver.get("ok") is None:
                cells.append("n/a")
            elif ver.get("max_abs_diff") is None:
                cells.append(f"MISMATCH ({_short(ver.get('error'), 40)})")
            else:
                cells.append(f"{ver['max_abs_diff']:.1e} {'ok' if ver['ok'] else 'MISMATCH'}")
        ref = (entry.get("prep_keras3") or {}).get("output_max_abs")
        ref_text = "-" if ref is None else f"{ref:.3g}"
        lines.append(f"| {entry['title']} | {ref_text} | " + " | ".join(cells) + " |")

    notes = [f"- {e}: skipped ({info['note']})" for e, info in results.get("engines", {}).items()
             if info.get("status") == "unavailable"]
    skipped = {e for e, info in results.get("engines", {}).items() if info.get("status") == "unavailable"}
    not_run: dict[tuple[str, str], list[str]] = {}
    for entry in results["models"].values():
        for e, rec in entry.get("engines", {}).items():
            if rec["status"] == "failed":
                notes.append(f"- {entry['title']}, {e}: failed ({_short(rec.get('error'), 300)})")
            elif rec["status"] == "unavailable" and e not in skipped:
                not_run.setdefault((e, _short(rec.get("error"))), []).append(entry["title"])
            cs = rec.get("coldstart") or {}
            if cs.get("error"):
                notes.append(f"- {entry['title']}, {e}: fresh-process start failed ({_short(cs['error'], 300)})")
        tf = entry.get("prep_tf") or {}
        if tf and not tf.get("ok"):
            notes.append(f"- {entry['title']}: tf.keras build failed ({_short(tf.get('error'), 300)})")
        elif tf.get("onnx_ok") is False:
            notes.append(f"- {entry['title']}: tf2onnx conversion failed ({_short(tf.get('onnx_error'), 300)})")
        if entry.get("error"):
            notes.append(f"- {entry['title']}: {_short(entry['error'], 300)}")
    notes += [f"- {e}: not run on {', '.join(titles)} ({why})" for (e, why), titles in not_run.items()]
    loads = [f"{e['title']} {e['load_average']['start']:.2f}->{e['load_average']['end']:.2f}"
             for e in results["models"].values() if (e.get("load_average") or {}).get("end") is not None]
    if loads:
        notes.append(f"- Load average (1 min) at the start -> end of each model's timing (CPUs: {m['cpus_allowed']}, "
                     f"threads per engine: {cfg['threads']}; a load above the CPU count means other processes "
                     "competed for them): " + ", ".join(loads))
    notes += [f"- {n}" for n in results.get("notes", [])]
    if results.get("interrupted"):
        notes.append(f"- {results['interrupted']}")
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", METHOD]
    return "\n".join(lines)


def _ratio_rows(results: dict[str, Any], engines: list[str]) -> tuple[list[str], dict[str, list[float]], bool]:
    """(group labels, engine -> ratio per group, relative_to_kerasjit) for the chart.

    Groups are (model, batch) rows. When kerasjit ran on some row, only those rows are drawn, each
    engine over kerasjit on its device; when it ran nowhere, every row, each engine over the fastest.
    """
    rows = []
    for entry in results["models"].values():
        recs = entry.get("engines", {})
        for b in sorted({b for r in recs.values() for b in r.get("batches", {})}, key=int):
            med = {e: (recs.get(e, {}).get("batches", {}).get(b) or {}).get("median_s") for e in engines}
            ref = {e: recs.get(e, {}).get("ratio_reference") for e in engines}
            rows.append((f"{entry['title']}\nb{b}", med, ref))
    with_kj = [row for row in rows if any(row[1].get(row[2][e] or "") for e in engines if row[1].get(e))]
    values: dict[str, list[float]] = {}
    if with_kj:
        shown = [e for e in engines if not e.startswith("kerasjit")]
        for e in shown:
            values[e] = [med[e] / med[ref[e]] if med.get(e) and med.get(ref[e] or "") else float("nan")
                         for _, med, ref in with_kj]
        return [label for label, _, _ in with_kj], values, True
    for e in engines:
        values[e] = [med[e] / min(v for v in med.values() if v) if med.get(e) else float("nan")
                     for _, med, _ in rows]
    return [label for label, _, _ in rows], values, False


def plot_ratios(results: dict[str, Any], path: Path) -> str | None:
    """Bar chart of per-call time ratios (see `_ratio_rows`), log scale; a note when not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"no chart: matplotlib not importable ({e})"
    groups, values, vs_kerasjit = _ratio_rows(results, _engines_shown(results))
    if not groups or not values:
        return "no chart: no timings to compare"
    engines = [e for e, vs in values.items() if any(v == v for v in vs)]  # v == v: not NaN
    if not engines:
        return "no chart: no timings to compare"
    fig, ax = plt.subplots(figsize=(max(8.0, 0.35 * len(groups) * len(engines) + 2), 5))
    width = 0.8 / len(engines)
    for k, e in enumerate(engines):
        ax.bar([i + k * width for i in range(len(groups))], values[e], width, label=e)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], groups, fontsize=7)
    if vs_kerasjit:
        ax.set_ylabel("engine time / kerasjit time")
        ax.set_title("Per-call time relative to kerasjit on the same device (above 1: kerasjit is faster)")
    else:
        ax.set_ylabel("engine time / fastest engine's time")
        ax.set_title("Per-call time relative to the fastest engine (kerasjit ran on no model)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def write_reports(results: dict[str, Any], out: Path) -> str:
    """Write results.json, results.md and ratios.png under `out`; return the Markdown."""
    note = plot_ratios(results, out / "ratios.png")
    if note:
        results.setdefault("notes", []).append(note)
    text = markdown(results)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "results.md").write_text(text + "\n")
    (out / "results.partial.json").unlink(missing_ok=True)
    return text
