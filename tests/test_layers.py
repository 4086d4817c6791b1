"""Every layer and option of the foundation, in every file format, against Keras 3 (JAX backend)."""
import numpy as np
import pytest

from oracle import FORMATS, check_model, keras, randomize_batchnorm

ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "softmax", "linear", "elu", "selu", "swish", "silu", "gelu",
               "hard_sigmoid", "softplus", "softsign"]


def conv_zoo():
    k = keras()
    L = k.layers
    inp = k.Input((17, 15, 6), name="image")
    a = L.Conv2D(8, 3, strides=2, padding="same", name="c_s2_same")(inp)
    a = L.BatchNormalization(name="bn_a")(a)
    a = L.ReLU(name="relu_a")(a)
    b = L.Conv2D(8, (3, 2), dilation_rate=2, padding="valid", activation="elu", name="c_dil_valid")(inp)
    b = L.Conv2D(8, 3, groups=2, padding="same", use_bias=False, name="c_groups")(b)
    b = L.BatchNormalization(center=False, name="bn_noc")(b)
    b = L.Conv2D(8, 3, strides=(2, 1), padding="valid", name="c_s21")(b)
    c = L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same", name="dw_m2")(inp)
    c = L.BatchNormalization(scale=False, name="bn_nos")(c)
    c = L.Activation("relu6")(c)
    c = L.DepthwiseConv2D((3, 3), padding="same", dilation_rate=2, use_bias=False, name="dw_dil")(c)
    c = L.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, activation="swish", name="sep")(c)
    d = L.SeparableConv2D(8, (2, 3), strides=2, padding="valid", use_bias=False, name="sep_s2")(inp)
    d = L.ZeroPadding2D(((1, 0), (0, 2)))(d)
    d = L.Conv2D(8, 1, name="c_1x1")(d)
    a2 = L.ZeroPadding2D(1)(a)
    a2 = L.Conv2D(8, 3, name="c_after_pad")(a2)
    s = L.Add(name="residual")([a2, c])
    s = L.LeakyReLU(negative_slope=0.1)(s)
    m = L.Multiply()([s, L.Activation("sigmoid")(s)])
    cat = L.Concatenate(name="cat")([m, s])
    out1 = L.GlobalAveragePooling2D()(cat)
    out2 = L.Flatten()(L.Conv2D(4, 3, padding="same", name="head")(b))
    return k.Model(inp, [L.Dense(5, name="logits")(out1), out2, d], name="conv_zoo")


def activation_zoo():
    k = keras()
    L = k.layers
    inp = k.Input((12,), name="features")
    h = L.Dense(16, name="proj")(inp)
    h = L.Rescaling(scale=2.5, offset=-0.5)(h)
    branches = [L.Dense(8, activation=a, name=f"dense_{a}")(h) for a in ACTIVATIONS]
    branches += [L.Activation(a, name=f"act_{a}")(h) for a in ACTIVATIONS]
    branches += [L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)(h), L.ReLU(threshold=0.3)(h),
                 L.LeakyReLU()(h), L.Softmax()(h), L.Softmax(axis=1)(L.Reshape((4, 4))(h))]
    flat = [L.Flatten()(b) if len(b.shape) > 2 else b for b in branches]
    out = L.Concatenate()(flat)
    out = L.Dropout(0.5)(out)
    return k.Model(inp, out, name="activation_zoo")


def pool_zoo():
    k = keras()
    L = k.layers
    inp = k.Input((13, 11, 3), name="x")
    p1 = L.MaxPooling2D()(inp)
    p2 = L.MaxPooling2D(3, strides=2, padding="same")(inp)
    p3 = L.AveragePooling2D((3, 2), strides=(1, 2), padding="same")(inp)
    p4 = L.AveragePooling2D(2, padding="valid")(inp)
    g = L.Concatenate()([L.GlobalMaxPooling2D()(inp), L.GlobalAveragePooling2D()(inp),
                         L.Flatten()(L.GlobalAveragePooling2D(keepdims=True)(p2))])
    r = L.Reshape((-1, 3))(p1)
    r = L.Reshape((5, 3, 6))(L.Flatten()(r))
    return k.Model(inp, [p1, p2, p3, p4, g, r], name="pool_zoo")


def multi_io():
    k = keras()
    L = k.layers
    a = k.Input((8,), name="a")
    b = k.Input((8,), name="b")
    shared = L.Dense(6, activation="tanh", name="shared")
    x = L.Add()([shared(a), shared(b)])
    inner = k.Sequential([k.Input((6,)), L.Dense(4, name="in1"), L.BatchNormalization(name="in_bn")], name="inner_seq")
    ia = k.Input((4,))
    inner_f = k.Model(ia, L.Dense(3, activation="gelu", name="in_f")(ia), name="inner_func")
    y = inner_f(inner(x))
    z = L.Multiply()([L.Dense(3)(a), y])
    return k.Model([a, b], [y, z], name="multi_io")


@pytest.mark.parametrize("fmt", FORMATS)
def test_conv_layers(fmt, tmp_path, cache_dir):
    m = conv_zoo()
    randomize_batchnorm(m)
    check_model(m, tmp_path, cache_dir, formats=(fmt,))


@pytest.mark.parametrize("fmt", FORMATS)
def test_activations(fmt, tmp_path, cache_dir):
    m = activation_zoo()
    check_model(m, tmp_path, cache_dir, formats=(fmt,))


@pytest.mark.parametrize("fmt", FORMATS)
def test_pooling_and_reshape(fmt, tmp_path, cache_dir):
    check_model(pool_zoo(), tmp_path, cache_dir, formats=(fmt,))


@pytest.mark.parametrize("fmt", FORMATS)
def test_shared_layers_nested_models_multi_io(fmt, tmp_path, cache_dir):
    m = multi_io()
    randomize_batchnorm(m)
    check_model(m, tmp_path, cache_dir, formats=(fmt,))


def test_dict_and_list_inputs(tmp_path, cache_dir):
    import kerasjit
    from oracle import keras_predict, assert_matches, save
    m = multi_io()
    cm = kerasjit.compile(*save(m, tmp_path, "keras"), cache_dir=cache_dir)
    a = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    ref = keras_predict(m, [a, b])
    assert_matches(cm.predict({"b": b, "a": a}), ref, "dict input")
    assert_matches(cm.predict([a, b]), ref, "list input")
    assert cm.input_names == ["a", "b"]
