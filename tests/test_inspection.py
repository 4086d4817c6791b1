"""`kerasjit inspect`: fusion groups (provenance), the cost model, DOT, and the picture of ResNet50."""
from __future__ import annotations

import re
import shutil
import struct

import numpy as np
import pytest

from cli_fixtures import run_cli  # noqa: F401  (fixture)
from kerasjit.compiler.cost import graph_costs
from kerasjit.inspection import fusion_groups, inspect_model
from oracle import keras, randomize_batchnorm


def _dense_bn_relu(tmp_path):
    k = keras()
    inp = k.Input((6,), name="x")
    h = k.layers.Dense(5, name="dense")(inp)
    h = k.layers.BatchNormalization(name="bn")(h)
    h = k.layers.Dropout(0.5, name="drop")(h)
    out = k.layers.Activation("relu", name="act")(h)
    m = k.Model(inp, out, name="dbr")
    randomize_batchnorm(m)
    m.save(tmp_path / "dbr.keras")
    return tmp_path / "dbr.keras"


def test_fusion_groups_name_every_layer_a_node_covers(tmp_path):
    ins = inspect_model(_dense_bn_relu(tmp_path))
    groups = ins.groups()
    assert len(groups) == len(ins.final.nodes) == 1
    assert groups[0].layers == ["dense", "bn", "drop", "act"]
    from kerasjit.compiler.passes import PASSES
    assert [name for name, _ in ins.stages] == ["lowered"] + [name for name, _ in PASSES]
    # every lowered node is covered by exactly one compiled node, unless folded into a constant
    covered = [n.out.name for g in fusion_groups(ins.lowered, ins.final) for n in g.covers]
    assert len(covered) == len(set(covered))


def test_cost_model_counts_multiply_adds_twice(tmp_path):
    ins = inspect_model(_dense_bn_relu(tmp_path))
    (cost,) = graph_costs(ins.final)
    assert cost.flops == 2 * 6 * 5 + len(cost.node.epilogue) * 5
    assert cost.bytes_read == 4 * (6 + 6 * 5 + 5) and cost.bytes_written == 4 * 5


def test_conv_flops(tmp_path):
    k = keras()
    m = k.Sequential([k.Input((9, 9, 3)), k.layers.Conv2D(4, 3, strides=2, use_bias=False, name="c")], name="c1")
    m.save(tmp_path / "c.keras")
    (cost,) = graph_costs(inspect_model(tmp_path / "c.keras").final)
    assert cost.flops == 2 * (4 * 4 * 4) * (3 * 3 * 3)


def test_inspect_png_of_resnet50_is_readable(run_cli, tmp_path):
    """The picture a user gets: every conv of ResNet50 with its folded BatchNormalization and fused
    activation or residual add in one labelled box, big enough to read (text at 96 dpi)."""
    k = keras()
    model = k.applications.ResNet50(weights=None)
    model.save(tmp_path / "resnet50.keras")
    dot = run_cli("inspect", tmp_path / "resnet50.keras", "--format", "dot").stdout
    assert dot.count("conv 3x3") == 16 and dot.count("conv 7x7/2") == 1
    assert "conv2_block1_0_conv\\nconv2_block1_0_bn\\nconv2_block1_add\\nconv2_block1_out" in dot
    groups = run_cli("inspect", tmp_path / "resnet50.keras", "--groups").stdout
    assert re.search(r"conv \+add \+add \+relu .* conv5_block3_3_conv, conv5_block3_3_bn, conv5_block3_add, "
                     r"conv5_block3_out", groups)
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    run_cli("inspect", tmp_path / "resnet50.keras", "--png", "resnet50.png")
    png = (run_cli.cwd / "resnet50.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert 400 <= width <= 2000 and 3000 <= height <= 20000, (width, height)  # one column, legible text
