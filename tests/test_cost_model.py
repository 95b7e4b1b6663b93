"""The structure of the CPU cost model (issue #5): FLOPs of Gemm variants, calibrated
efficiency tables and per-element times used as measured, and a calibration that measures
code compiled through hcompile's own CPU target. (The +-30% accuracy on the zoo is a
benchmark, benchmarks/cost_accuracy.py, not a timed test.)"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hcompile.devices import DeviceProfile, Efficiency
from hcompile.devices import calibrate as cal
from hcompile.devices import microbench as mb
from hcompile.ir import Graph, Node, TensorType
from hcompile.passes import cost


def T(*shape: int) -> TensorType:
    return TensorType(tuple(shape), "float32")


def host(**over: object) -> DeviceProfile:
    base: dict = dict(name="host", target="cpu", peak_flops={"float32": 1e11},
                      mem_bandwidth=1e10, launch_s=1e-7, dispatch_s=1e-5,
                      launch_per_node=True)
    base.update(over)
    return DeviceProfile(**base)


def test_gemm_flops_follow_trans_a_and_trans_b():
    w = np.ones((10, 32), np.float32)
    g = Graph("g", {"x": T(8, 32), "xt": T(32, 8)}, ["y", "z"], [
        Node("Gemm", "tb", ["x", "w", "b"], ["y"], {"transB": 1}, [T(8, 10)]),
        Node("Gemm", "ta", ["xt", "wt"], ["z"], {"transA": 1}, [T(8, 10)]),
    ], constants={"w": w, "wt": w.T.copy(), "b": np.ones(10, np.float32)})
    c = cost.node_costs(g)
    # k is the shared axis: x's columns with transB, xt's rows with transA (not w's rows).
    assert (c["tb"].kind, c["tb"].k, c["tb"].n) == ("matmul_t", 32, 10)
    assert c["tb"].flops == 2 * 8 * 10 * 32 + 8 * 10  # plus the bias
    assert (c["ta"].kind, c["ta"].k, c["ta"].flops) == ("matmul", 32, 2 * 8 * 10 * 32)


def test_a_measured_kind_costs_its_calibrated_efficiency_without_a_memory_term():
    g = Graph("g", {"x": T(16, 256)}, ["y"], [
        Node("MatMul", "mm", ["x", "w"], ["y"], output_types=[T(16, 1024)])],
        constants={"w": np.ones((256, 1024), np.float32)})
    c = cost.node_costs(g)["mm"]
    table = Efficiency((64.0, 1024.0), (256.0, 1024.0), ((0.5, 0.4), (0.2, 0.1)))
    slow_memory = dict(mem_bandwidth=1.0, efficiency={"matmul": table})
    measured = host(measured_kinds=frozenset({"matmul"}), **slow_memory)
    expected = 1e-7 + c.flops / (1e11 * table(256, 1024))
    assert cost.node_seconds(c, measured) == pytest.approx(expected)
    assert cost.node_seconds(c, host(**slow_memory)) > 1.0  # unmeasured: memory-bound


def test_timed_elementwise_ops_cost_their_measured_seconds_per_element():
    g = Graph("g", {"x": T(4096)}, ["y", "z"], [
        Node("Div", "div", ["x", "c"], ["d"], output_types=[T(4096)]),
        Node("Erf", "erf", ["d"], ["y"], output_types=[T(4096)]),
        Node("Neg", "neg", ["x"], ["z"], output_types=[T(4096)]),
    ], constants={"c": np.ones(4096, np.float32)})
    c = cost.node_costs(g)
    assert c["erf"].fused and c["erf"].op == "Erf"
    p = host(mem_bandwidth=1e15, elementwise_s={"Erf": 3e-9})
    # Fused into the Div: no extra traffic, but the function still costs its time.
    assert cost.node_seconds(c["erf"], p) == pytest.approx(1e-7 + 4096 * 3e-9)
    assert cost.node_seconds(c["neg"], p) == pytest.approx(1e-7 + 4096 / 1e11)


def test_elementwise_times_round_trip_through_a_profile_table():
    p = host(elementwise_s={"Tanh": 1e-9}, memory_bytes=8e9)
    back = DeviceProfile.from_mapping(p.to_mapping(), where="t")
    assert back.elementwise_s == {"Tanh": 1e-9} and back.memory_bytes == 8e9


def test_calibration_times_every_timed_op_and_uses_the_cpu_target(monkeypatch):
    for op in mb.TIMED_ELEMENTWISE:
        bench = mb.unary_bench(op)
        assert bench.model.graph.node[0].op_type == op and bench.flops == mb.UNARY_ELEMENTS
    calls = []

    class Exe:
        inputs = ()

        def run(self, feeds):
            return feeds

    import hcompile

    monkeypatch.setattr(hcompile, "compile", lambda model, targets: calls.append(targets))
    monkeypatch.setattr(hcompile, "load", lambda art: Exe())
    cal.runner(mb.unary_bench("Erf").model)()
    assert calls == [["cpu"]]  # the code hcompile generates, not a hand-written kernel


@pytest.mark.parametrize("kind", ["matvec", "matvec_t"])
def test_matvec_benchmarks_chain_the_products_with_nothing_between(kind):
    bench = mb.compute_bench(kind, 64, 128)
    nodes = list(bench.model.graph.node)
    products = [n for n in nodes if n.op_type in ("MatMul", "Gemm")]
    assert len(products) == len(nodes) - 1 == int(bench.name.split()[1])  # + the Identity
    for prev, node in itertools.pairwise(products):
        assert node.input[0] == prev.output[0]  # each reads the previous product
    assert bench.flops == 2.0 * len(products) * 64 * 128


def test_convs_are_calibrated_as_one_more_conv_in_a_chain():
    bench = mb.compute_bench("conv", 64, 196, mb.CHAIN_CONVS)
    convs = [n for n in bench.model.graph.node if n.op_type == "Conv"]
    assert len(convs) == mb.CHAIN_CONVS
    assert all(b.input[0] == a.output[0] for a, b in itertools.pairwise(convs))
    one, chain = mb.compute_bench("conv", 64, 196).name, bench.name
    kernel = {mb.compute_bench(kind, k, n, r).name: 1e-3
              for kind in mb.CHAINED_KINDS for k in mb.GRIDS[kind][0]
              for n in mb.GRIDS[kind][1] for r in (1, mb.CHAIN_CONVS)}
    kernel[chain] = 2e-3  # a lone conv 1 ms, three in a chain 2 ms: 0.5 ms each after the first
    cal._marginal_convs(mb, kernel, launch=1e-6)
    assert kernel[one] == pytest.approx(0.5e-3 - 1e-6)
    # Noise that makes the chain no slower than one conv keeps the lone conv's time.
    assert kernel[mb.compute_bench("conv", 16, 49).name] == 1e-3
    assert "strided_conv" not in mb.CHAINED_KINDS  # strides change the size: no chain
