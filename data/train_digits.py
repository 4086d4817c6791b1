"""Trains the embedded demo model: a small convnet on scikit-learn's bundled 8x8 digits.

Run from the repository root with Keras 3 and scikit-learn installed:
    KERAS_BACKEND=jax python data/train_digits.py
It writes data/digits_cnn.keras and data/digits_samples.npz (held-out images, labels, Keras's logits).
"""
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    idx = np.random.default_rng(0).permutation(len(x))
    test, train = idx[:360], idx[360:]
    L = keras.layers
    inp = keras.Input((8, 8, 1), name="digit")
    h = L.Conv2D(16, 3, padding="same", use_bias=False)(inp)
    h = L.BatchNormalization()(h)
    h = L.ReLU()(h)
    h = L.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = L.MaxPooling2D()(h)
    h = L.SeparableConv2D(64, 3, padding="same", activation="swish")(h)
    h = L.GlobalAveragePooling2D()(h)
    h = L.Dropout(0.2)(h)
    out = L.Dense(10, name="logits")(h)
    model = keras.Model(inp, out, name="digits_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=40, batch_size=64, verbose=0, validation_split=0.1)
    _, acc = model.evaluate(x[test], y[test], verbose=0)
    print(f"held-out accuracy {acc:.4f}")
    model.save(HERE / "digits_cnn.keras")
    logits = np.asarray(model(x[test], training=False))
    np.savez_compressed(HERE / "digits_samples.npz", images=x[test], labels=y[test], keras_logits=logits)


if __name__ == "__main__":
    main()
