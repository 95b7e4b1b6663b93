"""Single-op ONNX models for calibration, each with its FLOPs and bytes moved.

``GRIDS`` says which (k, n) points each compute-bound kind is measured at: k is the
reduction length, n the output row length as the cost model defines them (spatial size
for convolutions, output columns for matmuls).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

#: kind -> (k values, n values) measured.
GRIDS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "conv": ((16, 64, 256, 576, 2304), (49, 196, 784, 3136)),
    "strided_conv": ((27, 64, 147, 576), (49, 196, 784, 3136, 12544)),
    "depthwise": ((9,), (49, 196, 784, 3136, 12544)),
    "strided_depthwise": ((9,), (49, 196, 784, 3136)),
    "matmul": ((16, 64, 256, 1024), (256, 1024)),
    "matmul_t": ((64, 256, 1024), (256, 1024)),
    "matvec": ((64, 256, 1024), (128, 1024)),
    "matvec_t": ((64, 128, 256, 512, 1024), (128, 1024)),
    "batched_matvec": ((256, 1024), (256, 1024)),
}

#: Memory-bound kinds are measured at these sizes (elements processed): from cache-resident
#: to main-memory activations.
MEMORY_SIZES = (1 << 14, 1 << 17, 1 << 20)

#: conv reduction length k -> (input channels, kernel size). Chained convs keep the channel
#: count; strided ones double it (resnet's downsampling convs: 64 -> 128, ...), stems (3
#: input channels, mobilenet's 3x3 and resnet's 7x7) have 32 or 64 outputs.
_CONV_K = {16: (16, 1), 27: (3, 3), 64: (64, 1), 147: (3, 7), 256: (256, 1), 576: (64, 3),
           2304: (256, 3)}

#: Depthwise convs' channels by input size (as mobilenet has them: wider when smaller), so
#: that a small-n depthwise conv is not a few microseconds lost in the noise.
_DEPTHWISE_CHANNELS = {12544: 96, 3136: 144, 784: 192, 196: 384, 49: 576}


def depthwise_channels(n_in: int) -> int:
    """Channels of the depthwise benchmarks whose input has ``n_in`` pixels."""
    return _DEPTHWISE_CHANNELS.get(n_in, 96)


def conv_channels(kind: str, k: int) -> tuple[int, int, int]:
    """(input channels, output channels, kernel size) of a dense-conv benchmark."""
    cin, kernel = _CONV_K[k]
    if kind in CHAINED_KINDS:
        return cin, cin, kernel
    return cin, (2 * cin if cin >= 16 else 32 if kernel == 3 else 64), kernel


@dataclass(frozen=True)
class Bench:
    """One microbenchmark: the op kind it measures, its model, FLOPs and bytes moved, and
    (memory-bound kinds) the elements it processes as ``passes.cost`` counts them: the key
    its efficiency is looked up by (a pooling window's inputs, not its outputs)."""

    kind: str
    name: str
    model: onnx.ModelProto
    flops: float
    nbytes: float
    elements: float = 0.0


def _model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]],
           outputs: dict[str, tuple[int, ...]], weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "calibration",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs.items()],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def _rand(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def add_model(shape: tuple[int, ...]) -> onnx.ModelProto:
    node = helper.make_node("Add", ["x", "c"], ["y"])
    return _model([node], {"x": shape}, {"y": shape}, {"c": _rand(*shape)})


def small_op_chain(blocks: int, width: int = 16) -> onnx.ModelProto:
    """``blocks`` x (MatMul, two Slices, Tanh, Sigmoid, Mul) on a 1 x width row, like a
    recurrent cell's gates: 2 kernels per block after fusion (the product, and the slices
    with the gates), as the LSTM's steps run; the per-kernel overhead of the runtime and of
    the code around tiny kernels."""
    nodes, last = [], "x"
    weights: dict[str, np.ndarray] = {
        "lo": np.array([0], np.int64), "mid": np.array([width], np.int64),
        "hi": np.array([2 * width], np.int64), "axis": np.array([1], np.int64)}
    for i in range(blocks):
        weights[f"w{i}"] = _rand(width, 2 * width) * 0.1
        nodes += [helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Slice", [f"m{i}", "lo", "mid", "axis"], [f"a{i}"]),
                  helper.make_node("Slice", [f"m{i}", "mid", "hi", "axis"], [f"b{i}"]),
                  helper.make_node("Tanh", [f"a{i}"], [f"t{i}"]),
                  helper.make_node("Sigmoid", [f"b{i}"], [f"s{i}"]),
                  helper.make_node("Mul", [f"t{i}", f"s{i}"], [f"h{i}"])]
        last = f"h{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    return _model(nodes, {"x": (1, width)}, {"y": (1, width)}, weights)


#: Nodes and kernels (after TVM's fusion) per block of ``small_op_chain``.
CHAIN_BLOCK = 6
CHAIN_KERNELS = 2


#: Kinds timed as the marginal cost of one more convolution in a chain of ``CHAIN_CONVS``
#: (output channels = input channels): blocked-layout code converts the layout once per
#: chain of convs, a lone conv pays it in and out (1x1 and depthwise convs ran 2-5x their
#: in-model time alone). Strided convs change the size and stay single.
CHAINED_KINDS = ("conv", "depthwise")
CHAIN_CONVS = 3


def compute_bench(kind: str, k: int, n: int, repeats: int = 1) -> Bench:
    """The microbenchmark of a compute-bound ``kind`` at reduction ``k``, output row ``n``
    (``repeats`` chained convolutions, for ``CHAINED_KINDS``)."""
    if kind.endswith(("conv", "depthwise")):
        return _conv_bench(kind, k, n, repeats)
    transposed = kind.endswith("_t")  # a Gemm with transposed weights, as in FC layers
    weight = _rand(n, k) if transposed else _rand(k, n)
    if kind.startswith("matvec"):
        return _matvec_bench(kind, k, n, weight, transposed)
    if kind == "batched_matvec":  # 16 one-row products in one MatMul, as attention has them
        batch = 16
        model = _model([helper.make_node("MatMul", ["x", "w"], ["y"])], {"x": (batch, 1, k)},
                       {"y": (batch, 1, n)}, {"w": weight})
        return Bench(kind, f"{kind} {batch}x1x{k}x{n}", model, 2.0 * batch * k * n,
                     4.0 * (batch * k + k * n + batch * n))
    # Rows as models have them (sequence lengths, batches: tens), capped at 64: a 244-row
    # 32x256 product ran at 120 GFLOP/s, a 20-row one at 184 (the LSTM's input projections
    # were predicted 2x too slow); at least ~4 MFLOP where that cap allows.
    m = max(16, min(64, int(4e6 / (2 * k * n))))
    node = (helper.make_node("Gemm", ["x", "w"], ["y"], transB=1) if transposed
            else helper.make_node("MatMul", ["x", "w"], ["y"]))
    model = _model([node], {"x": (m, k)}, {"y": (m, n)}, {"w": weight})
    return Bench(kind, f"{kind} {m}x{k}x{n}", model, 2.0 * m * k * n, 4.0 * (m * k + k * n + m * n))


def _conv_bench(kind: str, k: int, n: int, repeats: int) -> Bench:
    size = round(math.sqrt(n))  # output size
    stride = 2 if kind.startswith("strided_") else 1
    if kind.endswith("conv"):
        cin, cout, kernel = conv_channels(kind, k)
        group = 1
    else:
        cin = cout = group = depthwise_channels((size * stride) ** 2)
        kernel = 3
    nodes, weights, last = [], {}, "x"
    for i in range(repeats):
        fan_in = cin // group * kernel * kernel  # scaled: values stay O(1) along the chain
        weights[f"w{i}"] = _rand(cout, cin // group, kernel, kernel) / math.sqrt(fan_in)
        nodes.append(helper.make_node("Conv", [last, f"w{i}"], [f"c{i}"],
                                      kernel_shape=[kernel, kernel], pads=[kernel // 2] * 4,
                                      group=group, strides=[stride, stride]))
        last = f"c{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    model = _model(nodes, {"x": (1, cin, size * stride, size * stride)},
                   {"y": (1, cout, size, size)}, weights)
    flops = 2.0 * cout * size * size * (cin // group) * kernel * kernel * repeats
    nbytes = 4.0 * repeats * (cin * (size * stride) ** 2 + cout * size * size
                              + cout * (cin // group) * kernel * kernel)
    suffix = f" x{repeats}" if repeats > 1 else ""
    # Elements the blocked layout converts around a lone conv: its input and its output (the
    # cost model charges conversions where a model has them, ``passes.cost.blocked_conversions``).
    converted = float(cin * (size * stride) ** 2 + cout * size * size)
    return Bench(kind, f"{kind} k={k} n={size}x{size}{suffix}", model, flops, nbytes,
                 elements=converted)


def _matvec_bench(kind: str, k: int, n: int, weight: np.ndarray, transposed: bool) -> Bench:
    """A chain of row-vector products, as a recurrent network runs them: each product reads
    the previous one's result, ``1 x k @ k x n`` then ``1 x n @ n x k`` in turn (the same
    weight bytes and FLOPs both ways), so a tiny kernel is timed many times in one run
    with nothing else between its calls. (Splitting one input into rows and summing the
    products added two kernels per product: ~0.5 us each, double the product's time.)"""
    blocks = max(1, min(32, int(5e5 / (2 * k * n))))
    back = _rand(k, n) if transposed else _rand(n, k)  # the n -> k weight
    weights = {"w": weight / math.sqrt(k), "v": back / math.sqrt(n)}  # values stay O(1)
    nodes, last = [], "x"
    for i in range(2 * blocks):
        name = "w" if i % 2 == 0 else "v"
        nodes.append(helper.make_node("Gemm", [last, name], [f"h{i}"], transB=1) if transposed
                     else helper.make_node("MatMul", [last, name], [f"h{i}"]))
        last = f"h{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    model = _model(nodes, {"x": (1, k)}, {"y": (1, k)}, {**weights})
    copies = 2 * blocks
    return Bench(kind, f"{kind} {copies} x 1x{k}x{n}", model, 2.0 * copies * k * n,
                 4.0 * copies * (k + k * n + n))


def memory_bench(kind: str, n: int) -> Bench:
    """The microbenchmark of a memory-bound ``kind`` processing about ``n`` elements."""
    f = 4.0
    if kind == "elementwise":
        model = _model([helper.make_node("Add", ["x", "z"], ["y"])],
                       {"x": (n,), "z": (n,)}, {"y": (n,)}, {})
        return Bench(kind, f"elementwise: Add {n}", model, n, 3 * n * f, elements=n)
    if kind == "pool":  # 3x3/2 max pooling over 64 channels, after a 1x1 conv (see pool_base)
        side = max(2, round(math.sqrt(n / 64)))
        model = _pool_model(side, pool=True)
        out = 64 * side * side
        return Bench(kind, f"pool: Conv+MaxPool 3x3/2 64x{2 * side}x{2 * side}", model,
                     9.0 * out, 5 * out * f, elements=9.0 * out)
    rows = max(1, n // 1024)
    if kind == "norm":
        model = _model([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1)],
                       {"x": (rows, 1024)}, {"y": (rows, 1024)},
                       {"g": np.ones(1024, np.float32), "b": np.zeros(1024, np.float32)})
        return Bench(kind, f"norm: LayerNormalization {rows}x1024", model, 8.0 * rows * 1024,
                     2 * rows * 1024 * f, elements=rows * 1024.0)
    if kind == "reduce":
        model = _model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[-1], keepdims=1)],
                       {"x": (rows, 1024)}, {"y": (rows, 1)}, {})
        return Bench(kind, f"reduce: ReduceMean {rows}x1024", model, rows * 1024.0,
                     (rows * 1024 + rows) * f, elements=rows * 1024.0)
    side = max(2, round(n ** (1 / 3)))  # data movement: a transpose keeping the last axis
    model = _model([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2])],
                   {"x": (side, side, side)}, {"y": (side, side, side)}, {})
    return Bench("data", f"data: Transpose {side}^3 (1,0,2)", model, 0.0, 2 * side**3 * f,
                 elements=float(side**3))


