"""`check`'s verdict tells whose bug a difference is, and the progress bar's on/off rule."""
from __future__ import annotations

import io
import sys

from kerasjit import progress
from kerasjit.check import CheckReport, LayerResult, format_report


def _report(layer_error: float = 0.0, before: float = 0.0, after: float = 0.0, compiled: float = 0.0):
    r = CheckReport("m.keras", "keras 3 (jax)")
    r.layers = [LayerResult("conv", "Conv2D", 0, 0, (2, 4), 0.0, 1e-4),
                LayerResult("dense", "Dense", 0, 0, (2, 3), layer_error, 1e-4)]
    r.finals = [("interpreter, before passes", [(before, 1e-4)]), ("interpreter, after passes", [(after, 1e-4)]),
                ("compiled", [(compiled, 1e-4)])]
    return r


def test_verdict_names_the_stage_that_goes_wrong():
    assert _report().ok and "agrees" in _report().verdict()
    r = _report(layer_error=0.5, before=0.5, after=0.5, compiled=0.5)
    assert r.first_difference.path == "dense" and r.verdict().startswith("front end")
    assert "first difference: layer 'dense' (Dense), max error 0.5" in format_report(r)
    assert _report(after=1.0, compiled=1.0).verdict().startswith("passes")
    r = _report(compiled=1.0)
    assert not r.ok and r.verdict().startswith("codegen")
    assert "final outputs, compiled: max error 1 DIFFERS" in format_report(r)


def test_progress_is_drawn_on_a_terminal_only(monkeypatch):
    monkeypatch.delenv("KERASJIT_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress.enabled()
    assert list(progress.track(range(3), desc="x")) == [0, 1, 2]
    assert sys.stderr.getvalue() == ""
    monkeypatch.setenv("KERASJIT_PROGRESS", "1")
    assert progress.enabled() and not progress.enabled(False)
    with progress.Bar(2, desc="work") as bar:
        bar.update()
    assert "work" in sys.stderr.getvalue()
