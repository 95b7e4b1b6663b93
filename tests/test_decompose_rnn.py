"""decompose_rnn: LSTM / GRU / RNN become primitive ops with the same numbers as ONNX Runtime.

Each case builds a one-node ONNX model, imports it, runs the pass, verifies the IR, and evaluates
the decomposed IR by turning it back into an ONNX model (``ir_to_onnx``) run in ONNX Runtime, an
oracle that does not depend on TVM. ORT's CPU kernels reject layout=1, so those cases are checked
against the same weights in layout 0 with transposed inputs and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import hcompile
from hcompile.errors import HcompileError, UnsupportedOpError
from hcompile.frontend import import_model
from hcompile.frontend.infer import dtype_to_onnx
from hcompile.ir import Graph, Node, TensorType, verify
from hcompile.passes import PassOptions, decompose_rnn

RTOL, ATOL = 1e-4, 1e-5


def unrolled() -> PassOptions:
    """CPU-only options that still unroll LSTMs (fused kernels: tests/test_rnn_fused.py), so
    the result is plain ONNX that ONNX Runtime can evaluate."""
    return PassOptions(extra={"rnn": "unroll"})
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTPUT_NAMES = ("Y", "Y_h", "Y_c")


# -- IR -> ONNX: the oracle's evaluator ------------------------------------------------------------
def ir_to_onnx(graph: Graph) -> onnx.ModelProto:
    """An ONNX model computing ``graph``: nodes as they are, constants as initializers.

    Every node output gets a value_info with its IR type, and strict shape inference checks them,
    so a wrong ``output_types`` entry fails here.
    """
    types = graph.tensor_types()

    def value_info(name: str) -> onnx.ValueInfoProto:
        ttype = types[name]
        return helper.make_tensor_value_info(name, dtype_to_onnx(ttype.dtype), ttype.shape)

    nodes = []
    for node in graph.nodes:
        attrs = {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v
                 for k, v in node.attrs.items()}
        nodes.append(helper.make_node(node.op, node.inputs, node.outputs, name=node.name,
                                      domain=node.domain or None, **attrs))
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in graph.constants.items()]
    inner = [o for n in graph.nodes for o in n.outputs if o and o not in graph.outputs]
    proto = helper.make_graph(nodes, graph.name, [value_info(n) for n in graph.inputs],
                              [value_info(n) for n in graph.outputs], inits,
                              value_info=[value_info(n) for n in inner])
    model = helper.make_model(proto, opset_imports=[helper.make_opsetid(d, v)
                                                    for d, v in graph.opsets.items()])
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime accepts
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    return model


def run_onnx(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))


# -- test cases ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One RNN node: shapes, which optional inputs it has and how they are given."""

    op: str = "LSTM"
    steps: int = 5
    batch: int = 3
    input_size: int = 4
    hidden: int = 6
    direction: str = "forward"
    layout: int = 0
    bias: bool = True
    lens: tuple[int, ...] | None = None
    lens_given: str = "const"  # "const" (initializer) or "input" (run-time)
    initial: str | None = None  # None, "const" or "input"
    initial_c: bool = True  # LSTM: give initial_c too (when initial is set)
    peepholes: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = OUTPUT_NAMES  # "" = output omitted
    graph_outputs: tuple[str, ...] | None = None  # default: the non-empty outputs
    opset: int = 14
    dtype: str = "float32"
    seed: int = 0
    scale: float = 0.5  # weights' standard deviation (keep it near 1/sqrt(hidden) for long runs)

    @property
    def dirs(self) -> int:
        return 2 if self.direction == "bidirectional" else 1


def make_arrays(case: Case) -> dict[str, np.ndarray]:
    """Seeded inputs in layout 0: X [T, N, I], weights, initial states [D, N, H]."""
    rng = np.random.default_rng(case.seed)
    dtype, gates, hid, dirs = case.dtype, GATES[case.op], case.hidden, case.dirs

    def normal(*shape: int, scale: float = case.scale) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(dtype)

    arrays = {"X": normal(case.steps, case.batch, case.input_size, scale=1.0),
              "W": normal(dirs, gates * hid, case.input_size),
              "R": normal(dirs, gates * hid, hid)}
    if case.bias:
        arrays["B"] = normal(dirs, 2 * gates * hid)
    if case.lens is not None:
        arrays["sequence_lens"] = np.array(case.lens, dtype=np.int32)
    if case.initial:
        arrays["initial_h"] = normal(dirs, case.batch, hid, scale=1.0)
        if case.op == "LSTM" and case.initial_c:
            arrays["initial_c"] = normal(dirs, case.batch, hid, scale=1.0)
    if case.peepholes:
        arrays["P"] = normal(dirs, 3 * hid)
    return arrays


