"""The benchmark models, each written once against a `keras` module argument.

Every builder takes the Keras module to build with (Keras 3 `keras`, or `tf_keras` for the TensorFlow and
ONNX Runtime peers) and returns an uncompiled functional model. Both builds of one model have the same
layers in the same order, so weights copy across layer by layer (see `weights.py`).

Outputs are logits, not softmax probabilities: random weights give a near-uniform softmax that would hide
a wrong result from the engines' cross-check (design.md, "Tests"). The IMDB and VAE models keep their
sigmoid, which maps each output alone and hides nothing.

Nothing here imports a framework at module level: the parent process of the suite reads the registry
without importing Keras.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["InputSpec", "ModelInfo", "MODELS", "QUICK_MODELS", "get", "make_inputs"]


@dataclass(frozen=True)
class InputSpec:
    """One model input: its Keras name, shape without the batch axis, dtype, and how to fill it."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    #: integer inputs are drawn uniformly from [0, high); `high == 0` means a float input
    high: int = 0
    #: positions input of the transformer: `arange(shape[0])` on every row instead of random values
    arange: bool = False


@dataclass(frozen=True)
class ModelInfo:
    """A benchmark model: how to build it, what it eats, and its torchvision twin (GPU peer) if any."""

    name: str
    title: str
    build: Callable[[Any], Any]
    inputs: tuple[InputSpec, ...]
    torchvision: str | None = None
    #: batch used to calibrate BatchNormalization statistics (smaller for the big image models)
    calibration_batch: int = 8
    notes: str = field(default="")


def make_inputs(info: ModelInfo, batch: int, seed: int) -> list[np.ndarray]:
    """Random inputs for `info` at `batch`, the same for every engine given the same seed."""
    rng = np.random.default_rng(seed)
    xs = []
    for spec in info.inputs:
        shape = (batch, *spec.shape)
        if spec.arange:
            x = np.broadcast_to(np.arange(spec.shape[0], dtype=spec.dtype), shape)
        elif spec.high:
            x = rng.integers(0, spec.high, size=shape)
        else:
            x = rng.standard_normal(shape)
        xs.append(np.ascontiguousarray(x, dtype=spec.dtype))
    return xs


# ---------------------------------------------------------------------------------------------- builders


def mnist_convnet(keras: Any) -> Any:
    """The Keras.js MNIST demo convnet (keras/examples mnist_cnn.py), logits out."""
    L = keras.layers
    x_in = keras.Input((28, 28, 1), name="image")
    x = L.Conv2D(32, 3, activation="relu")(x_in)
    x = L.Conv2D(64, 3, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Dropout(0.25)(x)
    x = L.Flatten()(x)
    x = L.Dense(128, activation="relu")(x)
    x = L.Dropout(0.5)(x)
    y = L.Dense(10)(x)
    return keras.Model(x_in, y, name="mnist_convnet")


def vae_decoder(keras: Any) -> Any:
    """Decoder of the convolutional VAE demo (variational_autoencoder_deconv.py): latent 2 -> 28x28x1."""
    L = keras.layers
    z = keras.Input((2,), name="latent")
    x = L.Dense(7 * 7 * 64, activation="relu")(z)
    x = L.Reshape((7, 7, 64))(x)
    x = L.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
    y = L.Conv2DTranspose(1, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(z, y, name="vae_decoder")


def acgan_generator(keras: Any) -> Any:
    """AC-GAN generator of keras/examples mnist_acgan.py, with the inner Sequential flattened.

    The class embedding multiplies the latent vector; Dense + Reshape to 3x3x384, then three
    Conv2DTranspose up to 28x28x1 with BatchNormalization between them.
    """
    L = keras.layers
    latent = keras.Input((100,), name="latent")
    image_class = keras.Input((1,), dtype="int32", name="image_class")
    cls = L.Embedding(10, 100, embeddings_initializer="glorot_normal")(image_class)
    cls = L.Flatten()(cls)
    h = L.Multiply()([latent, cls])
    x = L.Dense(3 * 3 * 384, activation="relu")(h)
    x = L.Reshape((3, 3, 384))(x)
    x = L.Conv2DTranspose(192, 5, strides=1, padding="valid", activation="relu",
                          kernel_initializer="glorot_normal")(x)
    x = L.BatchNormalization()(x)
    x = L.Conv2DTranspose(96, 5, strides=2, padding="same", activation="relu",
                          kernel_initializer="glorot_normal")(x)
    x = L.BatchNormalization()(x)
    y = L.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh",
                          kernel_initializer="glorot_normal")(x)
    return keras.Model([latent, image_class], y, name="acgan_generator")


def _fire(keras: Any, x: Any, squeeze: int, expand: int) -> Any:
    """SqueezeNet fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated on channels."""
    L = keras.layers
    s = L.Conv2D(squeeze, 1, activation="relu")(x)
    e1 = L.Conv2D(expand, 1, activation="relu")(s)
    e3 = L.Conv2D(expand, 3, padding="same", activation="relu")(s)
    return L.Concatenate(axis=-1)([e1, e3])


def squeezenet11(keras: Any) -> Any:
    """SqueezeNet v1.1 (Iandola et al. 2016, the v1.1 variant of the reference repo), 224x224, logits."""
    L = keras.layers
    x_in = keras.Input((224, 224, 3), name="image")
    x = L.Conv2D(64, 3, strides=2, activation="relu")(x_in)
    x = L.MaxPooling2D(3, strides=2)(x)
    x = _fire(keras, x, 16, 64)
    x = _fire(keras, x, 16, 64)
    x = L.MaxPooling2D(3, strides=2)(x)
    x = _fire(keras, x, 32, 128)
    x = _fire(keras, x, 32, 128)
    x = L.MaxPooling2D(3, strides=2)(x)
    x = _fire(keras, x, 48, 192)
    x = _fire(keras, x, 48, 192)
    x = _fire(keras, x, 64, 256)
    x = _fire(keras, x, 64, 256)
    x = L.Dropout(0.5)(x)
    x = L.Conv2D(1000, 1, activation="relu")(x)
    y = L.GlobalAveragePooling2D()(x)
    return keras.Model(x_in, y, name="squeezenet11")


def imdb_bilstm(keras: Any) -> Any:
    """IMDB sentiment model of keras/examples imdb_bidirectional_lstm.py, sequences of 200 tokens."""
    L = keras.layers
    x_in = keras.Input((200,), dtype="int32", name="tokens")
    x = L.Embedding(20000, 128)(x_in)
    x = L.Bidirectional(L.LSTM(64))(x)
    x = L.Dropout(0.5)(x)
    y = L.Dense(1, activation="sigmoid")(x)
    return keras.Model(x_in, y, name="imdb_bilstm")


def transformer_classifier(keras: Any) -> Any:
    """Text classifier of the Keras example text_classification_with_transformer, logits out.

    The example's TokenAndPositionEmbedding is a custom layer computing `range(maxlen)` inside; to stay
    with built-in layers (which every engine can load) the positions are a second input, always
    `arange(200)`. The feed-forward uses gelu, as in the targets.md run.
    """
    L = keras.layers
    maxlen, vocab, dim, heads, ff = 200, 20000, 32, 2, 32
    tokens = keras.Input((maxlen,), dtype="int32", name="tokens")
    positions = keras.Input((maxlen,), dtype="int32", name="positions")
    x = L.Add()([L.Embedding(vocab, dim)(tokens), L.Embedding(maxlen, dim)(positions)])
    att = L.MultiHeadAttention(num_heads=heads, key_dim=dim)(x, x)
    att = L.Dropout(0.1)(att)
    x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, att]))
    f = L.Dense(ff, activation="gelu")(x)
    f = L.Dense(dim)(f)
    f = L.Dropout(0.1)(f)
    x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, f]))
    x = L.GlobalAveragePooling1D()(x)
    x = L.Dropout(0.1)(x)
    x = L.Dense(20, activation="relu")(x)
    x = L.Dropout(0.1)(x)
    y = L.Dense(2)(x)
    return keras.Model([tokens, positions], y, name="transformer_classifier")


