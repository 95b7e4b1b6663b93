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


def _gate_cell(steps: int) -> Graph:
    """``steps`` LSTM-like gate blocks: MatMul, two Slices, Tanh, Sigmoid, Mul."""
    nodes, consts, last = [], {}, "x"
    for i in range(steps):
        consts[f"w{i}"] = np.ones((16, 32), np.float32)
        nodes += [Node("MatMul", f"mm{i}", [last, f"w{i}"], [f"m{i}"], output_types=[T(1, 32)]),
                  Node("Slice", f"sa{i}", [f"m{i}", "lo", "mid", "ax"], [f"a{i}"],
                       output_types=[T(1, 16)]),
                  Node("Slice", f"sb{i}", [f"m{i}", "mid", "hi", "ax"], [f"b{i}"],
                       output_types=[T(1, 16)]),
                  Node("Tanh", f"t{i}", [f"a{i}"], [f"ta{i}"], output_types=[T(1, 16)]),
                  Node("Sigmoid", f"s{i}", [f"b{i}"], [f"sb{i}"], output_types=[T(1, 16)]),
                  Node("Mul", f"h{i}", [f"ta{i}", f"sb{i}"], [f"h{i}"], output_types=[T(1, 16)])]
        last = f"h{i}"
    consts.update(lo=np.array([0]), mid=np.array([16]), hi=np.array([32]), ax=np.array([1]))
    return Graph("g", {"x": T(1, 16)}, [last], nodes, constants=consts)


def test_injective_slices_fuse_with_the_gates_they_feed_one_kernel_per_group():
    g = _gate_cell(2)
    heads = cost.kernel_groups(g)
    for i in range(2):
        assert heads[f"mm{i}"] == f"mm{i}"  # read by two slices: a kernel of its own
        # Slices, gates and product: one fused kernel, headed by the first slice.
        assert {heads[f"{p}{i}"] for p in ("sa", "sb", "t", "s", "h")} == {f"sa{i}"}
    assert cost.fused_nodes(g) == {f"{p}{i}" for p in ("sb", "t", "s", "h") for i in range(2)}


def test_a_kernel_holds_at_most_one_matmul():
    g = Graph("g", {"x": T(1, 16)}, ["y"], [
        Node("MatMul", "a", ["x", "w"], ["p"], output_types=[T(1, 16)]),
        Node("MatMul", "b", ["x", "w"], ["q"], output_types=[T(1, 16)]),
        Node("Add", "add", ["p", "q"], ["y"], output_types=[T(1, 16)]),
    ], constants={"w": np.ones((16, 16), np.float32)})
    heads = cost.kernel_groups(g)
    assert heads["add"] == "a" and heads["b"] == "b"


def test_launch_overhead_is_charged_per_fused_kernel_not_per_node():
    g = _gate_cell(3)
    costs = cost.node_costs(g)
    launch = 1e-3  # dwarfs the kernels
    per_kernel = host(launch_s=launch, launch_per_node=False)
    total = sum(cost.node_seconds(c, per_kernel) for c in costs.values())
    kernels = sum(not c.view and not c.fused for c in costs.values())
    assert kernels == 3 * 2 == 3 * mb.CHAIN_KERNELS
    assert total == pytest.approx(kernels * launch, rel=1e-3)
    # Per node (the old charge) would have been 18 launches for 6 kernels.
    per_node = sum(cost.node_seconds(c, host(launch_s=launch)) for c in costs.values())
    assert per_node == pytest.approx(18 * launch, rel=1e-3)


def test_the_launch_chain_has_the_kernels_per_block_the_cost_model_counts():
    from hcompile.frontend import import_model

    for blocks in (1, 4):
        graph, _ = import_model(mb.small_op_chain(blocks))
        costs = cost.node_costs(graph).values()
        assert sum(not c.view for c in costs) == blocks * mb.CHAIN_BLOCK
        assert sum(not c.view and not c.fused for c in costs) == blocks * mb.CHAIN_KERNELS


def test_residual_launch_is_per_kernel():
    table = host(launch_s=0.0).to_mapping()
    base = cal.residual_launch(table, 1.0)
    more = cal.residual_launch(table, 1.0 + 31 * mb.CHAIN_KERNELS * 1e-6)
    assert more - base == pytest.approx(1e-6)  # the extra time spread over the 62 kernels


