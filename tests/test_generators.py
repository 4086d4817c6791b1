"""Generative models of the Keras examples (a convolutional VAE decoder, an AC-GAN generator) in all
three formats, and the one error that lists every unsupported layer of a model."""
import json

import numpy as np
import pytest

import kerasjit
from kerasjit.errors import UnsupportedLayerError
from layer_check import check_all_formats
from oracle import keras, randomize_batchnorm


def vae_decoder():
    """The decoder of the Keras convolutional VAE example (MNIST, latent dim 2)."""
    k = keras()
    L = k.layers
    z = k.Input((2,), name="z")
    x = L.Dense(7 * 7 * 64, activation="relu")(z)
    x = L.Reshape((7, 7, 64))(x)
    x = L.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = L.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    out = L.Conv2DTranspose(1, 3, padding="same")(x)  # logits: a sigmoid would hide errors
    return k.Model(z, out, name="vae_decoder")


def acgan_generator():
    """The generator of the Keras AC-GAN example: a class embedding multiplies the latent vector."""
    k = keras()
    L = k.layers
    latent = k.Input((16,), name="latent")
    label = k.Input((1,), dtype="int32", name="label")
    cls = L.Flatten()(L.Embedding(10, 16, name="class_embedding")(label))
    h = L.Multiply()([latent, cls])
    cnn = k.Sequential([  # as in the example, a nested Sequential; widths divided by 8
        k.Input((16,)),
        L.Dense(3 * 3 * 48, activation="relu"),
        L.Reshape((3, 3, 48)),
        L.Conv2DTranspose(24, 5, padding="valid", activation="relu", kernel_initializer="glorot_normal"),
        L.BatchNormalization(),
        L.Conv2DTranspose(12, 5, strides=2, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.Conv2DTranspose(1, 5, strides=2, padding="same"),  # logits: the example's tanh would hide errors
    ], name="cnn")
    m = k.Model([latent, label], cnn(h), name="acgan_generator")
    randomize_batchnorm(m)
    return m


def test_vae_decoder(tmp_path, cache_dir):
    check_all_formats(vae_decoder(), tmp_path, cache_dir)


def test_acgan_generator(tmp_path, cache_dir):
    def inputs(batch):
        rng = np.random.default_rng(batch)
        return [rng.standard_normal((batch, 16)).astype(np.float32), rng.integers(0, 10, (batch, 1)).astype(np.int32)]
    check_all_formats(acgan_generator(), tmp_path, cache_dir, inputs=inputs)


def test_unsupported_layers_are_all_listed(tmp_path):
    """A model with layers kerasjit cannot compile fails at compile time, naming each of them."""
    k = keras()
    L = k.layers
    inp = k.Input((4,))
    m = k.Model(inp, L.Dense(2, name="d2")(L.Dense(3, name="d1")(inp)))
    path = tmp_path / "model.json"
    cfg = json.loads(m.to_json())
    for layer in cfg["config"]["layers"]:  # two layer classes no Keras ships
        if layer["config"]["name"] in ("d1", "d2"):
            layer["class_name"] = f"Custom{layer['config']['name'].upper()}"
    path.write_text(json.dumps(cfg))
    m.save_weights(tmp_path / "model.weights.h5")
    with pytest.raises(UnsupportedLayerError) as err:
        kerasjit.compile(path, tmp_path / "model.weights.h5", cache_dir=tmp_path / "cache")
    assert [(name, cls) for name, cls, _ in err.value.layers] == [("d1", "CustomD1"), ("d2", "CustomD2")]
    assert "d1 (CustomD1)" in str(err.value) and "d2 (CustomD2)" in str(err.value)
