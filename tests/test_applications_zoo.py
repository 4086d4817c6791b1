"""Keras applications built from the layers of issue 3 (random weights, BatchNormalization statistics
randomized), compiled from `.keras` and compared with Keras; the three formats are covered by the small
models of the test_layers_* files. Slow: each is a numba compile of a few hundred nodes."""
import pytest

from oracle import check_model, keras, randomize_batchnorm

BUILDERS = {
    "inception_v3": lambda k: k.applications.InceptionV3(weights=None, input_shape=(299, 299, 3),
                                                         classifier_activation=None),
    "densenet121": lambda k: k.applications.DenseNet121(weights=None, input_shape=(224, 224, 3),
                                                        classifier_activation=None),
    "efficientnetb0": lambda k: k.applications.EfficientNetB0(weights=None, input_shape=(224, 224, 3),
                                                              classifier_activation=None),
    "xception": lambda k: k.applications.Xception(weights=None, input_shape=(299, 299, 3),
                                                  classifier_activation=None),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_application(name, tmp_path, cache_dir):
    m = BUILDERS[name](keras())
    randomize_batchnorm(m)
    errs = check_model(m, tmp_path, cache_dir, formats=("keras",), batches=(1, 2))
    print(f"[zoo] {name}: max error " + ", ".join(f"{f} batch {b}: {e}" for (f, b), e in errs.items()))
