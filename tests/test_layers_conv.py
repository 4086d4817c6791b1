"""Convolutions of every rank, transposed convolutions, cropping, padding and upsampling, against Keras 3
in all three formats: every layer and option in zoo models (front end and passes, interpreted), and a
compact model taking each new code path once, compiled (layer_check)."""
import numpy as np

from kerasjit.compiler.ir import Op
from layer_check import check_all_formats, graph_of
from oracle import keras, randomize_batchnorm, save


def conv_1d_2d():
    k = keras()
    L = k.layers
    seq = k.Input((13, 6), name="seq")
    seq_cf = L.Permute((2, 1))(seq)
    img = k.Input((9, 8, 4), name="img")
    img_cf = L.Permute((3, 1, 2))(img)
    c = L.Conv1D(8, 3, padding="causal", dilation_rate=2, name="causal")(seq)
    c = L.BatchNormalization(name="causal_bn")(c)
    c = L.Activation("relu")(c)
    outs = [
        c,
        L.Conv1D(5, 4, strides=3, padding="same", activation="tanh", name="c1_s3")(seq),
        L.Conv1D(4, 3, padding="valid", groups=2, use_bias=False, name="c1_groups")(seq),
        L.Conv1D(3, 2, strides=2, data_format="channels_first", name="c1_cf")(seq_cf),
        L.DepthwiseConv1D(3, depth_multiplier=2, strides=2, padding="same", name="dw1")(seq),
        L.DepthwiseConv1D(3, dilation_rate=2, data_format="channels_first", name="dw1_cf")(seq_cf),
        L.SeparableConv1D(4, 3, depth_multiplier=2, padding="same", activation="swish", name="sep1")(seq),
        L.SeparableConv1D(4, 3, strides=2, data_format="channels_first", use_bias=False, name="sep1_cf")(seq_cf),
        L.DepthwiseConv2D(3, depth_multiplier=3, padding="same", data_format="channels_first", name="dw2_cf")(img_cf),
        L.SeparableConv2D(4, (2, 3), dilation_rate=2, name="sep2_dil")(img),
        L.SeparableConv2D(3, 3, strides=2, depth_multiplier=2, data_format="channels_first", name="sep2_cf")(img_cf),
        L.Conv1DTranspose(4, 3, strides=2, padding="same", name="t1_same")(seq),
        L.Conv1DTranspose(3, 4, strides=3, output_padding=2, name="t1_op")(seq),
        L.Conv1DTranspose(3, 3, dilation_rate=2, padding="same", data_format="channels_first", name="t1_cf")(seq_cf),
        L.Conv2DTranspose(4, (4, 3), strides=(2, 3), padding="same", output_padding=(1, 2), name="t2_op")(img),
        L.Conv2DTranspose(3, 3, dilation_rate=(2, 1), name="t2_dil")(img),
        L.Conv2DTranspose(2, 3, strides=2, data_format="channels_first", name="t2_cf")(img_cf),
        L.Cropping1D((2, 3))(seq),
        L.Cropping2D(((1, 2), (0, 3)))(img),
        L.Cropping2D(1, data_format="channels_first")(img_cf),
        L.ZeroPadding1D((3, 1))(seq),
        L.ZeroPadding2D(((0, 1), (2, 0)), data_format="channels_first")(img_cf),
        L.UpSampling1D(3)(seq),
        L.UpSampling2D((2, 3))(img),
        L.UpSampling2D((3, 1), data_format="channels_first")(img_cf),
        L.UpSampling2D(2, interpolation="bilinear")(img),
        L.UpSampling2D((3, 2), interpolation="bilinear", data_format="channels_first")(img_cf),
    ]
    # Conv2DTranspose + BatchNormalization + activation: one node after passes (test_transpose_fusion)
    t = L.Conv2DTranspose(6, 3, strides=2, padding="same", name="deconv")(img)
    t = L.BatchNormalization(name="deconv_bn")(t)
    outs.append(L.LeakyReLU(negative_slope=0.1, name="deconv_act")(t))
    m = k.Model([seq, img], outs, name="conv_1d_2d")
    randomize_batchnorm(m)
    return m


