"""Core, merge and activation layers, and every function of keras.activations, against Keras 3 in all
three formats: every layer and option in zoo models (front end and passes, interpreted), and a compact
model taking each new code path once, compiled (layer_check)."""
import numpy as np

from layer_check import check_all_formats
from oracle import keras

#: keras.activations members that are not activation functions, or need arguments no config can give
NOT_ACTIVATIONS = {"get", "serialize", "deserialize", "threshold"}


def activation_names() -> list[str]:
    """Every activation function keras.activations exports (new ones are tested as they appear)."""
    acts = keras().activations
    return sorted(n for n in dir(acts) if not n.startswith("_") and n not in NOT_ACTIVATIONS
                  and callable(getattr(acts, n)))


def core_zoo():
    k = keras()
    L = k.layers
    seq = k.Input((6, 5), name="seq")
    img = k.Input((4, 3, 2), name="img")
    h = L.Dense(4, activation="relu", name="dense_rank3")(seq)
    outs = [
        h,
        L.Dense(3, use_bias=False, name="dense_rank4")(img),
        L.Flatten()(L.Dropout(0.5)(img)),
        L.Reshape((-1, 4))(L.SpatialDropout2D(0.2)(img)),
        L.Reshape((2, -1, 3))(L.SpatialDropout1D(0.3)(seq)),
        L.Permute((3, 1, 2))(img),
        L.Permute((2, 1))(L.Dense(3, name="perm_dense")(seq)),
        L.RepeatVector(3)(L.Flatten()(seq)),
        L.ActivityRegularization(l1=0.1, l2=0.1)(L.Identity()(seq)),
        L.GaussianNoise(0.5)(L.GaussianDropout(0.3)(L.AlphaDropout(0.2)(seq))),
        L.SpatialDropout3D(0.2)(L.Reshape((2, 2, 3, 2))(img)),
        L.Masking()(seq),
        L.Masking(mask_value=0.25, name="mask_nonzero")(seq),
    ]
    return k.Model([seq, img], outs, name="core_zoo")


def core_inputs(batch):
    rng = np.random.default_rng(batch)
    seq = rng.standard_normal((batch, 6, 5)).astype(np.float32)
    seq[:, 1] = 0.0    # a masked timestep for mask_value 0 ...
    seq[:, 3] = 0.25   # ... and one for mask_value 0.25, which Keras sets to 0
    seq[0, 4, :2] = 0.25  # partly equal: not masked
    return [seq, rng.standard_normal((batch, 4, 3, 2)).astype(np.float32)]


def merge_zoo():
    k = keras()
    L = k.layers
    a = k.Input((4, 5), name="a")
    b = k.Input((1, 5), name="b")
    c = k.Input((5,), name="c")
    d = k.Input((4, 5), name="d")
    outs = [
        L.Add()([a, b]),                       # broadcasting over an axis of size 1
        L.Subtract()([a, c]),                  # rank 2 with rank 3: Keras inserts the axis after the batch
        L.Multiply()([a, b, d]),
        L.Average()([a, d, b]),
        L.Maximum()([a, c]),
        L.Minimum()([a, d, c]),
        L.Concatenate(axis=1)([a, d]),
        L.Concatenate(axis=-1)([a, b, d][::2]),
        L.Dot(axes=2)([a, d]),
        L.Dot(axes=(1, 1))([a, d]),
        L.Dot(axes=1, normalize=True)([c, L.Dense(5, name="proj")(c)]),
        L.Dot(axes=(2, 1))([a, L.Reshape((5, 1))(c)]),
        L.Dot(axes=(1, 2), normalize=True)([c, a]),
        L.Dot(axes=-1)([L.Reshape((2, 2, 5))(L.Concatenate(axis=1)([a])), d]),
    ]
    return k.Model([a, b, c, d], outs, name="merge_zoo")


