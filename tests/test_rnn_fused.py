"""LSTMs as fused CPU recurrence kernels (passes/rnn_fused.py, hcompile/ops/recurrent.py).

Which LSTMs fuse and which still unroll (structure), the kernel's numbers against ONNX Runtime
through ``hcompile.compile`` for every shape path of the kernel (row blocks of 1-4, vector
widths 16 / 4 / 1, one or two accumulators per row) and every LSTM feature it covers, and its
tanh/sigmoid against numpy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

import hcompile
from hcompile.errors import UsageError
from hcompile.frontend import import_model
from hcompile.ir import verify
from hcompile.ops import recurrent
from hcompile.passes import PassOptions, cost, decompose_rnn
from tests.test_decompose_rnn import ATOL, RTOL, Case, build_model, reference


def decomposed(case: Case, **options: object) -> dict[str, int]:
    model, _ = build_model(case)
    graph, _ = import_model(model)
    assert decompose_rnn.run(graph, PassOptions(**options)) is True  # type: ignore[arg-type]
    verify(graph, after="decompose_rnn")
    return graph.op_counts()


# -- which LSTMs fuse ---------------------------------------------------------------------------
def test_cpu_only_lstm_is_one_recurrence_per_direction() -> None:
    counts = decomposed(Case(direction="bidirectional", steps=7, initial="input", peepholes=True))
    assert counts["LSTMRecurrence"] == 2
    assert counts["Gemm"] == 2  # the hoisted input projections only
    assert "Sigmoid" not in counts and "LSTM" not in counts


@pytest.mark.parametrize("case, options, why", [
    (Case(), {"targets": ["cpu", "gpu"]}, "another target: steps stay placeable"),
    (Case(), {"extra": {"rnn": "unroll"}}, "unrolling asked for"),
    (Case(lens=(5, 2, 3), lens_given="input"), {}, "run-time sequence lengths"),
    (Case(lens=(5, 2, 3)), {}, "constant lengths below the sequence length"),
    (Case(attrs={"activations": ["Relu", "Tanh", "Relu"]}), {}, "non-default activations"),
    (Case(dtype="float64"), {}, "float64"),
    (Case(op="GRU"), {}, "GRU"),
], ids=["two_targets", "unroll", "lens_input", "lens_short", "relu", "float64", "gru"])
def test_other_recurrences_unroll(case: Case, options: dict, why: str) -> None:
    counts = decomposed(case, **options)
    assert "LSTMRecurrence" not in counts, why
    assert counts["Gemm"] > case.dirs, why  # recurrent Gemms per step


def test_full_constant_lengths_fuse() -> None:
    assert decomposed(Case(lens=(5, 5, 5)))["LSTMRecurrence"] == 1


def test_unknown_rnn_option_is_refused() -> None:
    with pytest.raises(UsageError, match=r"'rnn'.*'fuse'.*expected one of auto, unroll"):
        decomposed(Case(), extra={"rnn": "fuse"})


def test_recurrence_is_cpu_only() -> None:
    model, _ = build_model(Case())
    graph, _ = import_model(model)
    decompose_rnn.run(graph, PassOptions())
    node = next(n for n in graph.nodes if n.op == "LSTMRecurrence")
    devices = cost.devices_for(PassOptions())
    for target in ("gpu", "fpga"):
        reason = cost.unsupported_reason(node, target, devices[target],
                                         graph.tensor_types())
        assert reason == "hcompile::LSTMRecurrence is a hand-scheduled CPU kernel"
    assert cost.unsupported_reason(node, "cpu", devices["cpu"],
                                   graph.tensor_types()) is None


# -- numbers against ONNX Runtime ---------------------------------------------------------------
FUSED_CASES = {
    # batch 16, H 64: blocks of 4 rows, 16 lanes, 2 accumulators per row (the zoo's shape)
    "b16_h64": Case(batch=16, hidden=64, steps=6, input_size=8, scale=0.15),
    "b1_h16": Case(batch=1, hidden=16, steps=9),
    "b3_h20_reverse": Case(batch=3, hidden=20, direction="reverse", initial="input"),
    "b2_h7_bidir_layout1": Case(batch=2, hidden=7, direction="bidirectional", layout=1,
                                initial="const"),
    "peepholes_clip": Case(peepholes=True, attrs={"clip": 0.4}, initial="input"),
    "input_forget_peepholes": Case(attrs={"input_forget": 1}, peepholes=True, initial="input",
                                   direction="bidirectional"),
    "initial_h_only_full_lens": Case(initial="input", initial_c=False, lens=(5, 5, 5)),
    "only_y_c": Case(outputs=("", "", "Y_c"), initial="input", hidden=32, batch=8),
    "opset7": Case(opset=7, direction="bidirectional", initial="const", peepholes=True),
}


@pytest.mark.parametrize("case", FUSED_CASES.values(), ids=FUSED_CASES.keys())
def test_fused_matches_onnxruntime(case: Case) -> None:
    model, feeds = build_model(case)
    assert "LSTMRecurrence" in decomposed(case)
    outputs = hcompile.load(hcompile.compile(model, verify_passes=True)).run(feeds)
    expected = reference(case)
    assert set(outputs) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


def test_fused_equals_unrolled_on_a_long_sequence() -> None:
    """40 steps: an error in the carried state would grow step by step."""
    case = replace(FUSED_CASES["b3_h20_reverse"], steps=40, scale=0.2)
    model, feeds = build_model(case)
    fused = hcompile.load(hcompile.compile(model)).run(feeds)
    expected = reference(case)
    for name, value in expected.items():
        np.testing.assert_allclose(fused[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


def test_block_rows_keep_every_core_busy() -> None:
    assert recurrent._block_rows(16, 2) == 4
    assert recurrent._block_rows(4, 2) == 2
    assert recurrent._block_rows(3, 2) == 1
    assert recurrent._block_rows(1, 2) == 1
    assert recurrent._block_rows(8, 1) == 4


# -- the kernel's transcendental functions ------------------------------------------------------
def test_tanh_and_sigmoid_match_numpy() -> None:
    n = 4096

    @T.prim_func(private=True)
    def activations(x: T.Buffer((n,), "float32"), th: T.Buffer((n,), "float32"),
                    sg: T.Buffer((n,), "float32")) -> None:
        for i in T.vectorized(n):
            th[i] = recurrent.tanh(x[i])
            sg[i] = recurrent.sigmoid(x[i])

    lib = tvm.compile(tvm.IRModule({"f": activations.with_attr("global_symbol", "f")}), "llvm")
    x = np.concatenate([np.linspace(-20, 20, n - 4), [np.nan, np.inf, -np.inf, 0.0]])
    x = x.astype(np.float32)
    args = [tvm.runtime.tensor(a) for a in (x, np.zeros(n, np.float32), np.zeros(n, np.float32))]
    lib["f"](*args)
    with np.errstate(over="ignore"):
        expected_sigmoid = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(args[1].numpy(), np.tanh(x.astype(np.float64)), atol=3e-7)
    np.testing.assert_allclose(args[2].numpy(), expected_sigmoid, atol=3e-7)
    assert np.isnan(args[1].numpy()[n - 4]) and np.isnan(args[2].numpy()[n - 4])


@pytest.mark.parametrize("batch, kind", [(1, "matvec"), (16, "matmul")])
def test_recurrence_cost(batch: int, kind: str) -> None:
    """Row-vector products per step (rows share Rᵀ loads from batch 2), 2·T·N·H·4H flops."""
    case = Case(batch=batch, hidden=64, steps=6)
    model, _ = build_model(case)
    graph, _ = import_model(model)
    decompose_rnn.run(graph, PassOptions())
    cost.run(graph, PassOptions())
    node = next(n for n in graph.nodes if n.op == "LSTMRecurrence")
    entry = node.meta["cost"]
    assert entry["kind"] == kind
    macs = case.steps * batch * 64 * 256
    assert 2 * macs <= entry["flops"] <= 2.2 * macs
    assert entry["est_ms"]["cpu"] > 0 and "gpu" not in entry["est_ms"]
