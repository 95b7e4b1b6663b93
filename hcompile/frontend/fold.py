"""Evaluate a node whose inputs are all known at compile time (constant folding).

Uses ONNX's own reference implementation (``onnx.reference``), so folded values follow the
spec exactly. Random and side-effecting ops are never folded.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

#: Never fold these: their value changes from run to run.
NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                    "Multinomial", "Bernoulli"}

#: Do not materialise folded tensors larger than this (bytes); they stay computed at run time.
MAX_FOLDED_BYTES = 64 * 1024 * 1024


def can_fold(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx") and node.op_type not in NONDETERMINISTIC


def evaluate(
    node: onnx.NodeProto, values: dict[str, np.ndarray], opset: int
) -> list[np.ndarray] | None:
    """Run ``node`` on constant ``values``; None when the reference evaluator cannot."""
    inputs = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(values[name].dtype),
                                      values[name].shape)
        for name in dict.fromkeys(node.input) if name
    ]
    outputs = [helper.make_empty_tensor_value_info(name) for name in node.output if name]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        evaluator = ReferenceEvaluator(model)
        feeds = {v.name: values[v.name] for v in inputs}
        results = list(evaluator.run(None, feeds))
    except Exception:  # the reference evaluator lacks some op/attr combinations
        return None
    arrays = [np.asarray(r) for r in results]
    if any(a.dtype == object or a.nbytes > MAX_FOLDED_BYTES for a in arrays):
        return None
    return arrays
