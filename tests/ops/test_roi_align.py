"""RoiAlign against ONNX Runtime: both coordinate modes, avg and max, scales, sampling ratios,
regions partly outside the image and several batch images."""

from __future__ import annotations

import numpy as np
import pytest

from hcompile.errors import UnsupportedOpError

from .harness import (
    check_graph,
    make_node_model,
    node,
    rand,
    run_hcompile,
    run_ort,
    with_output_types,
)

ROIS = np.array([[0.0, 0.0, 9.0, 9.0], [1.5, 2.0, 6.0, 4.5], [-3.0, 5.0, 14.0, 12.0],
                 [4.0, 4.0, 4.5, 4.2]], np.float32)
BATCH = np.array([0, 1, 1, 0], np.int64)


@pytest.mark.parametrize("opset", [10, 16])
def test_roi_align(opset):
    nodes, outs = [], []
    for mode, ratio, scale, coord in [("avg", 2, 1.0, "half_pixel"),
                                      ("max", 2, 1.0, "output_half_pixel"),
                                      ("avg", 3, 0.5, "output_half_pixel"),
                                      ("max", 1, 0.75, "half_pixel")]:
        attrs = {"mode": mode, "sampling_ratio": ratio, "spatial_scale": scale,
                 "output_height": 3, "output_width": 4}
        if opset >= 16:
            attrs["coordinate_transformation_mode"] = coord
        outs.append(f"y{len(outs)}")
        nodes.append(node("RoiAlign", ["x", "rois", "batch"], outs[-1], **attrs))
    inputs = {"x": rand(2, 3, 10, 12), "rois": ROIS, "batch": BATCH}
    check_graph(nodes, inputs, outs, opset=opset)


def test_roi_align_adaptive_sampling_is_rejected():
    model, feeds = make_node_model("RoiAlign", [rand(1, 1, 8, 8), ROIS[:2], BATCH[:2] * 0],
                                   {"sampling_ratio": 0}, opset=16)
    typed = with_output_types(model, run_ort(model, feeds))
    with pytest.raises(UnsupportedOpError, match="sampling_ratio"):
        run_hcompile(typed, feeds)
