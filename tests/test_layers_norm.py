"""Normalization, pooling and the preprocessing layers that run at inference, against Keras 3 in all
three formats: every layer and option in zoo models (front end and passes, interpreted), and a compact
model taking each new code path once, compiled (layer_check)."""
import numpy as np

from layer_check import check_all_formats
from oracle import keras


def _random_weights(model, seed: int) -> None:
    """Every weight in [0.5, 1.5] (gammas, betas, statistics), so that each one changes the output."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws and not isinstance(layer, keras().layers.Normalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in ws])


def norm_zoo():
    k = keras()
    L = k.layers
    img = k.Input((5, 6, 8), name="img")
    adapted = L.Normalization(axis=-1, name="adapted")
    adapted.adapt(np.random.default_rng(0).normal(2.0, 3.0, (64, 5, 6, 8)).astype(np.float32))
    outs = [
        L.LayerNormalization()(img),
        L.LayerNormalization(axis=[1, 3], center=False, epsilon=0.01)(img),
        L.LayerNormalization(axis=(2, 3), scale=False)(img),
        L.LayerNormalization(rms_scaling=True)(img),
        L.GroupNormalization(groups=4)(img),
        L.GroupNormalization(groups=5, axis=1, center=False)(img),
        L.GroupNormalization(groups=-1, scale=False, epsilon=0.1)(img),
        L.UnitNormalization()(img),
        L.UnitNormalization(axis=[1, 2])(img),
        L.RMSNormalization()(img),
        L.RMSNormalization(axis=[2, 3], epsilon=0.1)(img),
        L.BatchNormalization(axis=1)(img),
        L.BatchNormalization(axis=-2, center=False)(img),
        adapted(img),
        L.Normalization(mean=[0.5] * 8, variance=[2.0] * 8)(img),
        L.Normalization(axis=(1, 3), mean=np.arange(40.0).reshape(5, 8) / 40, variance=np.ones((5, 8)),
                        invert=True)(img),
        L.Normalization(axis=None, mean=0.2, variance=4.0)(img),
        L.Rescaling(scale=[0.5, 2.0] * 4, offset=0.25)(img),
    ]
    m = k.Model(img, outs, name="norm_zoo")
    _random_weights(m, 3)
    return m


def pool_zoo():
    k = keras()
    L = k.layers
    seq = k.Input((9, 4), name="seq")
    vol = k.Input((6, 5, 4, 3), name="vol")
    img = k.Input((7, 8, 3), name="img")
    img_cf = L.Permute((3, 1, 2))(img)
    outs = [
        L.MaxPooling1D(3, strides=2, padding="same")(seq),
        L.MaxPooling1D(2, data_format="channels_first")(seq),
        L.AveragePooling1D(2)(seq),
        L.AveragePooling1D(3, strides=1, padding="same", data_format="channels_first")(seq),
        L.GlobalMaxPooling1D()(seq),
        L.GlobalMaxPooling1D(keepdims=True, data_format="channels_first")(seq),
        L.GlobalAveragePooling1D(keepdims=True)(seq),
        L.MaxPooling2D((2, 3), strides=(1, 2), padding="same", data_format="channels_first")(img_cf),
        L.AveragePooling2D(3, strides=2, padding="same")(img),
        L.GlobalAveragePooling2D(keepdims=True, data_format="channels_first")(img_cf),
        L.MaxPooling3D()(vol),
        L.MaxPooling3D((3, 2, 2), strides=(2, 1, 2), padding="same")(vol),
        L.AveragePooling3D((2, 3, 2), strides=1, padding="same")(vol),
        L.AveragePooling3D(2, data_format="channels_first")(vol),
        L.GlobalAveragePooling3D()(vol),
        L.GlobalMaxPooling3D(keepdims=True)(vol),
        L.GlobalAveragePooling3D(data_format="channels_first")(vol),
    ]
    return k.Model([seq, vol, img], outs, name="pool_zoo")


def image_zoo():
    k = keras()
    L = k.layers
    img = k.Input((9, 12, 3), name="img")
    img_cf = L.Permute((3, 1, 2))(img)
    outs = [
        L.Resizing(5, 7)(img),
        L.Resizing(17, 20, interpolation="nearest")(img),
        L.Resizing(6, 5, interpolation="nearest")(img),
        L.Resizing(6, 6, crop_to_aspect_ratio=True)(img),
        L.Resizing(8, 4, pad_to_aspect_ratio=True, fill_value=0.5)(img),
        L.Resizing(4, 5, antialias=True)(img),
        L.Resizing(7, 9, interpolation="bicubic")(img),
        L.Resizing(11, 10, interpolation="lanczos3")(img),
        L.Resizing(5, 7, data_format="channels_first")(img_cf),
        L.CenterCrop(5, 6)(img),
        L.CenterCrop(4, 4, data_format="channels_first")(img_cf),
        L.CenterCrop(12, 10)(img),
    ]
    return k.Model(img, outs, name="image_zoo")


def norm_compiled():
    """One of each code path: reductions over one run of axes and over scattered ones (a transpose
    first), rsqrt, pooling of 1 and 3 spatial dims, resizes as matrix products, crops as slices."""
    k = keras()
    L = k.layers
    img = k.Input((6, 8, 4), name="img")
    seq = k.Input((7, 4), name="seq")
    vol = k.Input((4, 5, 4, 2), name="vol")
    adapted = L.Normalization(name="adapted")
    adapted.adapt(np.random.default_rng(1).normal(1.0, 2.0, (32, 6, 8, 4)).astype(np.float32))
    outs = [
        L.LayerNormalization(axis=[1, 3])(img),
        L.GroupNormalization(groups=2)(img),
        L.RMSNormalization()(img),
        L.UnitNormalization(axis=[1, 2])(img),
        adapted(img),
        L.MaxPooling1D(3, strides=2, padding="same")(seq),
        L.AveragePooling1D(2)(seq),
        L.GlobalMaxPooling1D()(seq),
        L.AveragePooling3D(2, strides=1, padding="same")(vol),
        L.MaxPooling3D((2, 2, 1))(vol),
        L.GlobalMaxPooling3D(keepdims=True)(vol),
        L.Resizing(4, 11)(img),
        L.Resizing(5, 5, interpolation="nearest", crop_to_aspect_ratio=True)(img),
        L.CenterCrop(4, 6)(img),
    ]
    m = k.Model([img, seq, vol], outs, name="norm_compiled")
    _random_weights(m, 5)
    return m


def test_normalization_layers(tmp_path, cache_dir):
    check_all_formats(norm_zoo(), tmp_path, cache_dir, compile=False)


def test_pooling_layers(tmp_path, cache_dir):
    check_all_formats(pool_zoo(), tmp_path, cache_dir, compile=False)


def test_image_preprocessing_layers(tmp_path, cache_dir):
    check_all_formats(image_zoo(), tmp_path, cache_dir, compile=False, inputs=lambda b: [
        np.random.default_rng(b).uniform(0, 255, (b, 9, 12, 3)).astype(np.float32)])


def test_norm_compiled(tmp_path, cache_dir):
    check_all_formats(norm_compiled(), tmp_path, cache_dir)