def build_model(case: Case, layout: int | None = None) -> tuple[onnx.ModelProto, dict]:
    """The one-node model of ``case`` (in ``layout``, default the case's) and its feeds."""
    layout = case.layout if layout is None else layout
    arrays = make_arrays(case)
    if layout == 1:
        arrays["X"] = arrays["X"].transpose(1, 0, 2)
        for key in ("initial_h", "initial_c"):
            if key in arrays:
                arrays[key] = arrays[key].transpose(1, 0, 2)
    slots = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    run_time = {"X"}
    if case.lens_given == "input":
        run_time.add("sequence_lens")
    if case.initial == "input":
        run_time.update({"initial_h", "initial_c"})
    names = [s if s in arrays else "" for s in slots]
    while names and not names[-1]:
        names.pop()
    attrs: dict[str, Any] = {"hidden_size": case.hidden, **case.attrs}
    if case.direction != "forward":
        attrs["direction"] = case.direction
    if layout:
        attrs["layout"] = layout
    outputs = list(case.outputs[:2] if case.op != "LSTM" else case.outputs)
    node = helper.make_node(case.op, names, outputs, name="rnn0", **attrs)
    graph_outputs = case.graph_outputs or tuple(o for o in outputs if o)
    graph = helper.make_graph(
        [node], "rnn",
        [helper.make_tensor_value_info(n, dtype_to_onnx(str(arrays[n].dtype)), arrays[n].shape)
         for n in names if n in run_time],
        [helper.make_tensor_value_info(n, dtype_to_onnx(case.dtype), output_shape(case, n, layout))
         for n in graph_outputs],
        [numpy_helper.from_array(arrays[n], n) for n in names if n and n not in run_time],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = min(model.ir_version, 10)
    feeds = {n: arrays[n] for n in names if n in run_time}
    return model, feeds


def output_shape(case: Case, name: str, layout: int) -> tuple[int, ...]:
    steps, dirs, batch, hid = case.steps, case.dirs, case.batch, case.hidden
    if name == "Y":
        return (steps, dirs, batch, hid) if layout == 0 else (batch, steps, dirs, hid)
    return (dirs, batch, hid) if layout == 0 else (batch, dirs, hid)


def reference(case: Case) -> dict[str, np.ndarray]:
    """ONNX Runtime's outputs for ``case`` (layout 1 via the layout-0 model, transposed).

    ORT's RNN kernels are float32 only: float64 cases compare with the float32 run (the decomposed
    float64 model is more precise than that, well within the tolerance).
    """
    if case.dtype != "float32":
        expected = reference(replace(case, dtype="float32"))
        return {k: v.astype(case.dtype) for k, v in expected.items()}
    model, feeds = build_model(case, layout=0)
    expected = run_onnx(model, feeds)
    if case.layout == 1:
        expected = {k: v.transpose(2, 0, 1, 3) if v.ndim == 4 else v.transpose(1, 0, 2)
                    for k, v in expected.items()}
    return expected


def decompose(model: onnx.ModelProto) -> Graph:
    graph, _ = import_model(model)
    assert decompose_rnn.run(graph, unrolled()) is True
    verify(graph, after="decompose_rnn")
    assert not set(graph.op_counts()) & {"LSTM", "GRU", "RNN"}
    return graph


def check(case: Case) -> Graph:
    model, feeds = build_model(case)
    expected = reference(case)
    graph = decompose(model)
    got = run_onnx(ir_to_onnx(graph), feeds)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, name
        np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=ATOL, err_msg=name)
    return graph


