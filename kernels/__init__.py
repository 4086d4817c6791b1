"""Hand-written, parametric Numba building blocks that generated code calls (one module per op family
and backend). Shapes are run-time arguments, so one compiled kernel serves every layer of its family."""
