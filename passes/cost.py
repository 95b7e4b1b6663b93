"""The cost pass: FLOPs, bytes and estimated time of every node on every allowed target.

Per device, a node's time is a roofline plus launch overhead:

    t = launch + max(flops / (peak[dtype] * eff(kind, k, n)), bytes / (bandwidth * mem_eff(kind)))

where ``kind`` is the op kind (conv, depthwise, matmul, matvec, elementwise, pool, norm,
reduce, data), ``k`` the reduction length and ``n`` the output row length (the efficiency of
a code generator depends on both). Kinds a profile measured end to end (the calibrated
host CPU's convolutions and matmuls) have the memory traffic inside their efficiency and
no separate memory term; elementwise ops a profile timed by name (``elementwise_s``, the
calibrated host's transcendental functions) take their measured seconds per element as the
compute term. FPGA kernels are spatial: a conv/matmul kernel
computes ``mac_lanes`` multiply-adds per cycle, any other kernel ``lanes`` elements per
cycle, at the profile's clock. Nodes that TVM fuses into another node's kernel
(``kernel_groups``: elementwise tails, injective slices feeding elementwise gates) cost no
launch (the launch is charged once per kernel, to its head) and, elementwise ones, no extra
memory traffic beyond their other inputs; shape-only nodes (Reshape, Flatten, Squeeze,
Unsqueeze) cost nothing.

Annotation: ``node.meta["cost"] = {"kind", "flops", "bytes", "est_ms": {target: ms}}`` for
every target the node can run on; ``node.meta["unsupported"] = {target: reason}``.
The pass reads the device profiles from ``options.extra["devices"]`` (a DeviceSet, a
``--devices`` file or profile names; default: the built-in set).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from hcompile.devices import DeviceProfile, DeviceSet, FpgaModel, load_devices

if TYPE_CHECKING:
    from hcompile.ir import Graph, Node, TensorType
    from hcompile.passes import PassOptions

MAC_KINDS = ("conv", "strided_conv", "depthwise", "strided_depthwise", "matmul", "matmul_t",
             "matvec", "matvec_t", "batched_matvec")

_KIND_OF = {
    **dict.fromkeys(("Conv", "ConvTranspose", "ConvInteger", "QLinearConv"), "conv"),
    **dict.fromkeys(("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul", "Einsum"), "matmul"),
    **dict.fromkeys(("MaxPool", "AveragePool", "LpPool", "MaxRoiPool", "RoiAlign"), "pool"),
    # Global pooling is a reduction over the spatial axes, not a sliding window: calibrated
    # MaxPool rates made it ~8x too slow (resnet18/mobilenetv2 heads: 14 us, predicted 109).
    **dict.fromkeys(("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"), "reduce"),
    **dict.fromkeys(("LayerNormalization", "InstanceNormalization", "GroupNormalization",
                     "LpNormalization", "Softmax", "LogSoftmax", "Hardmax",
                     "MeanVarianceNormalization", "SimplifiedLayerNormalization"), "norm"),
    **dict.fromkeys(("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                     "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                     "ReduceSumSquare", "ArgMax", "ArgMin", "CumSum", "TopK"), "reduce"),
    **dict.fromkeys(("Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements",
                     "GatherND", "Pad", "Resize", "Upsample", "Tile", "Expand", "ScatterND",
                     "ScatterElements", "DepthToSpace", "SpaceToDepth", "Trilu", "OneHot",
                     "NonZero", "Compress", "ReverseSequence", "Range", "ConstantOfShape",
                     "Shape", "Size"), "data"),
}

#: Ops that only change a tensor's shape: views at run time, no kernel, no traffic.
VIEW_OPS = frozenset(("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"))

#: Arithmetic per output element of elementwise ops (1 when not listed).
_FLOPS_PER_ELEMENT = {
    "BatchNormalization": 4, "Clip": 2, "Sigmoid": 4, "Tanh": 6, "Erf": 10, "Exp": 4,
    "Log": 4, "Sqrt": 2, "Reciprocal": 1, "Pow": 4, "Gelu": 10, "HardSigmoid": 3,
    "HardSwish": 4, "LeakyRelu": 2, "Softplus": 6, "Elu": 4, "Selu": 4, "Mish": 10,
    "Sin": 8, "Cos": 8, "PRelu": 2, "Where": 1,
}


@dataclass(frozen=True, slots=True)
class OpCost:
    """What one node computes and moves, independent of the device.

    kind: op kind; flops: arithmetic; bytes: device-memory traffic; elements: items an FPGA
    pipeline processes; weight_bytes: constant inputs; k: reduction length; n: output row
    length; dtype: compute dtype; fused: fused into its producer's kernel; view: no kernel;
    op: the ONNX op type (profiles time some elementwise ops by name); converted, conversions:
    elements and tensors the CPU converts into or out of its convs' blocked layout around
    this node (``blocked_conversions``; devices without that layout ignore them).
    """

    kind: str
    flops: float
    bytes: float
    elements: float
    weight_bytes: float
    k: float
    n: float
    dtype: str
    fused: bool = False
    view: bool = False
    op: str = ""
    converted: float = 0.0
    conversions: int = 0


def op_kind(node: Node, types: dict[str, TensorType]) -> str:
    """The op kind. Code generators run these variants at their own rates: ``matvec`` (one
    output row), ``batched_matvec`` (one row per product in a batch of them), ``*_t`` (a
    Gemm with transposed weights), ``depthwise`` (one input channel per group), ``strided_*``
    (a convolution with a stride above 1). Profiles that do not list a variant use its
    parent kind (``KIND_PARENT``)."""
    kind = _KIND_OF.get(node.op, "elementwise")
    if node.op == "LSTMRecurrence":  # per step a matvec per row; rows share Rᵀ from batch 2
        return "matvec" if node.output_types[1].shape[0] == 1 else "matmul"
    if kind == "matmul" and node.outputs and node.output_types:
        shape = node.output_types[0].shape
        if len(shape) >= 1 and math.prod(shape[:-1]) == 1:
            kind = "matvec"
        elif len(shape) >= 3 and shape[-2] == 1:
            # One row per product in every batch: (16, 1, 256) @ (256, 768) runs as 16 row
            # products, 106-116 us; 33-38 us as (16, 256) @ (256, 768) (the transformer's
            # attention input projections).
            kind = "batched_matvec"
        if node.op == "Gemm" and node.attr("transB", 0):
            kind += "_t"
    if kind == "conv" and node.op == "Conv" and len(node.inputs) > 1:
        group = int(node.attr("group", 1))
        w = types[node.inputs[1]].shape
        if group > 1 and len(w) > 1 and w[1] == 1:
            kind = "depthwise"
        if any(int(s) > 1 for s in node.attr("strides", []) or []):
            kind = f"strided_{kind}"
    return kind


def op_cost(node: Node, graph: Graph, types: dict[str, TensorType],
            fused: bool = False) -> OpCost:
    """FLOPs and bytes of ``node`` (``types``: every tensor's type, from the graph)."""
    kind = op_kind(node, types)
    ins = [types[i] for i in node.inputs if i]
    outs = [t for o, t in zip(node.outputs, node.output_types, strict=True) if o]
    out = outs[0] if outs else ins[0]
    out_size = float(sum(t.size for t in outs))
    dtype = out.dtype if out.dtype.startswith(("float", "bfloat")) else (
        ins[0].dtype if ins else out.dtype)
    consts = {i for i in node.inputs if i and i in graph.constants}
    weight_bytes = float(sum(types[i].nbytes for i in dict.fromkeys(consts)))
    in_bytes = float(sum(types[i].nbytes for i in dict.fromkeys(i for i in node.inputs if i)))
    out_bytes = float(sum(t.nbytes for t in outs))
    n = float(out.shape[-1]) if out.shape else 1.0
    if node.op in VIEW_OPS:
        return OpCost("data", 0.0, 0.0, 0.0, weight_bytes, 1.0, n, dtype, view=True)
    k, flops, elements = 1.0, out_size, out_size
    traffic = in_bytes + out_bytes
    if kind.endswith(("conv", "depthwise")):
        k, flops = _conv_flops(node, types, out_size)
        n = float(math.prod(out.shape[2:])) if len(out.shape) > 2 else n
        elements = flops / 2
    elif kind.startswith(("matmul", "matvec", "batched_matvec")):
        k, flops = _matmul_flops(node, types, out_size)
        elements = flops / 2
    elif kind == "pool":
        window = math.prod(node.attr("kernel_shape", []) or [1])
        flops = out_size * window
        elements = flops
    elif kind in ("norm", "reduce"):
        per = {"LayerNormalization": 8, "InstanceNormalization": 8, "GroupNormalization": 8,
               "Softmax": 5, "LogSoftmax": 6}.get(node.op, 1)
        flops = float(ins[0].size) * per
        elements = float(ins[0].size)
    elif kind == "data":
        flops = 0.0
        if node.op in ("Gather", "GatherElements", "GatherND", "Slice", "Expand", "Tile"):
            traffic = 2 * out_bytes + sum(types[i].nbytes for i in node.inputs[1:] if i)
    else:
        flops = out_size * _FLOPS_PER_ELEMENT.get(node.op, 1)
        if fused:  # the fused input stays in registers: the other inputs are read
            biggest = max((i for i in node.inputs if i), key=lambda i: types[i].nbytes)
            traffic = float(sum(types[i].nbytes for i in dict.fromkeys(node.inputs)
                                if i and i != biggest))
    return OpCost(kind, float(flops), float(traffic), float(elements), weight_bytes,
                  float(k), n, dtype, fused=fused, op=node.op)


def _conv_flops(node: Node, types: dict[str, TensorType], out_size: float) -> tuple[float, float]:
    w = types[node.inputs[1]].shape
    if node.op == "ConvTranspose":
        x = types[node.inputs[0]]
        k = float(w[1] * math.prod(w[2:]))  # per input element: Cout/g * kernel area
        return k, 2.0 * x.size * k
    k = float(math.prod(w[1:]))  # Cin/g * kernel area
    bias = out_size if len(node.inputs) > 2 and node.inputs[2] else 0.0
    return k, 2.0 * out_size * k + bias


def _matmul_flops(node: Node, types: dict[str, TensorType], out_size: float) -> tuple[float, float]:
    a = types[node.inputs[0]].shape
    if node.op == "Einsum" or not a:
        return 1.0, out_size
    if node.op == "LSTMRecurrence":  # per step and row: [H] x [H, 4H], then ~12 flops a gate
        steps, batch, gates = a
        hidden = gates // 4
        return float(hidden), 2.0 * steps * batch * hidden * gates + 12.0 * steps * batch * gates
    if node.op == "Gemm":
        k = a[0] if node.attr("transA", 0) else a[1]
        bias = out_size if len(node.inputs) > 2 and node.inputs[2] else 0.0
        return float(k), 2.0 * out_size * k + bias
    return float(a[-1]), 2.0 * out_size * a[-1]


def node_seconds(cost: OpCost, profile: DeviceProfile) -> float:
    """Estimated time of one node on ``profile``'s device."""
    if cost.view:
        return 0.0
    launch = 0.0 if cost.fused and not profile.launch_per_node else profile.launch_s
    memory = 0.0 if cost.kind in profile.measured_kinds else (
        cost.bytes / (profile.mem_bandwidth * profile.memory_efficiency(cost.kind, cost.elements)))
    fpga = profile.fpga
    if fpga is not None:
        lanes = fpga.mac_lanes if cost.kind in MAC_KINDS else fpga.lanes
        rate = lanes * fpga.clock_hz * profile.compute_efficiency(cost.kind, cost.k, cost.n)
        compute = cost.elements / rate
    elif cost.kind == "elementwise" and cost.op in profile.elementwise_s:
        # Measured per element: transcendental functions cost what the generated code's
        # polynomial or libm call costs, far from a FLOP count at peak (Erf: ~100x).
        compute = cost.elements * profile.elementwise_s[cost.op]
    else:
        eff = profile.compute_efficiency(cost.kind, cost.k, cost.n)
        compute = cost.flops / (profile.peak(cost.dtype) * eff)
    layout = 0.0
    if profile.layout_conversion_s and cost.conversions:
        layout = cost.converted * profile.layout_conversion_s + cost.conversions * profile.launch_s
    return launch + max(compute, memory) + layout


def fpga_resources(cost: OpCost, model: FpgaModel) -> tuple[float, float, float]:
    """(DSP, BRAM blocks, LUT) one node's kernel takes on the FPGA."""
    if cost.view:
        return (0.0, 0.0, 0.0)
    if cost.fused:  # folded into the producer's pipeline: its lanes' arithmetic only
        dsp = model.lanes * model.dsp_per_flop if cost.flops > cost.elements else 0.0
        return (dsp, 0.0, float(model.lanes * model.lut_per_lane))
    if cost.kind in MAC_KINDS:
        lanes = model.mac_lanes
        dsp = lanes * model.dsp_per_mac
        buffer = min(cost.weight_bytes, model.tile_bytes)
        bram = model.kernel_bram + math.ceil(buffer / model.bram_bytes)
    else:
        lanes = model.lanes
        dsp = lanes * model.dsp_per_flop if cost.flops > 0 else 0.0
        bram = model.kernel_bram
    return (float(dsp), float(bram), float(model.kernel_lut + lanes * model.lut_per_lane))


def transfer_seconds(nbytes: float, src: DeviceProfile, dst: DeviceProfile) -> float:
    """Copy time between two devices, staged through the host when neither is the host."""
    if src is dst:
        return 0.0
    seconds = 0.0
    for end in (src, dst):
        if end.link is not None:
            seconds += end.link.seconds(nbytes)
    return seconds


# ---- which ops a target can run --------------------------------------------------------

#: hcompile's own ops whose lowering is a hand-scheduled CPU kernel (passes only emit them
#: when the CPU is the only target)
CPU_ONLY_OPS = frozenset({"hcompile::LSTMRecurrence"})

#: target -> check(node, types) returning why the target cannot run the node, or None.
SupportCheck = Callable[["Node", "dict[str, TensorType]"], "str | None"]
_SUPPORT_CHECKS: dict[str, list[SupportCheck]] = {}


def register_support_check(target: str, check: SupportCheck) -> SupportCheck:
    """Declare nodes ``target`` cannot run (beyond its profile's ``unsupported_ops``).

    Targets register a check that returns a reason string for a node they cannot lower
    (an op, dtype or attribute combination); by default a target runs every registered op.
    """
    _SUPPORT_CHECKS.setdefault(target, []).append(check)
    return check


def unsupported_reason(node: Node, target: str, profile: DeviceProfile,
                       types: dict[str, TensorType]) -> str | None:
    """Why ``target`` cannot run ``node``, or None when it can."""
    from hcompile.passes import lowerable

    if not lowerable(node.op, node.domain, node.opset)[0]:
        return f"no hcompile lowering for {node.op}"
    qualified = f"{node.domain}::{node.op}" if node.domain else node.op
    if qualified in CPU_ONLY_OPS and target != "cpu":
        return f"{qualified} is a hand-scheduled CPU kernel"
    if node.op in profile.unsupported_ops or qualified in profile.unsupported_ops:
        return f"{node.op} is listed as unsupported by device profile {profile.name}"
    for check in _SUPPORT_CHECKS.get(target, []):
        reason = check(node, types)
        if reason:
            return reason
    return None


# ---- the pass ------------------------------------------------------------------------

def devices_for(options: PassOptions) -> DeviceSet:
    """The options' device set, loaded once and kept in ``options.extra["devices"]``."""
    spec = options.extra.get("devices")
    if isinstance(spec, DeviceSet):
        return spec
    devices = load_devices(spec)
    options.extra["devices"] = devices
    return devices


#: Data-movement ops TVM computes inline (injective): fused into their consumers' kernel
#: when every consumer is elementwise or injective (the LSTM's gate slices). Split (a tuple
#: of outputs) and Gather (``take``) stay kernels of their own.
INJECTIVE_OPS = frozenset(("Slice", "Transpose", "Concat", "Expand", "Tile", "Pad",
                           "DepthToSpace", "SpaceToDepth"))


def kernel_groups(graph: Graph) -> dict[str, str]:
    """Node name -> the name of the node that heads its kernel, as TVM's operator fusion
    groups them: an elementwise node joins the kernel of an input's producer when it is
    that output's only consumer and the producer is a conv/matmul, pooling, elementwise or
    data op (at most one conv/matmul per kernel); an injective data op (``INJECTIVE_OPS``)
    whose consumers are all elementwise or injective joins their kernels. A kernel's head is
    its first node that is not a view; views head nothing (no kernel at all).

    The host's per-kernel overhead is charged once per head: the LSTM has 566 nodes but
    ~122 kernels per run (3 per step: the gate product, and two fused slice+gate kernels).
    """
    producers = graph.producers()
    consumers = graph.consumers()
    types = graph.tensor_types()
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    parent = {n.name: n.name for n in graph.nodes}
    macs = {n.name: int(_KIND_OF.get(n.op, "elementwise") in ("conv", "matmul"))
            for n in graph.nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra == rb or macs[ra] + macs[rb] > 1:
            return
        if order[rb] < order[ra]:
            ra, rb = rb, ra
        parent[rb] = ra
        macs[ra] += macs[rb]

    def light(node: Node) -> bool:
        return node.op in VIEW_OPS or node.op in INJECTIVE_OPS or \
            _KIND_OF.get(node.op, "elementwise") == "elementwise"

    fusable_producers = (*MAC_KINDS, "elementwise", "pool", "data")
    for node in graph.nodes:
        if node.op in VIEW_OPS:
            continue
        if _KIND_OF.get(node.op, "elementwise") == "elementwise":
            for name in dict.fromkeys(i for i in node.inputs if i):
                producer = producers.get(name)
                if producer is None or len(consumers.get(name, [])) != 1:
                    continue
                if producer.op in VIEW_OPS or op_kind(producer, types) in fusable_producers:
                    union(producer.name, node.name)
        elif node.op in INJECTIVE_OPS:
            users = [c for o in node.outputs if o for c in consumers.get(o, [])]
            if users and all(light(c) for c in users):
                for c in users:
                    union(node.name, c.name)
    heads: dict[str, str] = {}
    for node in graph.nodes:  # topological order: a group's first non-view node heads it
        if node.op not in VIEW_OPS:
            heads.setdefault(find(node.name), node.name)
    return {n.name: heads.get(find(n.name), n.name) for n in graph.nodes}


def fused_nodes(graph: Graph) -> set[str]:
    """Nodes that run inside another node's kernel (``kernel_groups``): they cost no launch;
    an elementwise one no extra memory traffic beyond its other inputs. Views are not
    listed (they have no kernel at all)."""
    views = {n.name for n in graph.nodes if n.op in VIEW_OPS}
    return {name for name, head in kernel_groups(graph).items()
            if head != name and name not in views}


_BLOCKED_ELEMENTWISE = frozenset(("Add", "Sub", "Mul", "Div", "Max", "Min", "Clip", "Relu",
                                  "Sigmoid", "Tanh", "BatchNormalization"))


def blocked_conversions(graph: Graph) -> dict[str, tuple[float, int]]:
    """Node -> (elements, tensors) the CPU target converts into or out of its convs' blocked
    layout (``targets/llvm_cpu/layout.py``) around the node: float32 convs (groups 1 or
    depthwise) with a multiple of 4 output channels run blocked, and so do elementwise ops
    and pools of blocked tensors; a blocked conv reading an NCHW tensor converts it in, and
    a blocked tensor that an NCHW node (or the graph's output) reads is converted out once.
    Those conversions are kernels of their own (lenet5: 2 of its 9)."""
    types = graph.tensor_types()
    producers = graph.producers()
    consumers = graph.consumers()
    blocked: set[str] = set()
    for node in graph.nodes:
        out = node.output_types[0] if node.output_types else None
        if out is None or len(out.shape) != 4 or out.dtype != "float32":
            continue
        if node.op == "Conv" and len(node.inputs) > 1 and int(out.shape[1]) % 4 == 0:
            w = types[node.inputs[1]].shape
            group = int(node.attr("group", 1))
            if group == 1 or (len(w) > 1 and w[1] == 1):
                blocked.add(node.name)
        elif node.op in _BLOCKED_ELEMENTWISE | {"MaxPool", "AveragePool"} \
                and int(out.shape[1]) % 4 == 0 and any(
                    producers.get(i) is not None and producers[i].name in blocked
                    for i in node.inputs if i):
            blocked.add(node.name)
    result: dict[str, tuple[float, int]] = {}
    outputs = set(graph.outputs)
    for node in graph.nodes:
        if node.name not in blocked:
            continue
        elements, count = 0.0, 0
        if node.op == "Conv":
            x = node.inputs[0]
            producer = producers.get(x)
            if producer is None or producer.name not in blocked:
                elements, count = elements + types[x].size, count + 1
        result_name = node.outputs[0]
        if result_name in outputs or any(c.name not in blocked
                                         for c in consumers.get(result_name, [])):
            elements, count = elements + types[result_name].size, count + 1
        if count:
            result[node.name] = (float(elements), count)
    return result


def node_costs(graph: Graph) -> dict[str, OpCost]:
    """OpCost of every node, by name."""
    types = graph.tensor_types()
    fused = fused_nodes(graph)
    costs = {n.name: op_cost(n, graph, types, n.name in fused) for n in graph.nodes}
    for name, (elements, count) in blocked_conversions(graph).items():
        costs[name] = replace(costs[name], converted=elements, conversions=count)
    return costs


def run(graph: Graph, options: PassOptions) -> bool:
    devices = devices_for(options)
    targets = list(dict.fromkeys(["cpu", *options.targets]))
    types = graph.tensor_types()
    costs = node_costs(graph)
    changed = False
    for node in graph.nodes:
        cost = costs[node.name]
        est: dict[str, float] = {}
        unsupported: dict[str, str] = {}
        for target in targets:
            profile = devices[target]
            reason = unsupported_reason(node, target, profile, types)
            if reason:
                unsupported[target] = reason
            if not reason or target == "cpu":  # the CPU is every node's last resort
                est[target] = round(node_seconds(cost, profile) * 1e3, 6)
        entry: dict[str, Any] = {"kind": cost.kind, "flops": cost.flops, "bytes": cost.bytes,
                                 "fused": cost.fused, "est_ms": est}
        if node.meta.get("cost") != entry or node.meta.get("unsupported", {}) != unsupported:
            changed = True
        node.meta["cost"] = entry
        if unsupported:
            node.meta["unsupported"] = unsupported
        else:
            node.meta.pop("unsupported", None)
    return changed
