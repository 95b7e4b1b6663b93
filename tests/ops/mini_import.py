"""A miniature ONNX importer for op tests, used until the lead's ``hcompile.compile`` lands.

Static types come from running the model in ONNX Runtime with every intermediate tensor exposed
as an output; initializers and Constant nodes become constants; with ``fold=True`` nodes whose
inputs are all constants (and Shape/Size) are folded using those same ORT values.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import onnx
import tvm
from onnx import helper, numpy_helper
from tvm import relax

from hcompile.ir import Graph, Node, TensorType
from hcompile.targets.lowering import lower_graph, partition_params

from .harness import run_ort


def to_ir(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], *, fold: bool = False) -> Graph:
    """The IR graph of ``model`` with static types taken from an ORT run on ``feeds``."""
    values = _all_values(model, feeds)
    opsets = {imp.domain: imp.version for imp in model.opset_import}
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    graph = Graph(
        name=model.graph.name or "test",
        inputs={n: TensorType.of(np.asarray(a)) for n, a in feeds.items()},
        outputs=[o.name for o in model.graph.output],
        constants=constants,
        opsets=opsets,
    )
    for index, proto in enumerate(model.graph.node):
        if proto.op_type == "Constant" or (fold and _foldable(proto, constants)):
            constants.update({o: values[o] for o in proto.output if o})
            continue
        graph.nodes.append(
            Node(
                op=proto.op_type,
                name=proto.name or f"{proto.op_type}_{index}",
                inputs=list(proto.input),
                outputs=list(proto.output),
                attrs={a.name: _attr(a) for a in proto.attribute},
                output_types=[
                    TensorType.of(values[o]) if o else TensorType((), "float32")
                    for o in proto.output
                ],
                domain=proto.domain,
                opset=opsets.get(proto.domain, 1),
            )
        )
    return graph


def compile_and_run(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], *, fold: bool = False
) -> list[np.ndarray]:
    graph = to_ir(model, feeds, fold=fold)
    params = partition_params(graph)
    mod = lower_graph(graph, params)
    target = _target()
    ex = tvm.compile(mod, target, relax_pipeline=relax.get_default_pipeline(target))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    args = [feeds[n] for n in graph.inputs] + [graph.constants[n] for n in params]
    out = vm["main"](*[tvm.runtime.tensor(np.require(a, requirements="C")) for a in args])
    return [out[i].numpy() for i in range(len(graph.outputs))]


@cache
def _target() -> tvm.target.Target:
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": 2})


def _all_values(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {o.name for o in exposed.graph.output}
    for node in exposed.graph.node:
        for name in node.output:
            if name and name not in known:
                exposed.graph.output.append(helper.make_empty_tensor_value_info(name))
                known.add(name)
    names = [o.name for o in exposed.graph.output]
    return dict(zip(names, run_ort(exposed, feeds), strict=True))


def _foldable(proto: onnx.NodeProto, constants: Mapping[str, np.ndarray]) -> bool:
    if proto.op_type in ("Shape", "Size"):
        return True
    return all(not name or name in constants for name in proto.input)


def _attr(attr: onnx.AttributeProto) -> object:
    value = helper.get_attribute_value(attr)
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list) and value and isinstance(value[0], onnx.TensorProto):
        return [numpy_helper.to_array(v) for v in value]
    return value
