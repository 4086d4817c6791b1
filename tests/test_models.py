"""Whole models from the Keras.js demos and keras.applications, in every format, against Keras."""
import pytest

from benchmarks import models as zoo
from oracle import FORMATS, check_model, keras, randomize_batchnorm


def _build(name):
    k = keras()
    if name == "resnet50":
        m = k.applications.ResNet50(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    elif name == "mobilenetv2":
        m = k.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3), classifier_activation=None)
    elif name == "squeezenet":
        m = zoo.squeezenet11(k)
    else:
        m = zoo.mnist_convnet(k)
    randomize_batchnorm(m)
    return m


@pytest.mark.parametrize("fmt", FORMATS)
def test_mnist_convnet(fmt, tmp_path, cache_dir):
    check_model(_build("mnist"), tmp_path, cache_dir, formats=(fmt,), batches=(1, 5))


@pytest.mark.parametrize("name", ["squeezenet", "mobilenetv2", "resnet50"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_applications(name, fmt, tmp_path, cache_dir):
    check_model(_build(name), tmp_path, cache_dir, formats=(fmt,), batches=(1, 2))
