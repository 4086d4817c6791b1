"""Shared setup of the command-line and README tests: one small Keras model saved once per session in
every format a user has (so the session's kerasjit cache compiles each file set once), and a runner
that calls the installed `kerasjit` command as a user does.

Import the fixtures into a test module: `from cli_fixtures import mnist, run_cli  # noqa: F401`.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from oracle import keras, keras_predict, randomize_batchnorm


def kerasjit_command() -> list[str]:
    """The console script installed beside this Python, else `python -m kerasjit.cli`."""
    script = Path(sys.executable).parent / "kerasjit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "kerasjit.cli"]


def cli_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    # a user's environment: no test switches (conftest turns numba's CUDA simulator on for the CUDA tests)
    env = {k: v for k, v in os.environ.items()
           if k not in ("KERASJIT_PROGRESS", "KERASJIT_DUMP_AFTER", "NUMBA_ENABLE_CUDASIM")}
    # KERASJIT_SELF_TEST=0 as in conftest (the tests compare with Keras themselves); `run_cli_self_test` drops it
    env.update(KERASJIT_CACHE_DIR=str(cache_dir), KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", KERASJIT_SELF_TEST="0")
    env.update(extra)
    return env


@dataclass
class Cli:
    cwd: Path
    env: dict

    def __call__(self, *args: str, expect: int | None = 0, timeout: float = 600, **env: str):
        """Run `kerasjit ARGS` in `cwd`; assert its exit status is `expect` (unless None)."""
        proc = subprocess.run(kerasjit_command() + [str(a) for a in args], cwd=self.cwd, capture_output=True,
                              text=True, timeout=timeout, env={**self.env, **env}, stdin=subprocess.DEVNULL)
        if expect is not None:
            assert proc.returncode == expect, (f"kerasjit {' '.join(map(str, args))}: exit {proc.returncode}, "
                                               f"expected {expect}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc


@dataclass
class ModelFiles:
    """A small MNIST-shaped convnet saved as a user would save it, with a test input and Keras's output."""

    dir: Path
    model: object  # the live keras.Model
    x: np.ndarray
    y: np.ndarray

    def copy_to(self, dest: Path) -> Path:
        """The model files (not the artifacts) copied into `dest`; content, and so cache keys, unchanged."""
        dest.mkdir(parents=True, exist_ok=True)
        for p in self.dir.iterdir():
            if p.is_file():
                shutil.copy2(p, dest / p.name)
        return dest


def build_mnist_model():
    k = keras()
    inp = k.Input((28, 28, 1), name="input_1")
    x = k.layers.Conv2D(4, 3, name="conv")(inp)
    x = k.layers.BatchNormalization(name="bn")(x)
    x = k.layers.Activation("relu", name="relu")(x)
    x = k.layers.MaxPooling2D(2, name="pool")(x)
    x = k.layers.Flatten(name="flatten")(x)
    out = k.layers.Dense(10, name="predictions")(x)
    model = k.Model(inp, out, name="mnist_cnn")
    randomize_batchnorm(model)
    return model


@pytest.fixture(scope="session")
def mnist(tmp_path_factory) -> ModelFiles:
    """model.keras, model.h5, model.json + model.weights.h5 and input.npy (8 images), saved once."""
    d = tmp_path_factory.mktemp("mnist_files")
    model = build_mnist_model()
    model.save(d / "model.keras")
    model.save(d / "model.h5")
    (d / "model.json").write_text(model.to_json())
    model.save_weights(d / "model.weights.h5")
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    np.save(d / "input.npy", x)
    return ModelFiles(d, model, x, keras_predict(model, x)[0])


@pytest.fixture()
def run_cli(tmp_path, cache_dir) -> Cli:
    """`run_cli("compile", ...)` runs the installed command in `tmp_path` with the session's cache."""
    return Cli(tmp_path, cli_env(cache_dir))


@pytest.fixture()
def run_cli_self_test(tmp_path, auto_self_test) -> Cli:
    """`run_cli` as a user runs it: `compile` stores Keras's outputs as the artifact's self-test (in a
    cache of its own: the session's may hold the same model compiled without one)."""
    env = cli_env(auto_self_test)
    del env["KERASJIT_SELF_TEST"]
    return Cli(tmp_path, env)