def activation_zoo():
    k = keras()
    L = k.layers
    inp = k.Input((12,), name="features")
    h = L.Dense(16, name="proj")(inp)
    names = activation_names()
    outs = [L.Activation(n, name=f"act_{n}")(h) for n in names]
    outs += [L.Dense(6, activation=n, name=f"dense_{n}")(h) for n in names if n != "glu"]
    img = L.Reshape((4, 2, 2))(h)
    outs += [
        L.PReLU(name="prelu")(h),
        L.PReLU(shared_axes=[1, 2], name="prelu_shared")(img),
        L.ELU(alpha=0.7)(h),
        L.ReLU(max_value=2.0, negative_slope=0.2, threshold=0.1)(h),
        L.ReLU(max_value=6.0)(h),
        L.LeakyReLU(negative_slope=0.05)(h),
        L.Softmax(axis=1)(img),
        L.Softmax(axis=-2)(img),
        L.Activation("log_softmax")(img),
        L.Activation("sparsemax")(img),
    ]
    m = k.Model(inp, outs, name="activation_zoo")
    rng = np.random.default_rng(4)
    for layer in m.layers:
        if isinstance(layer, L.PReLU):  # non-zero slopes, so that a wrong one shows
            layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in layer.get_weights()])
    return m


def core_compiled():
    """One of each code path: rank-3 Dense, transposes, repeats (broadcasting loops), masks, merges
    across ranks, Dot's reductions, slices (glu), logs, square roots, the sparsemax kernel."""
    k = keras()
    L = k.layers
    seq = k.Input((6, 5), name="seq")
    vec = k.Input((5,), name="vec")
    h = L.Dense(4, name="dense_rank3")(seq)
    outs = [
        L.Permute((2, 1))(h),
        L.RepeatVector(2)(vec),
        L.Masking(mask_value=0.25)(seq),
        L.Subtract()([seq, vec]),
        L.Average()([seq, L.Reshape((1, 5))(vec)]),
        L.Maximum()([seq, vec]),
        L.Dot(axes=(2, 1), normalize=True)([seq, L.Reshape((5, 1))(vec)]),
        L.Dot(axes=1)([vec, vec]),
        L.PReLU(shared_axes=[1])(h),
        L.Activation("glu")(h),
        L.Activation("log_softmax")(h),
        L.Activation("sparsemax")(h),
        L.Activation("squareplus")(h),
        L.Activation("mish")(h),
        L.Activation("celu")(h),
        L.Activation("hard_shrink")(h),
        L.Softmax(axis=1)(h),
    ]
    m = k.Model([seq, vec], outs, name="core_compiled")
    rng = np.random.default_rng(6)
    for layer in m.layers:
        if isinstance(layer, L.PReLU):
            layer.set_weights([rng.uniform(-0.5, 0.5, w.shape).astype("float32") for w in layer.get_weights()])
    return m


def test_core_layers(tmp_path, cache_dir):
    check_all_formats(core_zoo(), tmp_path, cache_dir, inputs=core_inputs, compile=False)


def test_merge_layers(tmp_path, cache_dir):
    check_all_formats(merge_zoo(), tmp_path, cache_dir, compile=False)


def test_activations(tmp_path, cache_dir):
    check_all_formats(activation_zoo(), tmp_path, cache_dir, compile=False, inputs=lambda b: [
        np.random.default_rng(b).uniform(-3, 3, (b, 12)).astype(np.float32)])


def test_core_compiled(tmp_path, cache_dir):
    def inputs(batch):
        seq, _ = core_inputs(batch)
        return [seq, np.random.default_rng(batch).standard_normal((batch, 5)).astype(np.float32)]
    check_all_formats(core_compiled(), tmp_path, cache_dir, inputs=inputs)


def test_every_keras_activation_is_covered():
    """The list the activation test uses is keras.activations itself, less what no config can name."""
    names = activation_names()
    assert {"relu", "celu", "glu", "sparsemax", "log_softmax", "mish", "squareplus", "hard_shrink"} <= set(names)
