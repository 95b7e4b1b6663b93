"""The registry picks the right op version, and covers every op the zoo models use."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from hcompile.ops import lookup, supported_ops

MODELS = Path(__file__).resolve().parents[2] / "models" / "onnx"
# Decomposed by passes, or folded by the importer before lowering.
NOT_LOWERED = {"LSTM", "GRU", "RNN", "Constant"}


@pytest.mark.parametrize(
    ("op", "opset", "since"),
    [
        ("ReduceSum", 12, 11),
        ("ReduceSum", 13, 13),
        ("ReduceMean", 17, 13),
        ("ReduceMean", 18, 18),
        ("Softmax", 21, 13),
        ("Gelu", 20, 20),
        ("Gelu", 19, None),
    ],
)
def test_lookup_versions(op, opset, since):
    impl = lookup(op, "", opset)
    assert (impl.since if impl else None) == since


def test_axes_inputs_are_static():
    assert lookup("ReduceSum", "", 13).static_inputs == (1,)
    assert lookup("ReduceMax", "ai.onnx", 18).static_inputs == (1,)
    assert lookup("ReduceMax", "", 17).static_inputs == ()
    assert lookup("Slice", "", 13).static_inputs == (1, 2, 3, 4)


def test_supported_ops_lists_versions():
    table = {op: versions for domain, op, versions in supported_ops() if domain == ""}
    assert table["ReduceSum"] == [11, 13]
    assert len(table) > 120


@pytest.mark.parametrize(
    "name", ["mlp", "lenet5", "resnet18", "mobilenetv2", "transformer", "lstm"]
)
def test_zoo_ops_are_registered(name):
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} not built")
    model = onnx.load(path, load_external_data=False)
    opset = next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))
    ops = {n.op_type for n in model.graph.node} - NOT_LOWERED
    missing = sorted(op for op in ops if lookup(op, "", max(opset, 13)) is None)
    assert not missing, f"{name} uses ops without a lowering: {missing}"
