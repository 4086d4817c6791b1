"""CPU kernels (numba.njit). Contract: arrays are C-contiguous float32 unless a docstring says otherwise;
kernels write only into the `out`/`scratch` arrays they are given and never allocate per call."""
