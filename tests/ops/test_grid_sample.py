"""GridSample against ONNX Runtime: every mode / padding / align_corners combination in one
graph per case (one compile), grids reaching beyond [-1, 1] so that every padding rule runs.

Cubic with border padding is checked against ONNX's reference evaluator instead: ONNX Runtime
clamps each cubic tap but not the sample coordinate itself, while the spec (and the reference,
which generates the node tests) clamps the coordinate first; the two differ by up to ~0.3 here.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from hcompile.errors import HcompileError

from .harness import check_graph, make_model, node, rand, run_hcompile

PADDINGS = ["zeros", "border", "reflection"]


def _combinations(modes: list[str], *, skip_cubic_border: bool = True) -> tuple[list, list]:
    nodes, outs = [], []
    for mode, padding, align in product(modes, PADDINGS, [0, 1]):
        if skip_cubic_border and mode in ("cubic", "bicubic") and padding == "border":
            continue
        outs.append(f"y{len(outs)}")
        nodes.append(node("GridSample", ["x", "grid"], outs[-1], mode=mode,
                          padding_mode=padding, align_corners=align))
    return nodes, outs


@pytest.mark.parametrize(("opset", "modes"), [(16, ["bilinear", "nearest", "bicubic"]),
                                               (20, ["linear", "nearest", "cubic"])])
def test_grid_sample_2d(opset, modes):
    nodes, outs = _combinations(modes)
    inputs = {"x": rand(2, 3, 5, 6), "grid": rand(2, 4, 7, 2, low=-1.7, high=1.7)}
    check_graph(nodes, inputs, outs, opset=opset)


def test_grid_sample_2d_exact_pixel_centres():
    """Grid points on pixel centres and half-way: rounding ties of nearest (half to even)."""
    xs = np.linspace(-1.5, 1.5, 13, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, xs[::-1]), axis=-1)[None]  # (1, 13, 13, 2)
    nodes, outs = _combinations(["linear", "nearest"])
    check_graph(nodes, {"x": rand(1, 2, 4, 4), "grid": grid}, outs, opset=20)


def test_grid_sample_3d():
    nodes, outs = _combinations(["linear", "nearest"])
    inputs = {"x": rand(2, 2, 3, 4, 5), "grid": rand(2, 2, 3, 4, 3, low=-1.5, high=1.5)}
    check_graph(nodes, inputs, outs, opset=20)


def test_grid_sample_float64_and_size_one_axis():
    nodes, outs = _combinations(["linear", "cubic"])
    inputs = {"x": rand(1, 2, 1, 5, dtype="float64"),
              "grid": rand(1, 3, 3, 2, dtype="float64", low=-1.5, high=1.5)}
    check_graph(nodes, inputs, outs, opset=20, rtol=1e-9, atol=1e-12)


def _typed_model(nodes: list, feeds: dict, outs: list[str], out_shape: tuple, opset: int):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, out_shape) for o in outs])
    return make_model(graph, opset)


def test_grid_sample_cubic_border_against_the_reference():
    feeds = {"x": rand(2, 3, 5, 6), "grid": rand(2, 4, 7, 2, low=-1.7, high=1.7)}
    nodes = [node("GridSample", ["x", "grid"], f"y{a}", mode="cubic", padding_mode="border",
                  align_corners=a) for a in (0, 1)]
    model = _typed_model(nodes, feeds, ["y0", "y1"], (2, 3, 4, 7), 20)
    expected = ReferenceEvaluator(model).run(None, feeds)
    got = run_hcompile(model, feeds)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_grid_sample_5d_input_needs_opset_20():
    feeds = {"x": rand(1, 1, 2, 2, 2), "grid": rand(1, 2, 2, 2, 3)}
    model = _typed_model([node("GridSample", ["x", "grid"], "y")], feeds, ["y"],
                         (1, 1, 2, 2, 2), 16)
    with pytest.raises(HcompileError):
        run_hcompile(model, feeds)
