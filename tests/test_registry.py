"""User lowerings (`kerasjit.register_layer`) for a real custom Keras layer and Lambda layers, against
Keras 3 in every file format; registrations are part of the cache key."""
import numpy as np
import pytest

import kerasjit
from kerasjit import registry
from kerasjit.errors import UnsupportedLayerError
from layer_check import check_all_formats, graph_of
from oracle import keras, save


def _custom_classes():
    """Two custom layers, registered with Keras the way users do (defined once per process)."""
    k = keras()
    if hasattr(_custom_classes, "done"):
        return _custom_classes.done

    @k.saving.register_keras_serializable(package="kerasjit_test")
    class ScaleShift(k.layers.Layer):
        """tanh(x * w) + b + offset, with per-feature weights."""

        def __init__(self, offset=0.5, **kwargs):
            super().__init__(**kwargs)
            self.offset = offset

        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="w")
            self.b = self.add_weight(shape=(shape[-1],), initializer="random_normal", name="b")

        def call(self, x):
            return k.ops.tanh(x * self.w) + self.b + self.offset

        def get_config(self):
            return {**super().get_config(), "offset": self.offset}

    @k.saving.register_keras_serializable(package="kerasjit_test")
    class Gate(k.layers.Layer):
        """a * sigmoid(b) of a list of two inputs, summed over the last axis when `reduce`."""

        def __init__(self, reduce=False, **kwargs):
            super().__init__(**kwargs)
            self.reduce = reduce

        def call(self, inputs):
            a, b = inputs
            y = a * k.ops.sigmoid(b)
            return k.ops.sum(y, axis=-1, keepdims=True) if self.reduce else y

        def get_config(self):
            return {**super().get_config(), "reduce": self.reduce}

    _custom_classes.done = ScaleShift, Gate
    return _custom_classes.done


def power_sum(t, p=2.0):
    return t ** p + t


def split_relu(t):
    import keras as k
    return [t[:, :3], k.ops.relu(t[:, 3:])]


def lower_scale_shift(ops, x):
    # weights by position: .keras files do not record variable names
    return ops.tanh(x * ops.weight(0)) + ops.weights[1] + ops.config["offset"]


def lower_gate(ops, inputs):
    a, b = inputs
    y = a * ops.sigmoid(b)
    return ops.sum(y, axis=-1, keepdims=True) if ops.config["reduce"] else y


@pytest.fixture
def registrations():
    names = ["ScaleShift", "kerasjit_test>Gate", "affine", "power_sum", "split_lambda"]
    kerasjit.register_layer("ScaleShift", lower_scale_shift)
    kerasjit.register_layer("kerasjit_test>Gate")(lower_gate)
    kerasjit.register_layer("affine", lambda ops, t: t * 2.0 - 1.0)
    kerasjit.register_layer("power_sum", lambda ops, t, p: ops.power(t, p) + t)
    kerasjit.register_layer("split_lambda", lambda ops, t: [t[:, :3], ops.relu(t[:, 3:])])
    yield
    for n in names:
        kerasjit.unregister_layer(n)


def custom_model():
    k = keras()
    L = k.layers
    ScaleShift, Gate = _custom_classes()
    x = k.Input((6,), name="x")
    h = L.Dense(6, name="proj")(x)
    s = ScaleShift(offset=0.25, name="scale")(h)
    a = L.Lambda(lambda t: t * 2.0 - 1.0, name="affine")(s)
    p = L.Lambda(power_sum, arguments={"p": 3.0}, name="pw")(a)
    g = Gate(name="gate")([p, h])
    g2 = Gate(reduce=True, name="gate_sum")([h, s])
    first, rest = L.Lambda(split_relu, name="split_lambda")(g)
    return k.Model(x, [L.Dense(3, name="head")(first), rest, g2], name="custom")


def test_custom_layer_and_lambdas_through_the_registry(registrations, tmp_path, cache_dir):
    errs = check_all_formats(custom_model(), tmp_path, cache_dir)
    assert max(errs.values()) < 1e-4


def test_without_registration_lambda_and_custom_layers_are_listed(tmp_path):
    path = save(custom_model(), tmp_path, "keras")
    with pytest.raises(UnsupportedLayerError) as e:
        graph_of(path)
    msg = str(e.value)
    assert "scale (ScaleShift)" in msg and "gate (Gate)" in msg and "kerasjit.register_layer" in msg
    assert "affine (Lambda): Python code, which kerasjit does not run; register a lowering for 'affine'" in msg


def test_a_failing_lowering_names_the_layer(tmp_path):
    path = save(custom_model(), tmp_path, "keras")
    kerasjit.register_layer("ScaleShift", lambda ops, x: ops.no_such_function(x))
    for n, fn in [("kerasjit_test>Gate", lower_gate), ("affine", lambda o, t: t), ("power_sum", lambda o, t, p: t),
                  ("split_lambda", lambda o, t: [t, t])]:
        kerasjit.register_layer(n, fn)
    try:
        with pytest.raises(UnsupportedLayerError, match=r"layer 'scale' \(ScaleShift\): the lowering registered for "
                                                         r"'ScaleShift' \(.*<lambda>\) failed: AttributeError"):
            graph_of(path)
    finally:
        for n in ("ScaleShift", "kerasjit_test>Gate", "affine", "power_sum", "split_lambda"):
            kerasjit.unregister_layer(n)


def test_fingerprint_follows_the_code():
    kerasjit.register_layer("fp_probe", lambda ops, x: x * 2.0)
    a = registry.fingerprint()
    kerasjit.register_layer("fp_probe", lambda ops, x: x * 2.0)
    assert registry.fingerprint() == a  # the same code: the same key
    kerasjit.register_layer("fp_probe", lambda ops, x: x * 3.0)
    b = registry.fingerprint()
    kerasjit.register_layer("fp_probe", lambda ops, x: x * 2.0, version="2")
    c = registry.fingerprint()
    kerasjit.unregister_layer("fp_probe")
    assert len({a, b, c, registry.fingerprint()}) == 4


def test_a_changed_lowering_is_compiled_again(tmp_path):
    k = keras()
    x = k.Input((3,), name="x")
    path, _ = save(k.Model(x, k.layers.Lambda(lambda t: t * 2.0, name="twice")(x)), tmp_path, "keras")
    cache = tmp_path / "cache"
    xs = np.arange(6, dtype=np.float32).reshape(2, 3)
    try:
        kerasjit.register_layer("twice", lambda ops, t: t * 2.0)
        first = kerasjit.compile(path, cache_dir=cache, self_test=False)
        np.testing.assert_allclose(first.predict(xs), xs * 2.0)
        kerasjit.register_layer("twice", lambda ops, t: t * 2.0 + 1.0)  # a fix to the lowering
        second = kerasjit.compile(path, cache_dir=cache, self_test=False)
        np.testing.assert_allclose(second.predict(xs), xs * 2.0 + 1.0)
        assert first.path != second.path
    finally:
        kerasjit.unregister_layer("twice")