LSTM_CASES = {
    "forward": Case(),
    "no_bias": Case(bias=False),
    "reverse": Case(direction="reverse"),
    "bidirectional": Case(direction="bidirectional"),
    "initial_const": Case(initial="const"),
    "initial_input_bidir": Case(direction="bidirectional", initial="input"),
    "layout1_bidir_initial": Case(direction="bidirectional", layout=1, initial="const"),
    "lens_const_bidir": Case(direction="bidirectional", lens=(5, 2, 3), initial="input"),
    "lens_const_full": Case(lens=(5, 5, 5)),
    "lens_const_zero": Case(direction="bidirectional", lens=(0, 4, 2), initial="input"),
    "lens_input_bidir": Case(direction="bidirectional", lens=(3, 5, 1), lens_given="input",
                             initial="input"),
    "lens_input_zero_reverse": Case(direction="reverse", lens=(2, 0, 5), lens_given="input",
                                    initial="const"),
    "peepholes": Case(peepholes=True),
    "peepholes_initial": Case(peepholes=True, initial="input", direction="reverse"),
    "peepholes_clip_lens": Case(direction="bidirectional", peepholes=True, attrs={"clip": 0.7},
                                lens=(4, 1, 5), lens_given="input", initial="input"),
    "initial_h_only": Case(initial="input", initial_c=False, lens=(5, 0, 2)),
    "clip": Case(attrs={"clip": 0.5}, initial="const"),
    "input_forget": Case(attrs={"input_forget": 1}, initial="input"),
    "input_forget_peepholes": Case(attrs={"input_forget": 1}, peepholes=True, initial="input"),
    "relu": Case(attrs={"activations": ["Relu", "Tanh", "Relu"]}, initial="const"),
    "activations_alpha_beta": Case(
        direction="bidirectional", initial="input",
        attrs={"activations": ["HardSigmoid", "LeakyRelu", "Softsign",
                               "Affine", "Elu", "ScaledTanh"],
               "activation_alpha": [0.3, 0.05, 0.8, 0.9, 1.1], "activation_beta": [0.4, 0.1, 0.7]}),
    "activations_defaults": Case(attrs={"activations": ["hardsigmoid", "elu", "softplus"]}),
    "layout1_lens_peepholes": Case(layout=1, lens=(2, 5, 4), lens_given="input",
                                   peepholes=True, initial="input"),
    "only_y_h": Case(outputs=("", "Y_h")),
    "only_y": Case(outputs=("Y",), direction="bidirectional", lens=(3, 5, 1)),
    "only_y_c": Case(outputs=("", "", "Y_c"), initial="input"),
    "unused_y": Case(graph_outputs=("Y_h",), initial="input"),
    "opset7": Case(opset=7, direction="bidirectional", initial="const", peepholes=True),
    "float64": Case(dtype="float64", direction="bidirectional", lens=(5, 2, 4),
                    lens_given="input", initial="input"),
    "single_step": Case(steps=1, batch=1, direction="bidirectional", initial="input"),
}

GRU_CASES = {
    "forward": Case(op="GRU"),
    "linear_before_reset": Case(op="GRU", attrs={"linear_before_reset": 1}),
    "lbr_bidir_initial": Case(op="GRU", direction="bidirectional", initial="input",
                              attrs={"linear_before_reset": 1}),
    "reverse_lens_input": Case(op="GRU", direction="reverse", lens=(4, 5, 0), lens_given="input",
                               initial="input"),
    "lbr_lens_const": Case(op="GRU", direction="bidirectional", lens=(4, 1, 3), initial="const",
                           attrs={"linear_before_reset": 1}),
    "no_bias": Case(op="GRU", bias=False, initial="const"),
    "no_bias_lbr": Case(op="GRU", bias=False, attrs={"linear_before_reset": 1}),
    "clip_relu": Case(op="GRU", initial="input",
                      attrs={"clip": 0.6, "activations": ["Sigmoid", "Relu"]}),
    "activations_alpha": Case(op="GRU", direction="bidirectional",
                              attrs={"activations": ["Sigmoid", "ThresholdedRelu",
                                                     "HardSigmoid", "Softplus"],
                                     "activation_alpha": [0.1, 0.25], "activation_beta": [0.45]}),
    "layout1_bidir_lens": Case(op="GRU", layout=1, direction="bidirectional", lens=(5, 3, 2),
                               lens_given="input", initial="input"),
    "only_y_h": Case(op="GRU", outputs=("", "Y_h"), attrs={"linear_before_reset": 1}),
    "opset7": Case(op="GRU", opset=7, initial="const"),
    "float64": Case(op="GRU", dtype="float64", initial="input", attrs={"linear_before_reset": 1}),
}

