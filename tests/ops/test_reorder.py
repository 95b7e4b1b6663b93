"""ReverseSequence and TensorScatter against ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from .harness import check_graph, node, rand


def test_reverse_sequence_time_major_and_batch_major():
    lengths_tb = np.array([5, 1, 3], np.int64)  # includes full length and length 1
    lengths_bt = np.array([0, 4, 2, 6], np.int64)  # 0: nothing reversed (ORT: copied)
    nodes = [
        node("ReverseSequence", ["x", "lt"], "y0", batch_axis=1, time_axis=0),
        node("ReverseSequence", ["z", "lb"], "y1", batch_axis=0, time_axis=1),
    ]
    inputs = {"x": rand(5, 3, 2), "lt": lengths_tb, "z": rand(4, 6, 2, 3, dtype="int32",
                                                                 low=-50, high=50),
              "lb": lengths_bt}
    check_graph(nodes, inputs, ["y0", "y1"], opset=10)


@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensor_scatter(mode):
    high = 4 if mode == "linear" else 6  # linear writes must fit; circular ones wrap
    nodes = [
        node("TensorScatter", ["past", "update", "where"], "y0", mode=mode),
        node("TensorScatter", ["past3", "update3", "where3"], "y1", mode=mode, axis=1),
        node("TensorScatter", ["past", "update"], "y2", mode=mode),
    ]
    inputs = {
        "past": rand(3, 2, 6, 4), "update": rand(3, 2, 2, 4),
        "where": np.array([5 if mode == "circular" else 0, high - 2, 1], np.int64),
        "past3": rand(2, 5, 3), "update3": rand(2, 3, 3),
        "where3": np.array([2, 4 if mode == "circular" else 1], np.int64),
    }  # fmt: skip
    check_graph(nodes, inputs, ["y0", "y1", "y2"], opset=24)
