"""ONNX graph -> IR: fold constants, make every shape static, list every unsupported op at once.

Nodes are visited in topological order. Each one is, in this order of preference:
a constant (``Constant``; all inputs known -> evaluated; ``Shape``/``Size`` of a static tensor),
inlined (``If`` on a constant condition), or kept as an IR node whose output types come from
ONNX's own per-node shape inference given the constant inputs it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hcompile.errors import DynamicShapeError, ModelError, ShapeError, UnsupportedOpError
from hcompile.frontend import attrs as attr_util
from hcompile.frontend.fold import can_fold, evaluate
from hcompile.ir import Graph, Node, TensorType

#: ``is_supported(op, domain, opset) -> bool`` and, for supported ops, which inputs must be static.
SupportFn = Callable[[str, str, int], "tuple[bool, tuple[int, ...]]"]

#: Ops whose output size depends on input *values*: static only when the input is constant.
DATA_DEPENDENT = {"NonZero", "NonMaxSuppression", "Unique", "Compress", "StringSplit"}


@dataclass
class _Unsupported:
    """Problems collected over the whole graph, reported together."""

    ops: dict[str, list[str]] = field(default_factory=dict)  # op -> node names
    dynamic: list[str] = field(default_factory=list)  # messages
    needed_static: list[str] = field(default_factory=list)  # run-time tensors needed constant

    def add_op(self, node: onnx.NodeProto, name: str) -> None:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        self.ops.setdefault(key, []).append(name)


class GraphConverter:
    """Turns one checked, upgraded ModelProto into an IR :class:`Graph`."""

    def __init__(self, model: onnx.ModelProto, inputs: dict[str, TensorType], source: str,
                 supported: SupportFn):
        self.model = model
        self.source = source
        self.supported = supported
        self.opsets = {e.domain or "": int(e.version) for e in model.opset_import}
        self.graph = Graph(name=model.graph.name or "model", inputs=dict(inputs), outputs=[],
                           opsets=self.opsets, source=source)
        self.types: dict[str, TensorType] = dict(inputs)
        self.unknown: set[str] = set()  # outputs of unsupported nodes: types unknown
        self.problems = _Unsupported()
        self.used_names: set[str] = set()

    # -- driver ---------------------------------------------------------------------------------
    def convert(self) -> Graph:
        for init in self.model.graph.initializer:
            if init.name not in self.graph.inputs:
                self._set_const(init.name, numpy_helper.to_array(init))
        for index, node in enumerate(self.model.graph.node):
            self._visit(node, index, rename={})
        self._raise_problems()
        self.graph.outputs = [o.name for o in self.model.graph.output]
        for name in self.graph.outputs:
            if name not in self.types:
                raise ModelError(f"graph output '{name}' is never produced", source=self.source)
        return self.graph

    def _raise_problems(self) -> None:
        problems = self.problems
        if not problems.ops and not problems.dynamic:
            return
        parts = []
        if problems.ops:
            listing = "; ".join(f"{op} (nodes: {', '.join(names[:5])}"
                                f"{', ...' if len(names) > 5 else ''})"
                                for op, names in sorted(problems.ops.items()))
            parts.append(f"unsupported operators: {listing}")
        parts.extend(problems.dynamic)
        cls = UnsupportedOpError if problems.ops else DynamicShapeError
        error = cls("; ".join(parts), source=self.source,
                    hint="`hcompile ops` lists what is supported; export the model without "
                         "these ops or fix their inputs to constants")
        error.needed_static = list(dict.fromkeys(problems.needed_static))
        raise error

    # -- one node -------------------------------------------------------------------------------
    def _visit(self, node: onnx.NodeProto, index: int, rename: dict[str, str]) -> None:
        inputs = [rename.get(i, i) for i in node.input]
        outputs = [rename.get(o, o) for o in node.output]
        name = self._node_name(node, index)
        opset = self.opsets.get(node.domain or "", 1)
        missing = [i for i in inputs if i and i not in self.types and i not in self.unknown]
        if missing:
            raise ModelError(f"node input '{missing[0]}' is not defined before use",
                             node=name, source=self.source,
                             hint="the graph has a dangling name, a cycle, or is not sorted")
        for out in outputs:
            if out and (out in self.types or out in self.unknown):
                raise ModelError(f"tensor '{out}' is produced twice", node=name,
                                 source=self.source)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            self._set_const(outputs[0], attr_util.constant_value(node, name, self.source))
            return
        if node.op_type == "If" and node.domain in ("", "ai.onnx"):
            self._inline_if(node, name, inputs, outputs)
            return
        if any(i in self.unknown for i in inputs if i):
            self._mark_unknown(node, name, outputs, check_support=True, opset=opset)
            return
        if self._try_fold(node, inputs, outputs, opset):
            return
        self._add_node(node, name, inputs, outputs, opset)

    def _node_name(self, node: onnx.NodeProto, index: int) -> str:
        base = node.name or f"{node.op_type}_{index}"
        name, k = base, 1
        while name in self.used_names:
            name, k = f"{base}_{k}", k + 1
        self.used_names.add(name)
        return name

    def _set_const(self, name: str, value: np.ndarray) -> None:
        value = np.asarray(value)
        self.graph.constants[name] = value
        self.types[name] = TensorType.of(value)

    def _mark_unknown(self, node: onnx.NodeProto, name: str, outputs: list[str], *,
                      check_support: bool, opset: int) -> None:
        if check_support and not self.supported(node.op_type, node.domain or "", opset)[0]:
            self.problems.add_op(node, name)
        self.unknown.update(o for o in outputs if o)

    # -- constants ------------------------------------------------------------------------------
    def _try_fold(self, node: onnx.NodeProto, inputs: list[str], outputs: list[str],
                  opset: int) -> bool:
        consts = self.graph.constants
        if node.op_type in ("Shape", "Size") and inputs[0] in self.types:
            full = np.array(self.types[inputs[0]].shape, dtype=np.int64)
            if node.op_type == "Size":
                self._set_const(outputs[0], np.array(full.prod(), dtype=np.int64))
            else:
                start, end = attr_util.shape_slice(node, full.size)
                self._set_const(outputs[0], full[start:end])
            return True
        if not can_fold(node) or not all(i in consts for i in inputs if i):
            return False
        renamed = helper.make_node(node.op_type, inputs, outputs, domain=node.domain)
        renamed.attribute.extend(node.attribute)
        results = evaluate(renamed, {i: consts[i] for i in inputs if i}, opset)
        if results is None:
            return False
        for out, value in zip([o for o in outputs if o], results, strict=False):
            self._set_const(out, value)
        return True

    # -- If with a constant condition -------------------------------------------------------------
    def _inline_if(self, node: onnx.NodeProto, name: str, inputs: list[str],
                   outputs: list[str]) -> None:
        cond = self.graph.constants.get(inputs[0])
        if cond is None:
            self.problems.dynamic.append(
                f"If node {name} has a condition computed at run time (data-dependent control "
                "flow is not supported)")
            self.unknown.update(o for o in outputs if o)
            return
        branch_name = "then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch"
        branch = next(a.g for a in node.attribute if a.name == branch_name)
        rename: dict[str, str] = {}
        for inner in branch.node:
            for out in inner.output:
                if out:
                    rename[out] = f"{name}/{out}"
        for init in branch.initializer:
            rename[init.name] = f"{name}/{init.name}"
            self._set_const(rename[init.name], numpy_helper.to_array(init))
        for index, inner in enumerate(branch.node):
            self._visit(inner, index, rename)
        for out, branch_out in zip(outputs, branch.output, strict=True):
            self._alias(out, rename.get(branch_out.name, branch_out.name), name)

    def _alias(self, out: str, src: str, name: str) -> None:
        """Make ``out`` carry the value of ``src`` (an Identity node, or a constant copy)."""
        if src in self.graph.constants:
            self._set_const(out, self.graph.constants[src])
        elif src in self.unknown:
            self.unknown.add(out)
        else:
            self._append(Node("Identity", f"{name}/Identity_{out}", [src], [out], {},
                              [self.types[src]], opset=self.opsets.get("", 13)))

    # -- kept nodes -----------------------------------------------------------------------------
    def _add_node(self, node: onnx.NodeProto, name: str, inputs: list[str],
                  outputs: list[str], opset: int) -> None:
        if node.op_type in DATA_DEPENDENT and node.domain in ("", "ai.onnx"):
            self.problems.dynamic.append(
                f"not supported: dynamic output size: {node.op_type} node {name} has an output "
                "whose size depends on run-time data (it is compiled only when its inputs are "
                "constants)")
            self.unknown.update(o for o in outputs if o)
            return
        supported, static_inputs = self.supported(node.op_type, node.domain or "", opset)
        if not supported:
            self._mark_unknown(node, name, outputs, check_support=False, opset=opset)
            self.problems.add_op(node, name)
            return
        for index in static_inputs:
            if index < len(inputs) and inputs[index] and inputs[index] not in self.graph.constants:
                self.problems.dynamic.append(
                    f"not supported: input {index} ('{inputs[index]}') of {node.op_type} node "
                    f"{name} is computed at run time, but hcompile needs it at compile time "
                    "(it sets a shape, an axis or a weight layout)")
                self.problems.needed_static.append(inputs[index])
                self.unknown.update(o for o in outputs if o)
                return
        types = self._infer(node, name, inputs, outputs, opset)
        if types is None:
            return
        attrs = attr_util.node_attrs(node)
        self._append(Node(node.op_type, name, inputs, outputs, attrs, types,
                          domain=node.domain or "", opset=opset, meta={"source": self.source}))

    def _append(self, ir_node: Node) -> None:
        self.graph.nodes.append(ir_node)
        for out, ttype in zip(ir_node.outputs, ir_node.output_types, strict=True):
            if out:
                self.types[out] = ttype

    def _infer(self, node: onnx.NodeProto, name: str, inputs: list[str], outputs: list[str],
               opset: int) -> list[TensorType] | None:
        from hcompile.frontend.infer import infer_output_types

        try:
            types = infer_output_types(node, inputs, outputs, self.types,
                                       self.graph.constants, self.opsets)
        except (ShapeError, ModelError) as err:
            raise err.with_context(node=name, source=self.source) from None
        return types
