"""Helpers of the sequence-model tests: random weights and inputs, padded and tokenized sequences."""
import numpy as np


def randomize(model, seed=0, scale=0.5):
    """Random weights everywhere (an RNN's zero biases and orthogonal kernels would hide errors)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.normal(0, scale, w.shape).astype(w.dtype) for w in weights])
    return model


def floats(*shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def padded(x, lengths, value=0.0):
    """x with the timesteps after each sample's length set to `value` (variable-length sequences)."""
    x = x.copy()
    for b, n in enumerate(lengths):
        x[b, n:] = value
    return x


def tokens(batch, steps, vocab, seed=2, dtype=np.int32):
    """Token ids with zero padding at the end of every other sample, and a zero inside one."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (batch, steps))
    for b in range(0, batch, 2):
        x[b, max(1, steps - 1 - (3 * b) % steps):] = 0
    x[-1, steps // 2] = 0
    return x.astype(dtype)
