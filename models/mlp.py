"""mlp: the seed model, an MLP 784-100-10 with softmax, written directly with onnx.helper.

The TorchScript exporter turns a 2-D nn.Linear into Gemm; this model is meant to exercise
MatMul + Add, so it is built by hand: MatMul, Add, Relu, MatMul, Add, Softmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.common import OPSET, VERIFY_BATCH, Reference, seeded_input

SEED = 0
SIZES = (784, 100, 10)


def _weights() -> dict[str, np.ndarray]:
    """He-scaled weights and small biases from numpy RandomState(SEED)."""
    rng = np.random.RandomState(SEED)
    d_in, d_hid, d_out = SIZES
    return {
        "W1": (rng.standard_normal((d_in, d_hid)) * np.sqrt(2.0 / d_in)).astype(np.float32),
        "b1": (rng.standard_normal(d_hid) * 0.01).astype(np.float32),
        "W2": (rng.standard_normal((d_hid, d_out)) * np.sqrt(2.0 / d_hid)).astype(np.float32),
        "b2": (rng.standard_normal(d_out) * 0.01).astype(np.float32),
    }


def make_model() -> onnx.ModelProto:
    """Return the MLP as an ONNX model (opset OPSET, symbolic batch dim)."""
    w = _weights()
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h1"], name="MatMul_0"),
        helper.make_node("Add", ["h1", "b1"], ["h2"], name="Add_1"),
        helper.make_node("Relu", ["h2"], ["h3"], name="Relu_2"),
        helper.make_node("MatMul", ["h3", "W2"], ["h4"], name="MatMul_3"),
        helper.make_node("Add", ["h4", "b2"], ["logits"], name="Add_4"),
        helper.make_node("Softmax", ["logits"], ["y"], name="Softmax_5", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SIZES[0]])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", SIZES[-1]])],
        initializer=[numpy_helper.from_array(arr, name) for name, arr in w.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hcompile-models"
    )
    model.ir_version = 8  # the IR version that goes with opset 17, as torch's exporter writes it
    return model


def reference(x: np.ndarray) -> np.ndarray:
    """The model's output for `x`, computed with numpy."""
    w = _weights()
    h = np.maximum(x @ w["W1"] + w["b1"], 0.0)
    logits = h @ w["W2"] + w["b2"]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def export(path: Path) -> Reference:
    """Write the model to `path`; return a reference input/output pair."""
    onnx.save(make_model(), path)
    x = seeded_input((VERIFY_BATCH, SIZES[0]), SEED + 1)
    return Reference(x=x, y=reference(x))