MEMORY_KINDS = ("elementwise", "pool", "norm", "reduce", "data")


def _pool_model(side: int, pool: bool) -> onnx.ModelProto:
    x = (1, 64, 2 * side, 2 * side)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1])]
    if pool:
        nodes.append(helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3],
                                      strides=[2, 2], pads=[1] * 4))
    else:
        nodes.append(helper.make_node("Identity", ["c"], ["y"]))
    out = (1, 64, side, side) if pool else x
    return _model(nodes, {"x": x}, {"y": out}, {"w": _rand(64, 64, 1, 1) / 8.0})


def pool_base(n: int) -> Bench:
    """The 1x1 conv that ``memory_bench("pool", n)`` pools, alone. Models pool a conv's
    output in the conv's blocked layout, a much faster kernel than pooling an NCHW input
    (resnet18's stem MaxPool: 0.2 ms in the model, 3 ms alone), so the pool is timed as
    the difference of the two, corrected for the layout conversions (see calibrate).
    ``elements``: the conv output elements the pool's output replaces in the conversion."""
    side = max(2, round(math.sqrt(n / 64)))
    return Bench("pool", f"pool base: Conv 64x{2 * side}x{2 * side}",
                 _pool_model(side, pool=False), 0.0, 0.0,
                 elements=float(64 * (4 * side * side - side * side)))

#: Elementwise ops timed by name (``elementwise_s``): transcendental functions, whose
#: generated code costs what its polynomial or libm call costs per element.
TIMED_ELEMENTWISE = ("Erf", "Tanh", "Sigmoid", "Exp", "Log")
#: Elements of a ``unary_bench``: large enough that the per-run overheads are small.
UNARY_ELEMENTS = 1 << 16


def unary_bench(op: str, n: int = UNARY_ELEMENTS) -> Bench:
    """``op`` on ``n`` elements (inputs in [0, 1): valid for Log)."""
    model = _model([helper.make_node(op, ["x"], ["y"])], {"x": (n,)}, {"y": (n,)}, {})
    return Bench("elementwise", f"elementwise: {op} {n}", model, float(n), 2.0 * n * 4)