RNN_CASES = {
    "forward": Case(op="RNN"),
    "reverse_no_bias": Case(op="RNN", direction="reverse", bias=False),
    "bidir_lens_input": Case(op="RNN", direction="bidirectional", lens=(5, 0, 3),
                             lens_given="input", initial="input"),
    "relu_clip": Case(op="RNN", attrs={"activations": ["Relu"], "clip": 0.8}, initial="const"),
    "per_direction_activations": Case(op="RNN", direction="bidirectional",
                                      attrs={"activations": ["Tanh", "Relu"]}),
    "layout1": Case(op="RNN", layout=1, direction="bidirectional", initial="input"),
    "only_y": Case(op="RNN", outputs=("Y",)),
    "opset7": Case(op="RNN", opset=7, lens=(1, 5, 4)),
}


@pytest.mark.parametrize("case", LSTM_CASES.values(), ids=LSTM_CASES.keys())
def test_lstm(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", GRU_CASES.values(), ids=GRU_CASES.keys())
def test_gru(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", RNN_CASES.values(), ids=RNN_CASES.keys())
def test_rnn(case: Case) -> None:
    check(case)


# -- structure ----------------------------------------------------------------------------------
def test_no_rnn_no_change() -> None:
    graph = Graph("g", {"x": TensorType((2, 3), "float32")}, ["y"],
                  [Node("Relu", "relu0", ["x"], ["y"], output_types=[TensorType((2, 3), "float32")],
                        opset=14)])
    assert decompose_rnn.run(graph, unrolled()) is False
    assert graph.op_counts() == {"Relu": 1}


def test_input_projection_hoisted() -> None:
    """One Gemm over all steps per direction; one recurrent Gemm per step after the first."""
    case = Case(direction="bidirectional", steps=6)
    graph = check(case)
    gemms = [n for n in graph.nodes if n.op == "Gemm"]
    assert graph.op_counts().get("MatMul", 0) == 0
    hoisted = [n for n in gemms if n.output_types[0].shape == (case.steps * case.batch,
                                                                4 * case.hidden)]
    assert len(hoisted) == case.dirs
    # no initial state: the first step of each direction needs no recurrent product
    assert len(gemms) - len(hoisted) == case.dirs * (case.steps - 1)


def test_gates_are_slices_so_a_step_fuses() -> None:
    """Splits only for the hoisted projection (one per direction, all steps at once); the
    gates of every step are Slices (a Split is an unfusable kernel of its own)."""
    case = Case(direction="bidirectional", steps=6)
    counts = check(case).op_counts()
    assert counts.get("Split", 0) == case.dirs
    assert counts.get("Slice", 0) >= case.dirs * case.steps * 4


def test_names_prefixed_and_outputs_kept() -> None:
    graph = check(Case(direction="bidirectional", lens=(3, 5, 1), lens_given="input",
                       initial="input"))
    assert all(n.name.startswith("rnn0/") for n in graph.nodes)
    produced = {o for n in graph.nodes for o in n.outputs}
    assert set(OUTPUT_NAMES) <= produced
    assert all(n.opset == 14 and n.domain == "" for n in graph.nodes)


def test_unused_outputs_not_computed() -> None:
    graph = check(Case(graph_outputs=("Y_h",), initial="input"))
    produced = {o for n in graph.nodes for o in n.outputs}
    assert "Y" not in produced and "Y_c" not in produced
    assert "Concat" not in graph.op_counts()  # forward only: Y_h is a Reshape of the last state


def test_constant_full_lengths_need_no_mask() -> None:
    graph = check(Case(lens=(5, 5, 5), direction="bidirectional"))
    assert "Where" not in graph.op_counts() and "Less" not in graph.op_counts()


def test_stacked_lstms() -> None:
    """Two LSTM layers, the second reading the first's Y through Transpose and Reshape."""
    first = Case(direction="bidirectional", initial="const", seed=1)
    second = Case(input_size=2 * first.hidden, seed=2, lens=(5, 2, 4), lens_given="input")
    a1, a2 = make_arrays(first), make_arrays(second)
    inits = [numpy_helper.from_array(v, f"l1_{k}") for k, v in a1.items() if k != "X"]
    inits += [numpy_helper.from_array(v, f"l2_{k}") for k, v in a2.items()
              if k not in ("X", "sequence_lens")]
    inits.append(numpy_helper.from_array(np.array([5, 3, 12]), "shape"))
    nodes = [
        helper.make_node("LSTM", ["x", "l1_W", "l1_R", "l1_B", "", "l1_initial_h", "l1_initial_c"],
                         ["y1", "", ""], name="lstm1", hidden_size=6, direction="bidirectional"),
        helper.make_node("Transpose", ["y1"], ["y1t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["y1t", "shape"], ["x2"]),
        helper.make_node("LSTM", ["x2", "l2_W", "l2_R", "l2_B", "lens"], ["", "h2", "c2"],
                         name="lstm2", hidden_size=6),
    ]
    graph = helper.make_graph(
        nodes, "stacked",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, (5, 3, 4)),
         helper.make_tensor_value_info("lens", onnx.TensorProto.INT32, (3,))],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, (1, 3, 6)) for n in ("h2", "c2")],
        inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = min(model.ir_version, 10)
    feeds = {"x": a1["X"], "lens": a2["sequence_lens"]}
    expected = run_onnx(model, feeds)
    ir = decompose(model)
    got = run_onnx(ir_to_onnx(ir), feeds)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


# -- errors -------------------------------------------------------------------------------------
def test_unknown_activation_names_the_attribute() -> None:
    model, _ = build_model(Case(attrs={"activations": ["Sigmoid", "Gelu", "Tanh"]}))
    graph, _ = import_model(model)
    with pytest.raises(UnsupportedOpError, match=r"'activations'.*Gelu"):
        decompose_rnn.run(graph, unrolled())


def test_wrong_activation_count() -> None:
    model, _ = build_model(Case(direction="bidirectional",
                                attrs={"activations": ["Sigmoid", "Tanh", "Tanh"]}))
    graph, _ = import_model(model)
    with pytest.raises(HcompileError, match="activations"):
        decompose_rnn.run(graph, unrolled())


def test_run_time_weights_rejected() -> None:
    f32 = "float32"
    graph = Graph("g", {"x": TensorType((2, 1, 3), f32), "w": TensorType((1, 4, 3), f32)},
                  ["y_h"], constants={"r": np.zeros((1, 4, 4), np.float32)}, opsets={"": 14})
    graph.nodes.append(Node("RNN", "rnn", ["x", "w", "r"], ["", "y_h"], {"hidden_size": 4},
                            [TensorType((2, 1, 1, 4), f32), TensorType((1, 1, 4), f32)],
                            opset=14))
    with pytest.raises(UnsupportedOpError, match="input W"):
        decompose_rnn.run(graph, unrolled())


# -- real models and end to end ----------------------------------------------------------------
def test_zoo_lstm(zoo_path) -> None:
    """The zoo's 2-layer PyTorch LSTM (batch-first glue, zero initial states built at run time)."""
    path = zoo_path("lstm")
    x = np.random.default_rng(0).standard_normal((2, 20, 32)).astype(np.float32)
    graph, _ = import_model(path, input_shapes={"x": x.shape})
    assert graph.op_counts().get("LSTM") == 2
    assert decompose_rnn.run(graph, unrolled()) is True
    verify(graph, after="decompose_rnn")
    got = run_onnx(ir_to_onnx(graph), {"x": x})
    expected = run_onnx(onnx.load(path), {"x": x})
    np.testing.assert_allclose(got["y"], expected["y"], rtol=RTOL, atol=ATOL)


E2E_CASES = {
    "lstm_bidir_lens_peepholes_clip": Case(direction="bidirectional", lens=(4, 0, 5),
                                           lens_given="input", initial="input", peepholes=True,
                                           attrs={"clip": 0.9}),
    "lstm_activations": Case(initial="const", attrs={
        "activations": ["HardSigmoid", "Elu", "Softsign"], "activation_alpha": [0.3, 0.8]}),
    "gru_lbr_layout1_lens": Case(op="GRU", layout=1, lens=(5, 2, 3), initial="input",
                                 attrs={"linear_before_reset": 1}),
    "gru_reverse": Case(op="GRU", direction="reverse", initial="const"),
    "rnn_relu_bidir": Case(op="RNN", direction="bidirectional",
                           attrs={"activations": ["Relu", "Relu"]}),
}


@pytest.mark.parametrize("case", E2E_CASES.values(), ids=E2E_CASES.keys())
def test_end_to_end(case: Case) -> None:
    """Through ``hcompile.compile`` (TVM, CPU target) and the runtime."""
    pytest.importorskip("tvm", reason="end-to-end compilation needs TVM")
    model, feeds = build_model(case)
    outputs = hcompile.load(hcompile.compile(model, verify_passes=True)).run(feeds)
    for name, value in reference(case).items():
        np.testing.assert_allclose(outputs[name], value, rtol=RTOL, atol=ATOL, err_msg=name)
