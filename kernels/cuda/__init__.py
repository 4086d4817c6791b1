"""CUDA kernel templates (numba.cuda.jit). Contract: every array argument is a flat (1-D) C-contiguous
float32 device array (index arrays of gathers and one-hot encodings keep their integer dtype); shapes
and strides come as integer arguments, so one compiled kernel serves every
layer of its family. Each template is a plain, undecorated function: the CUDA codegen copies its source
into the generated module (`template.instantiate`), with its tile constants fixed and its `epilogue`
call bound to a generated device function, so the compiled kernels are cached in the artifact. Module
constants and a default identity `epilogue` make each template runnable alone (`template.jit`)."""
