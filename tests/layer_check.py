"""Checking a model in all three file formats for the price of one numba compile, or none.

The `.keras`, full `.h5` and JSON + weights files must lower to the very same graph after passes, with
the same parameters, and that graph, run by the NumPy reference interpreter, must give Keras's numbers:
this checks the front end and the passes for every layer and option of a zoo model, cheaply. Code
generation is a function of that graph alone, so the `.keras` file is compiled and compared with Keras
(oracle.check_model) once, when `compile` is set: the test files compile compact models that take every
code path of the new ops once (a numba compile costs about a second per node on the CI machines).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kerasjit.compiler.frontend import lower
from kerasjit.compiler.interpret import interpret
from kerasjit.compiler.passes import run_passes
from kerasjit.encoder import read_model
from oracle import FORMATS, assert_matches, check_model, keras_predict, random_input, save


def graph_of(paths: tuple):
    """The graph after passes that kerasjit compiles for these model files."""
    return run_passes(lower(read_model(*paths)))


def check_all_formats(model, tmp_path, cache_dir, batches=(1, 3), inputs=None, compile: bool = True) -> dict:
    """Check that every format gives the same graph, which interpreted gives Keras's numbers; with
    `compile`, also compile `model` from `.keras` and compare with Keras (returns those errors)."""
    errs = check_model(model, tmp_path, cache_dir, formats=("keras",), batches=batches, inputs=inputs) \
        if compile else {}
    graphs = {fmt: graph_of(save(model, Path(tmp_path) / f"g_{fmt}", fmt)) for fmt in FORMATS}
    xs = inputs(2) if inputs is not None else \
        [random_input(i.shape[1:], 2, seed=7 + k) for k, i in enumerate(model.inputs)]
    ref = keras_predict(model, xs if len(xs) > 1 else xs[0])
    base = graphs["keras"]
    assert_matches(interpret(base, xs), ref, f"{model.name} [keras, interpreted]")
    for fmt in FORMATS[1:]:
        g = graphs[fmt]
        assert str(g) == str(base), f"{model.name}: the {fmt} file lowers to another graph than .keras"
        assert g.params.keys() == base.params.keys()
        for name, p in base.params.items():
            np.testing.assert_array_equal(g.params[name], p, err_msg=f"{model.name} [{fmt}] parameter {name}")
        assert_matches(interpret(g, xs), ref, f"{model.name} [{fmt}, interpreted]")
    return errs
