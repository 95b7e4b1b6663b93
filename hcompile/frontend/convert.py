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
from onnx import helper

from hcompile.errors import DynamicShapeError, ModelError, ShapeError, UnsupportedOpError
from hcompile.frontend import attrs as attr_util
from hcompile.frontend.fold import can_fold, evaluate
from hcompile.ir import Graph, Node, TensorType
from hcompile.ir.types import is_narrow

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
                self._set_const(init.name, attr_util.tensor_value(init, self.source))
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
            self._inline_if(node, name, inputs, outputs, rename)
            return
        if any(i in self.unknown for i in inputs if i):
            self._mark_unknown(node, name, outputs, check_support=True, opset=opset)
            return
        if node.op_type == "Scan" and node.domain in ("", "ai.onnx") and opset >= 9:
            self._unroll_scan(node, name, inputs, outputs, rename)
            return
        if node.op_type == "Loop" and node.domain in ("", "ai.onnx"):
            from hcompile.frontend.loop import unroll_loop

            unroll_loop(self, node, name, inputs, outputs, rename)
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
        if (node.op_type == "CastLike" and node.domain in ("", "ai.onnx") and inputs[0] in consts
                and self.types[inputs[1]].dtype != "bool"):
            # only the type of input 1 matters: a constant cast to it is a constant
            return self._fold_cast_like(node, inputs, outputs, opset)
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

    def _fold_cast_like(self, node: onnx.NodeProto, inputs: list[str], outputs: list[str],
                        opset: int) -> bool:
        value, target = self.graph.constants[inputs[0]], self.types[inputs[1]].dtype
        if not (is_narrow(value.dtype.name) or is_narrow(target)):
            self._set_const(outputs[0], value.astype(target))
            return True
        from hcompile.frontend.infer import dtype_to_onnx

        # narrow types: ONNX's own Cast (saturate, round_mode), not numpy's astype
        cast = helper.make_node("Cast", inputs[:1], outputs[:1], to=dtype_to_onnx(target))
        cast.attribute.extend(a for a in node.attribute if a.name in ("saturate", "round_mode"))
        results = evaluate(cast, {inputs[0]: value}, max(opset, 24))
        if results is None:
            return False
        self._set_const(outputs[0], results[0])
        return True

    # -- If with a constant condition -------------------------------------------------------------
    def _inline_if(self, node: onnx.NodeProto, name: str, inputs: list[str],
                   outputs: list[str], outer: dict[str, str]) -> None:
        cond = self.graph.constants.get(inputs[0])
        if cond is None:
            self.problems.dynamic.append(
                f"If node {name} has a condition computed at run time (data-dependent control "
                "flow is not supported)")
            self.unknown.update(o for o in outputs if o)
            return
        branch_name = "then_branch" if bool(np.asarray(cond).reshape(-1)[0]) else "else_branch"
        branch = next(a.g for a in node.attribute if a.name == branch_name)
        rename = dict(outer)  # the branch sees the enclosing scope (a function body's names)
        for inner in branch.node:
            for out in inner.output:
                if out:
                    rename[out] = f"{name}/{out}"
        for init in branch.initializer:
            rename[init.name] = f"{name}/{init.name}"
            self._set_const(rename[init.name], attr_util.tensor_value(init, self.source))
        for index, inner in enumerate(branch.node):
            self._visit(inner, index, rename)
        for out, branch_out in zip(outputs, branch.output, strict=True):
            self._alias(out, rename.get(branch_out.name, branch_out.name), name)

    # -- Scan: the trip count is a static dim, so unroll -------------------------------------------
    def _unroll_scan(self, node: onnx.NodeProto, name: str, inputs: list[str],
                     outputs: list[str], outer: dict[str, str]) -> None:
        """One copy of the body per iteration: scan inputs sliced with Gather, states threaded
        through, scan outputs stacked with Unsqueeze + Concat (directions and axes honoured)."""
        attrs = {a.name: a for a in node.attribute}
        body = attrs["body"].g
        n_scan = int(attrs["num_scan_inputs"].i)
        n_state = len(inputs) - n_scan
        n_out = len(body.output) - n_state

        def per_input(key: str, count: int) -> list[int]:
            return list(attrs[key].ints) if key in attrs else [0] * count

        in_axes, in_dirs = per_input("scan_input_axes", n_scan), per_input(
            "scan_input_directions", n_scan)
        out_axes, out_dirs = per_input("scan_output_axes", n_out), per_input(
            "scan_output_directions", n_out)
        scans = inputs[n_state:]
        ranks = [len(self.types[x].shape) for x in scans]
        in_axes = [a + r if a < 0 else a for a, r in zip(in_axes, ranks, strict=True)]
        trips = self.types[scans[0]].shape[in_axes[0]] if scans else 0
        if trips == 0:
            self.problems.dynamic.append(f"Scan node {name} has no iterations (not supported)")
            self.unknown.update(o for o in outputs if o)
            return
        states = list(inputs[:n_state])
        stacked: list[list[str]] = [[] for _ in range(n_out)]
        for t in range(trips):
            prefix = f"{name}/t{t}"
            rename = dict(outer)
            rename.update(zip((v.name for v in body.input[:n_state]), states, strict=True))
            for j, (value, x) in enumerate(zip(body.input[n_state:], scans, strict=True)):
                step = f"{prefix}/index{j}"
                self._set_const(step, np.array(t if not in_dirs[j] else trips - 1 - t,
                                               dtype=np.int64))
                rename[value.name] = f"{prefix}/{value.name}"
                self._visit(helper.make_node("Gather", [x, step], [rename[value.name]],
                                             name=f"{prefix}/slice{j}", axis=in_axes[j]), 0, {})
            self._inline_body(body, prefix, rename)
            states = [rename.get(v.name, v.name) for v in body.output[:n_state]]
            for k, value in enumerate(body.output[n_state:]):
                stacked[k].append(rename.get(value.name, value.name))
        for out, src in zip(outputs[:n_state], states, strict=False):
            if out:
                self._alias(out, src, name)
        for k, out in enumerate(outputs[n_state:]):
            if out:
                self._stack(name, k, stacked[k][::-1] if out_dirs[k] else stacked[k],
                            out_axes[k], out)

    def _stack(self, name: str, k: int, parts: list[str], axis: int, out: str) -> None:
        rank = len(self.types[parts[0]].shape) + 1
        axis = axis + rank if axis < 0 else axis
        expanded = []
        for t, part in enumerate(parts):
            target = f"{name}/stack{k}/{t}"
            if self.opsets.get("", 1) >= 13:
                axes = f"{name}/stack{k}/axes"
                self._set_const(axes, np.array([axis], dtype=np.int64))
                unsqueeze = helper.make_node("Unsqueeze", [part, axes], [target],
                                             name=f"{target}/Unsqueeze")
            else:
                unsqueeze = helper.make_node("Unsqueeze", [part], [target], axes=[axis],
                                             name=f"{target}/Unsqueeze")
            self._visit(unsqueeze, 0, {})
            expanded.append(target)
        self._visit(helper.make_node("Concat", expanded, [out], name=f"{name}/stack{k}",
                                     axis=axis), 0, {})

    def _inline_body(self, body: onnx.GraphProto, prefix: str, rename: dict[str, str]) -> None:
        """Visit one copy of a loop body (Scan, Loop): its initializers and node outputs get
        ``prefix``-ed names in ``rename``, which already maps the body's inputs."""
        for init in body.initializer:
            rename[init.name] = f"{prefix}/{init.name}"
            self._set_const(rename[init.name], attr_util.tensor_value(init, self.source))
        for inner in body.node:
            rename.update({o: f"{prefix}/{o}" for o in inner.output if o})
        for index, inner in enumerate(body.node):
            copy = onnx.NodeProto()
            copy.CopyFrom(inner)
            copy.name = f"{prefix}/{inner.name or f'{inner.op_type}_{index}'}"
            self._visit(copy, index, rename)

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
        if not supported and self._inline_function(node, name, inputs, outputs, opset):
            return
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

    def _inline_function(self, node: onnx.NodeProto, name: str, inputs: list[str],
                         outputs: list[str], opset: int) -> bool:
        """Replace an op hcompile cannot lower by ONNX's function body for it, when it has one."""
        from hcompile.frontend.expand import bind_attributes, function_body

        body = function_body(node, opset, [self.types.get(i) if i else None for i in inputs])
        if body is None:
            return False
        rename = dict(zip(body.input, inputs, strict=False))
        rename.update({i: "" for i in body.input[len(inputs):]})
        for inner in body.node:
            for out in inner.output:
                if out:
                    rename[out] = f"{name}/{out}"
        rename.update({o: n for o, n in zip(body.output, outputs, strict=False) if n})
        for index, inner in enumerate(body.node):
            bound = bind_attributes(inner, node, body)
            bound.name = f"{name}/{inner.name or f'{inner.op_type}_{index}'}"
            self._visit(bound, index, rename)
        return True

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
