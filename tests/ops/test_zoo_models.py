"""Whole zoo models through the op lowerings (mini importer with constant folding) against ORT.

Skipped when ``models/onnx/<name>.onnx`` has not been built (``python -m models.build``).
The LSTM model is left out: LSTM is decomposed by a pass, not lowered here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from .harness import check_model

MODELS = Path(__file__).resolve().parents[2] / "models" / "onnx"

# name -> (input shape with batch 2, tolerance). Deep conv nets accumulate fp32 rounding
# differences (other summation orders than ONNX Runtime) over ~20 layers: atol 1e-3 on O(1) outputs.
ZOO = {
    "mlp": ((2, 784), 1e-5),
    "lenet5": ((2, 1, 28, 28), 1e-4),
    "transformer": ((2, 16, 256), 1e-4),
    "resnet18": ((1, 3, 224, 224), 1e-3),
    "mobilenetv2": ((1, 3, 224, 224), 1e-3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_model(name):
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not built (python -m models.build --only {name})")
    model = onnx.load(path)
    shape, atol = ZOO[name]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    check_model(model, {model.graph.input[0].name: x}, rtol=1e-4, atol=atol, fold=True)
