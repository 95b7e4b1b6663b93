"""Single-op (and few-op) checks: build an ONNX model, compile it with hcompile, compare with ORT.

Models go through the public API (``hcompile.compile`` then ``hcompile.load(...).run``) by
default; ``via="lowering"`` instead converts the model with ``mini_import`` (static types from ONNX
Runtime, initializers and Constant nodes as constants), lowers it with ``lower_graph`` and runs
it in the Relax VM. That path reaches lowerings the real importer folds away (Range, Shape...).

Typical use::

    check_node("Gemm", [x, Const(w), None], {"transB": 1})

Inputs are numpy arrays (run-time graph inputs), :class:`Const` (initializers, i.e. compile-time
constants) or ``None`` (an omitted optional input).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

DEFAULT_OPSET = 17
RTOL = 1e-4
ATOL = 1e-5

#: How the op tests compile: "hcompile" (the public compile/load/run API, the default) or
#: "lowering" (mini importer -> lower_graph -> Relax VM); HCOMPILE_OPS_VIA overrides.
VIA = os.environ.get("HCOMPILE_OPS_VIA", "hcompile")

_RNG = np.random.default_rng(0)


@dataclass(frozen=True)
class Const:
    """An input given as an initializer (a compile-time constant)."""

    value: np.ndarray


Input = np.ndarray | Const | None


def rand(*shape: int, dtype: str = "float32", low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """Seeded random data: uniform floats, integers in [low, high), or random bools."""
    if dtype == "bool":
        return np.asarray(_RNG.random(shape) < 0.5)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return np.asarray(_RNG.integers(int(low), int(high), size=shape), dtype=dtype)
    return np.asarray(_RNG.uniform(low, high, size=shape), dtype=dtype)


def make_node_model(
    op: str,
    inputs: Sequence[Input],
    attrs: Mapping[str, Any] | None = None,
    *,
    outputs: int | Sequence[str] = 1,
    opset: int = DEFAULT_OPSET,
    domain: str = "",
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A one-node model and its feeds. ``outputs``: a count, or names with ``""`` for omitted."""
    names, feeds, inits, graph_inputs = [], {}, [], []
    for i, value in enumerate(inputs):
        name = f"in{i}"
        if value is None:
            names.append("")
            continue
        names.append(name)
        if isinstance(value, Const):
            inits.append(numpy_helper.from_array(np.asarray(value.value), name))
        else:
            feeds[name] = value
            graph_inputs.append(_value_info(name, value))
    out_names = [f"out{i}" for i in range(outputs)] if isinstance(outputs, int) else list(outputs)
    node = helper.make_node(op, names, out_names, domain=domain, **dict(attrs or {}))
    graph = helper.make_graph(
        [node], f"test_{op}", graph_inputs,
        [helper.make_empty_tensor_value_info(o) for o in out_names if o], inits,
    )  # fmt: skip
    return make_model(graph, opset, domain), feeds


def make_model(
    graph: onnx.GraphProto, opset: int = DEFAULT_OPSET, domain: str = ""
) -> onnx.ModelProto:
    imports = [helper.make_opsetid("", opset)]
    if domain:
        imports.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime accepts
    return model


def _value_info(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(value.dtype)
    return helper.make_tensor_value_info(name, elem, value.shape)


def run_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return list(session.run(None, dict(feeds)))


def run_hcompile(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    *,
    fold: bool = False,
    via: str | None = None,
) -> list[np.ndarray]:
    """Compile and run ``model`` with hcompile; graph outputs must carry types.

    via="hcompile": the public API (import, passes, CPU target, artifact, runtime).
    via="lowering": the miniature importer straight into ``lower_graph`` (``fold`` folds
    constant subgraphs first); it reaches lowerings the real importer would fold away.
    """
    if (via or VIA) == "lowering":
        from . import mini_import

        return mini_import.compile_and_run(model, feeds, fold=fold)
    import hcompile

    shapes = {name: value.shape for name, value in feeds.items()}
    artifact = hcompile.compile(model, targets=["cpu"], input_shapes=shapes)
    outputs = hcompile.load(artifact).run(dict(feeds))
    return [outputs[o.name] for o in model.graph.output]


def with_output_types(model: onnx.ModelProto, values: Sequence[np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph outputs are typed like ``values`` (the checker needs it)."""
    typed = onnx.ModelProto()
    typed.CopyFrom(model)
    del typed.graph.output[:]
    for out, value in zip(model.graph.output, values, strict=True):
        elem = helper.np_dtype_to_tensor_dtype(value.dtype)
        typed.graph.output.append(helper.make_tensor_value_info(out.name, elem, value.shape))
    return typed


def check_model(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
    fold: bool = False,
    via: str | None = None,
) -> list[np.ndarray]:
    """Run ``model`` with ORT and hcompile; every output must match in dtype, shape and value."""
    expected = run_ort(model, feeds)
    got = run_hcompile(with_output_types(model, expected), feeds, fold=fold, via=via)
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.dtype == e.dtype, f"output {i}: dtype {g.dtype}, expected {e.dtype}"
        assert g.shape == e.shape, f"output {i}: shape {g.shape}, expected {e.shape}"
        if e.dtype.kind in "fc":
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(g, e, err_msg=f"output {i}")
    return got


def check_node(
    op: str,
    inputs: Sequence[Input],
    attrs: Mapping[str, Any] | None = None,
    *,
    outputs: int | Sequence[str] = 1,
    opset: int = DEFAULT_OPSET,
    rtol: float = RTOL,
    atol: float = ATOL,
    via: str | None = None,
) -> list[np.ndarray]:
    """Build a one-node model, run it with ORT and hcompile, compare every output."""
    model, feeds = make_node_model(op, inputs, attrs, outputs=outputs, opset=opset)
    return check_model(model, feeds, rtol=rtol, atol=atol, via=via)


def check_graph(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, np.ndarray | Const],
    outputs: Sequence[str],
    *,
    opset: int = DEFAULT_OPSET,
    rtol: float = RTOL,
    atol: float = ATOL,
    fold: bool = False,
    via: str | None = None,
) -> list[np.ndarray]:
    """Several nodes in one model (one compile for many cases). ``inputs``: arrays or Const."""
    feeds = {k: v for k, v in inputs.items() if not isinstance(v, Const)}
    inits = [
        numpy_helper.from_array(np.asarray(v.value), k)
        for k, v in inputs.items()
        if isinstance(v, Const)
    ]
    graph = helper.make_graph(
        list(nodes),
        "test_graph",
        [_value_info(k, v) for k, v in feeds.items()],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        inits,
    )
    return check_model(make_model(graph, opset), feeds, rtol=rtol, atol=atol, fold=fold, via=via)


def node(
    op: str, inputs: Sequence[str], outputs: Sequence[str] | str, **attrs: Any
) -> onnx.NodeProto:
    """Shorthand for ``onnx.helper.make_node``; a single output may be given as a string."""
    outs = [outputs] if isinstance(outputs, str) else list(outputs)
    return helper.make_node(op, list(inputs), outs, **attrs)