def resnet50(keras: Any) -> Any:
    """keras.applications.ResNet50, random weights, logits."""
    return keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)


def inception_v3(keras: Any) -> Any:
    """keras.applications.InceptionV3, random weights, 299x299, logits."""
    return keras.applications.InceptionV3(weights=None, input_shape=(299, 299, 3),
                                          classifier_activation=None)


def mobilenet_v2(keras: Any) -> Any:
    """keras.applications.MobileNetV2 (alpha 1.0), random weights, logits."""
    return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3),
                                          classifier_activation=None)


# ---------------------------------------------------------------------------------------------- registry

_IMAGE224 = (InputSpec("image", (224, 224, 3)),)

MODELS: dict[str, ModelInfo] = {m.name: m for m in [
    ModelInfo("mnist", "MNIST convnet", mnist_convnet, (InputSpec("image", (28, 28, 1)),)),
    ModelInfo("vae", "conv VAE decoder", vae_decoder, (InputSpec("latent", (2,)),)),
    ModelInfo("acgan", "AC-GAN generator", acgan_generator,
              (InputSpec("latent", (100,)), InputSpec("image_class", (1,), "int32", high=10))),
    ModelInfo("squeezenet", "SqueezeNet v1.1", squeezenet11, _IMAGE224),
    ModelInfo("imdb", "IMDB bidirectional LSTM", imdb_bilstm,
              (InputSpec("tokens", (200,), "int32", high=20000),)),
    ModelInfo("transformer", "transformer text classifier", transformer_classifier,
              (InputSpec("tokens", (200,), "int32", high=20000),
               InputSpec("positions", (200,), "int32", arange=True))),
    ModelInfo("resnet50", "ResNet50", resnet50, _IMAGE224, torchvision="resnet50", calibration_batch=4),
    ModelInfo("inception_v3", "Inception v3", inception_v3, (InputSpec("image", (299, 299, 3)),),
              calibration_batch=4),
    ModelInfo("mobilenet_v2", "MobileNetV2", mobilenet_v2, _IMAGE224, torchvision="mobilenet_v2",
              calibration_batch=4),
]}

#: the `--quick` subset: small models that finish in minutes on two cores
QUICK_MODELS: tuple[str, ...] = ("mnist", "vae", "acgan", "squeezenet", "imdb")


def get(name: str) -> ModelInfo:
    """The registered model called `name`; the error lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark model {name!r}; known: {', '.join(MODELS)}") from None
