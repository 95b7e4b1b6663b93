"""STFT against ONNX Runtime: window / frame_length, onesided or not, real and complex signals."""

from __future__ import annotations

import numpy as np

from .harness import Const, check_graph, node, rand


def test_stft_variants():
    def i64(value: int) -> Const:
        return Const(np.array(value, np.int64))

    window = np.hanning(10).astype(np.float32)
    nodes = [
        node("STFT", ["real", "step3", "window"], "y0"),
        node("STFT", ["real", "step4", "", "len8"], "y1", onesided=0),
        node("STFT", ["complex", "step3", "window"], "y2", onesided=0),
        node("STFT", ["real", "step4", "window", "len10"], "y3"),
    ]
    inputs = {"real": rand(2, 40, 1), "complex": rand(1, 33, 2), "window": window,
              "step3": i64(3), "step4": i64(4), "len8": i64(8), "len10": i64(10)}
    # The DFT sums ~10 terms of size ~2: atol for the near-zero bins.
    check_graph(nodes, inputs, ["y0", "y1", "y2", "y3"], opset=17, rtol=1e-4, atol=1e-4)


def test_mel_weight_matrix():
    def scalar(value: float, dtype: str) -> Const:
        return Const(np.array(value, dtype))

    nodes = [
        node("MelWeightMatrix", ["bins", "len", "rate", "low", "high"], "y0"),
        node("MelWeightMatrix", ["bins2", "len2", "rate2", "low2", "high2"], "y1"),
    ]
    inputs = {"bins": scalar(8, "int32"), "len": scalar(16, "int32"),
              "rate": scalar(8192, "int32"), "rate2": scalar(16000, "int64"),
              "low": scalar(0.0, "float32"),
              "high": scalar(4096.0, "float32"), "bins2": scalar(10, "int64"),
              "len2": scalar(64, "int64"), "low2": scalar(100.0, "float32"),
              "high2": scalar(3000.0, "float32")}
    check_graph(nodes, inputs, ["y0", "y1"], opset=17)