def test_strided_convs_lose_their_layout_conversion_and_pools_their_conv():
    kernel = {mb.compute_bench(kind, k, n).name: 1e-3 for kind, (ks, ns) in mb.GRIDS.items()
              if kind.startswith("strided_") for k in ks for n in ns}
    bench = mb.compute_bench("strided_depthwise", 9, 196)
    assert bench.elements == bench.model.graph.input[0].type.tensor_type.shape.dim[1].dim_value \
        * (28 * 28 + 14 * 14)  # its input and output, converted to and from blocked
    cal._strided_convs(mb, kernel, conversion=1e-9)
    assert kernel[bench.name] == pytest.approx(max(1e-3 - 1e-9 * bench.elements, 1e-4))
    pools = {}
    for n in mb.MEMORY_SIZES:
        pools[mb.memory_bench("pool", n).name] = 3e-4
        pools[mb.pool_base(n).name] = 2e-4
    cal._blocked_pools(mb, pools, conversion=1e-9)
    n = mb.MEMORY_SIZES[1]
    assert pools[mb.memory_bench("pool", n).name] == pytest.approx(
        1e-4 + 1e-9 * mb.pool_base(n).elements)
    ops = [node.op_type for node in mb.memory_bench("pool", n).model.graph.node]
    assert ops == ["Conv", "MaxPool"]  # pooled in the conv's blocked layout, as in models


def test_a_calibrated_table_charges_launch_per_kernel():
    names = [mb.compute_bench(kind, k, n, r).name for kind, (ks, ns) in mb.GRIDS.items()
             for k in ks for n in ns
             for r in ((1, mb.CHAIN_CONVS) if kind in mb.CHAINED_KINDS else (1,))]
    names += [mb.memory_bench(kind, n).name for kind in mb.MEMORY_KINDS for n in mb.MEMORY_SIZES]
    names += [mb.pool_base(n).name for n in mb.MEMORY_SIZES]
    names += [mb.unary_bench(op).name for op in mb.TIMED_ELEMENTWISE]
    table, _ = cal._profile(mb, dict.fromkeys(names, 1e-3), 1e-7, 1e-6, 1e11, 5e10, 1e10, 1)
    profile = DeviceProfile.from_mapping(table, where="t")
    assert not profile.launch_per_node and profile.launch_s == 1e-7
    assert "layout_conversion_s_per_element" in table["calibration"]


def test_one_row_products_in_a_batch_are_their_own_kind():
    g = Graph("g", {"x": T(16, 1, 256), "v": T(1, 256), "m": T(16, 256)}, ["y", "z", "u"], [
        Node("MatMul", "batched", ["x", "w"], ["y"], output_types=[T(16, 1, 768)]),
        Node("MatMul", "row", ["v", "w"], ["z"], output_types=[T(1, 768)]),
        Node("MatMul", "rows", ["m", "w"], ["u"], output_types=[T(16, 768)]),
    ], constants={"w": np.ones((256, 768), np.float32)})
    c = cost.node_costs(g)
    assert [c[n].kind for n in ("batched", "row", "rows")] == [
        "batched_matvec", "matvec", "matmul"]
    assert c["batched"].flops == c["rows"].flops == 2 * 16 * 256 * 768
    bench = mb.compute_bench("batched_matvec", 256, 768)
    assert [d.dim_value for d in bench.model.graph.input[0].type.tensor_type.shape.dim] == [
        16, 1, 256]


def test_blocked_layout_conversions_are_charged_where_a_model_converts():
    w16 = np.ones((16, 6, 5, 5), np.float32)
    g = Graph("g", {"x": T(1, 6, 14, 14)}, ["y"], [
        Node("Conv", "conv", ["x", "w"], ["c"], {"kernel_shape": [5, 5]}, [T(1, 16, 10, 10)]),
        Node("Relu", "relu", ["c"], ["r"], output_types=[T(1, 16, 10, 10)]),
        Node("AveragePool", "pool", ["r"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2]},
             [T(1, 16, 5, 5)]),
        Node("Flatten", "flat", ["p"], ["y"], output_types=[T(1, 400)]),
    ], constants={"w": w16})
    # In: the conv's NCHW input; out: the pool's blocked output, which Flatten reads as NCHW.
    assert cost.blocked_conversions(g) == {"conv": (6 * 14 * 14, 1), "pool": (400, 1)}
    c = cost.node_costs(g)
    p = host(layout_conversion_s=1e-9, launch_per_node=False)
    plain = host(launch_per_node=False)
    extra = cost.node_seconds(c["pool"], p) - cost.node_seconds(c["pool"], plain)
    assert extra == pytest.approx(400 * 1e-9 + 1e-7)  # the elements and one more kernel
    six = Graph("g", {"x": T(1, 1, 32, 32)}, ["y"], [  # 6 channels: NCHW, nothing to convert
        Node("Conv", "conv", ["x", "w"], ["y"], {"kernel_shape": [5, 5]}, [T(1, 6, 28, 28)])],
        constants={"w": np.ones((6, 1, 5, 5), np.float32)})
    assert cost.blocked_conversions(six) == {}