def conv_3d():
    k = keras()
    L = k.layers
    vol = k.Input((7, 6, 5, 3), name="vol")
    vol_cf = L.Permute((4, 1, 2, 3))(vol)
    c = L.Conv3D(6, (2, 3, 3), strides=(2, 1, 1), padding="same", name="c3_same")(vol)
    c = L.BatchNormalization(name="c3_bn")(c)
    outs = [
        L.Activation("elu")(c),
        L.Conv3D(4, 2, dilation_rate=(1, 2, 2), groups=1, name="c3_dil")(vol),
        L.Conv3D(4, 3, strides=2, groups=1, data_format="channels_first", name="c3_cf")(vol_cf),
        L.Conv3D(6, 1, groups=3, use_bias=False, name="c3_groups")(vol),
        L.Conv3DTranspose(4, 3, strides=2, padding="same", name="t3_same")(vol),
        L.Conv3DTranspose(3, (2, 3, 2), strides=(1, 2, 3), output_padding=(0, 1, 2), name="t3_op")(vol),
        L.Conv3DTranspose(2, 2, strides=2, data_format="channels_first", name="t3_cf")(vol_cf),
        L.Cropping3D(((1, 0), (2, 1), (0, 2)))(vol),
        L.Cropping3D(1, data_format="channels_first")(vol_cf),
        L.ZeroPadding3D((1, 0, 2))(vol),
        L.ZeroPadding3D(((1, 0), (0, 2), (1, 1)), data_format="channels_first")(vol_cf),
        L.UpSampling3D((2, 1, 3))(vol),
        L.UpSampling3D(2, data_format="channels_first")(vol_cf),
    ]
    m = k.Model(vol, outs, name="conv_3d")
    randomize_batchnorm(m)
    return m


def conv_compiled():
    """One of each code path: 1D convs as 2D kernels on views, the 3D im2col conv (grouped too), the
    transposed conv of each rank with a folded BatchNormalization and fused activation, slices, pads,
    repeats, a bilinear resize and channels_first transposes."""
    k = keras()
    L = k.layers
    seq = k.Input((9, 4), name="seq")
    img = k.Input((6, 5, 3), name="img")
    vol = k.Input((4, 5, 3, 2), name="vol")
    c = L.Conv1D(6, 3, padding="causal", dilation_rate=2, name="causal")(seq)
    c = L.ReLU()(L.BatchNormalization(name="causal_bn")(c))
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", name="deconv")(img)
    t = L.LeakyReLU(negative_slope=0.1)(L.BatchNormalization(name="deconv_bn")(t))
    outs = [
        c, t,
        L.DepthwiseConv1D(3, depth_multiplier=2, strides=2, padding="same")(seq),
        L.SeparableConv1D(5, 3, padding="same", data_format="channels_first")(L.Permute((2, 1))(seq)),
        L.Conv1DTranspose(3, 3, strides=2, output_padding=1)(seq),
        L.Conv2DTranspose(2, (2, 3), strides=(2, 1), dilation_rate=1, padding="valid")(img),
        L.Conv3D(4, 2, strides=(1, 2, 1), padding="same")(vol),
        L.Conv3D(4, (1, 2, 2), groups=2)(vol),
        L.Conv3DTranspose(2, 2, strides=2, padding="same")(vol),
        L.Cropping1D((1, 2))(seq),
        L.Cropping3D(((1, 0), (0, 2), (1, 1)))(vol),
        L.ZeroPadding3D((1, 0, 2))(vol),
        L.UpSampling1D(2)(seq),
        L.UpSampling2D(2, interpolation="bilinear")(img),
        L.UpSampling3D((1, 2, 2), data_format="channels_first")(vol),
    ]
    m = k.Model([seq, img, vol], outs, name="conv_compiled")
    randomize_batchnorm(m)
    return m


def test_conv_1d_2d(tmp_path, cache_dir):
    check_all_formats(conv_1d_2d(), tmp_path, cache_dir, compile=False)


def test_conv_3d(tmp_path, cache_dir):
    check_all_formats(conv_3d(), tmp_path, cache_dir, compile=False)


def test_conv_compiled(tmp_path, cache_dir):
    check_all_formats(conv_compiled(), tmp_path, cache_dir)


def test_transpose_fusion(tmp_path):
    """Conv2DTranspose + BatchNormalization + activation and Conv1D + BatchNormalization + ReLU each
    become one contraction node, the normalization folded into its weights and the activation into
    its epilogue."""
    g = graph_of(save(conv_1d_2d(), tmp_path, "keras"))
    producers = g.producers()
    out = producers[g.outputs[-1]]
    assert out.op is Op.CONV_TRANSPOSE and out.layer == "deconv"
    assert [s.op for s in out.epilogue] == [Op.ADD, Op.RELU]
    first = producers[g.outputs[0]]
    assert first.op is Op.CONV and first.layer == "causal"
    assert [s.op for s in first.epilogue] == [Op.ADD, Op.RELU]
    assert not any(n.layer in ("deconv_bn", "causal_bn") for n in g.nodes)
    np.testing.assert_equal(len(out.attr("strides")), 2)
