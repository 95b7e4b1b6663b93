"""Random placement problems for tests and benchmarks (seeded, reproducible).

Three devices like a real host: ``cpu`` (the host), ``gpu`` (10-50x faster on heavy nodes,
slower than the CPU on tiny ones because of launch costs) and ``fpga`` (2-10x faster on
heavy nodes, a resource budget that holds about a third of the graph). Tensors are 4 KB to
4 MB; links cost 10-30 us plus bytes over 6-12 GB/s; some nodes cannot run on the gpu or
fpga.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hcompile.passes.partition.problem import Link, Problem, Tensor

if TYPE_CHECKING:
    from hcompile.ir import Graph

DEVICES = ("cpu", "gpu", "fpga")


def random_problem(rng: np.random.Generator, n: int, *, chain: bool = False,
                   budget: bool = True, max_inputs: int = 2) -> Problem:
    """A random DAG (or chain) of ``n`` nodes in topological order."""
    heavy = rng.random(n) < 0.5
    work = np.exp(rng.normal(np.log(2e-4), 1.0, n))  # seconds on the CPU
    time = np.empty((n, 3))
    time[:, 0] = work
    time[:, 1] = np.where(heavy, work / rng.uniform(10, 50, n), work * rng.uniform(0.3, 1.5, n))
    time[:, 1] += 5e-6
    time[:, 2] = np.where(heavy, work / rng.uniform(2, 10, n), work * rng.uniform(0.5, 3, n))
    time[:, 2] += 10e-6
    unsupported = rng.random((n, 2)) < 0.1
    time[:, 1:][unsupported] = np.inf
    sizes = np.exp(rng.uniform(np.log(4e3), np.log(4e6), n + 1))
    consumers: list[list[int]] = [[] for _ in range(n + 1)]  # tensor v+1 is node v's output
    consumers[0].append(0)
    for v in range(1, n):
        if chain:
            consumers[v].append(v)
            continue
        k = int(rng.integers(1, max_inputs + 1))
        for src in set(rng.integers(max(0, v - 6), v, size=k).tolist()):
            consumers[src + 1].append(v)
        if rng.random() < 0.05:
            consumers[0].append(v)
    tensors = [Tensor("x", -1, tuple(consumers[0]), float(sizes[0]))]
    for v in range(n):
        outs = consumers[v + 1]
        tensors.append(Tensor(f"t{v}", v, tuple(outs), float(sizes[v + 1]),
                              output=not outs))
    resources: dict[int, np.ndarray] = {}
    budgets: dict[int, np.ndarray] = {}
    if budget:
        resources[2] = rng.uniform(0.5, 1.5, (n, 3)) * np.array([64.0, 20.0, 20000.0])
        budgets[2] = resources[2].sum(axis=0) / 3
    return Problem(DEVICES, tuple(f"n{v}" for v in range(n)), time, tuple(tensors),
                   (10e-6, 20e-6, 50e-6),
                   (None, Link(10e-6, 12e9), Link(30e-6, 6e9)), resources, budgets)


def network_graph(nodes: int, seed: int = 0) -> Graph:
    """An IR graph of about ``nodes`` nodes: residual conv blocks, then a matmul head.

    Each block is Conv-BatchNorm-Relu-Conv-BatchNorm-Add-Relu with a 1x1 shortcut Conv every
    fourth block; channel counts vary so that costs differ between blocks.
    """
    from hcompile.ir import Graph, Node, TensorType

    rng = np.random.default_rng(seed)
    size, channels = 14, 32
    graph = Graph("synthetic", {"x": TensorType((1, channels, size, size), "float32")}, [])
    last, count = "x", 0

    def add(op: str, inputs: list[str], shape: tuple[int, ...], **attrs: object) -> str:
        nonlocal count
        out = f"t{count}"
        graph.nodes.append(Node(op, f"{op}_{count}", inputs, [out], dict(attrs),
                                [TensorType(shape, "float32")], opset=17))
        count += 1
        return out

    def const(shape: tuple[int, ...]) -> str:
        name = f"w{len(graph.constants)}"
        graph.constants[name] = rng.standard_normal(shape).astype(np.float32)
        return name

    block = 0
    while count < nodes - 4:
        out_ch = int(rng.choice([16, 32, 64]))
        shape = (1, out_ch, size, size)
        bn = [const((out_ch,)) for _ in range(4)]
        h = add("Conv", [last, const((out_ch, channels, 3, 3))], shape,
                kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        h = add("Relu", [add("BatchNormalization", [h, *bn], shape)], shape)
        h = add("Conv", [h, const((out_ch, out_ch, 3, 3))], shape,
                kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        h = add("BatchNormalization", [h, *bn], shape)
        skip = last
        if out_ch != channels or block % 4 == 0:
            skip = add("Conv", [last, const((out_ch, channels, 1, 1))], shape,
                       kernel_shape=[1, 1])
        last = add("Relu", [add("Add", [h, skip], shape)], shape)
        channels, block = out_ch, block + 1
    pooled = add("GlobalAveragePool", [last], (1, channels, 1, 1))
    flat = add("Flatten", [pooled], (1, channels))
    logits = add("MatMul", [flat, const((channels, 10))], (1, 10))
    graph.outputs = [add("Softmax", [logits], (1, 10), axis=-1)]
    return graph
