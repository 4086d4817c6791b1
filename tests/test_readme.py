"""The README runs as written: its `python` blocks in order (one namespace, as a user pastes them), its
command lines, and its supported-layer list is the registry's.

Blocks tagged `py` are shown only: code that needs what a test cannot have (Keras 2, a Dask
cluster and a dataset). The files the examples name (model.keras, model.h5,
model.json, model.weights.h5, input.npy) are a small MNIST-shaped model saved in a scratch folder.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from cli_fixtures import mnist, run_cli  # noqa: F401  (fixtures)
from kerasjit.layer_list import BEGIN, END, markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def blocks(lang: str) -> list[str]:
    """The fenced code blocks tagged `lang`, dedented (the README indents those inside list items)."""
    text = README.read_text()
    out = []
    for m in re.finditer(r"^( *)```" + lang + r"\n(.*?)^\1```", text, re.S | re.M):
        indent = len(m.group(1))
        out.append("\n".join(line[indent:] for line in m.group(2).splitlines()))
    return out


def test_supported_layer_list_is_generated_from_the_registry():
    text = README.read_text()
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert section == "\n" + markdown(), "README's layer list is stale: run `python -m kerasjit.layer_list README.md`"


def test_readme_examples_run(run_cli, mnist, cache_dir, monkeypatch):
    work = mnist.copy_to(run_cli.cwd)
    commands = [line.split("#", 1)[0].strip() for block in blocks("bash") for line in block.splitlines()]
    commands = [c for c in commands if c.startswith("kerasjit ")]
    assert commands, "the README shows no command"
    # step 2 of Usage first: it makes the Keras.js files that the Python examples compile
    encode = [c for c in commands if c.startswith("kerasjit encode")]
    for c in encode:
        run_cli(*shlex.split(c)[1:])
    monkeypatch.chdir(work)
    monkeypatch.setenv("KERASJIT_CACHE_DIR", str(cache_dir))
    namespace: dict = {"__name__": "__readme__"}
    python = blocks("python")
    assert len(python) >= 5
    from kerasjit.registry import registered_layers, unregister_layer
    before = set(registered_layers())
    try:
        for code in python:
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102  (the README is ours)
    finally:  # lowerings a block registers would change every later compile's cache key
        for name in set(registered_layers()) - before:
            unregister_layer(name)
    assert (work / "model.kjit" / "manifest.json").exists()
    for c in commands:
        args = shlex.split(c)[1:]
        if args[0] in ("demo", "encode"):  # CI runs the demo itself; encode ran above
            continue
        if "--png" in args and shutil.which("dot") is None:
            continue
        proc = run_cli(*args)
        assert proc.stdout or proc.stderr or "--help" in args, c
    assert os.path.getsize(work / "out.npy") > 0
