"""passes/cost.py: FLOPs and bytes per op, the roofline per device, FPGA resources, copies,
which targets can run which ops, and the pass's annotations."""

from __future__ import annotations

import numpy as np
import pytest

from hcompile.devices import DeviceProfile, Efficiency, FpgaModel, LinkProfile, load_devices
from hcompile.ir import Graph, Node, TensorType
from hcompile.passes import PassOptions, cost, run_pipeline

F32 = "float32"


def T(*shape: int) -> TensorType:
    return TensorType(tuple(shape), F32)


def conv_graph(group: int = 1) -> Graph:
    cin = 8
    w = np.ones((8, cin // group, 3, 3), np.float32)
    return Graph("g", {"x": T(1, cin, 16, 16)}, ["y"], [
        Node("Conv", "conv", ["x", "w"], ["c"], {"group": group, "kernel_shape": [3, 3],
                                                 "pads": [1, 1, 1, 1]}, [T(1, 8, 16, 16)],
             opset=17),
        Node("Relu", "relu", ["c"], ["y"], output_types=[T(1, 8, 16, 16)], opset=17),
    ], constants={"w": w})


def costs(graph: Graph) -> dict[str, cost.OpCost]:
    return cost.node_costs(graph)


def test_conv_flops_bytes_and_fused_relu():
    c = costs(conv_graph())
    assert c["conv"].kind == "conv"
    assert c["conv"].flops == 2 * (8 * 16 * 16) * (8 * 3 * 3)
    assert c["conv"].k == 8 * 9
    assert c["conv"].bytes == 4 * (8 * 16 * 16 * 2 + 8 * 8 * 9)
    assert c["relu"].fused and c["relu"].bytes == 0  # its input stays in the conv's kernel


def test_depthwise_and_strided_convs_are_their_own_kinds():
    c = costs(conv_graph(group=8))
    assert c["conv"].kind == "depthwise"
    assert c["conv"].flops == 2 * (8 * 16 * 16) * 9
    g = conv_graph()
    g.nodes[0].attrs["strides"] = [2, 2]
    assert costs(g)["conv"].kind == "strided_conv"
    # A profile without figures for a variant uses its parent kind's.
    p = profile(efficiency={"conv": Efficiency.scalar(0.25), "default": Efficiency.scalar(1.0)})
    assert p.compute_efficiency("strided_depthwise") == 0.25


def test_matmul_gemm_matvec_and_views():
    g = Graph("g", {"x": T(4, 64)}, ["z", "r"], [
        Node("MatMul", "mm", ["x", "w"], ["y"], output_types=[T(4, 32)]),
        Node("Gemm", "gemm", ["v", "w2", "b"], ["z"], {"transB": 1}, [T(1, 10)]),
        Node("Reshape", "view", ["y", "s"], ["r"], output_types=[T(128)]),
    ], constants={"w": np.ones((64, 32), np.float32), "v": np.ones((1, 32), np.float32),
                  "w2": np.ones((10, 32), np.float32), "b": np.ones(10, np.float32),
                  "s": np.array([128])})
    c = costs(g)
    assert (c["mm"].kind, c["mm"].flops, c["mm"].k) == ("matmul", 2 * 4 * 64 * 32, 64)
    assert c["gemm"].kind == "matvec_t"  # a single output row, transposed weights
    assert c["gemm"].flops == 2 * 10 * 32 + 10
    assert c["view"].view and cost.node_seconds(c["view"], load_devices()["gpu"]) == 0.0


def test_an_elementwise_node_whose_input_has_two_readers_is_not_fused():
    g = Graph("g", {"x": T(1000)}, ["a", "b"], [
        Node("Exp", "e", ["x"], ["h"], output_types=[T(1000)]),
        Node("Neg", "a", ["h"], ["a"], output_types=[T(1000)]),
        Node("Abs", "b", ["h"], ["b"], output_types=[T(1000)]),
    ])
    c = costs(g)
    assert not c["a"].fused and not c["b"].fused
    assert c["a"].bytes == 8000


def profile(**over: object) -> DeviceProfile:
    base: dict = dict(name="test", target="gpu", peak_flops={"float32": 1e12},
                      mem_bandwidth=1e11, launch_s=1e-5, dispatch_s=0.0,
                      link=LinkProfile("l", 1e9, 1e-5))
    base.update(over)
    return DeviceProfile(**base)


def test_roofline_takes_the_slower_of_compute_and_memory_plus_launch():
    c = costs(conv_graph())["conv"]
    fast_memory = profile(mem_bandwidth=1e15, efficiency={"conv": Efficiency.scalar(0.5)})
    assert cost.node_seconds(c, fast_memory) == pytest.approx(1e-5 + c.flops / 0.5e12)
    slow_memory = profile(mem_bandwidth=1e6)
    assert cost.node_seconds(c, slow_memory) == pytest.approx(1e-5 + c.bytes / 1e6)
    relu = costs(conv_graph())["relu"]
    assert cost.node_seconds(relu, slow_memory) < 1e-5  # fused: no launch


def test_efficiency_tables_depend_on_the_reduction_length():
    eff = Efficiency((16.0, 256.0), (), ((0.5,), (0.05,)))
    p = profile(efficiency={"conv": eff}, mem_bandwidth=1e15)
    short, long_ = costs(conv_graph())["conv"], costs(conv_graph())["conv"]
    assert eff(16) == 0.5 and eff(256) == 0.05 and eff(4) == 0.5 and eff(4096) == 0.05
    assert 0.05 < eff(64) < 0.5
    assert eff(64) == pytest.approx(np.sqrt(0.5 * 0.05))  # halfway in log space
    assert cost.node_seconds(short, p) == cost.node_seconds(long_, p)


def test_fpga_kernels_run_at_their_lanes_and_take_resources():
    model = FpgaModel(dsp=1000, bram=1000, lut=100000, clock_hz=2e8, mac_lanes=16,
                      dsp_per_mac=2, kernel_lut=1000, lut_per_lane=10, kernel_bram=4,
                      tile_bytes=4608, bram_bytes=4608)
    fpga = profile(target="fpga", fpga=model, mem_bandwidth=1e15,
                   efficiency={"default": Efficiency.scalar(1.0)})
    c = costs(conv_graph())["conv"]
    macs = c.flops / 2
    assert cost.node_seconds(c, fpga) == pytest.approx(1e-5 + macs / (16 * 2e8))
    dsp, bram, lut = cost.fpga_resources(c, model)
    assert (dsp, lut) == (16 * 2, 1000 + 16 * 10)
    assert bram == 4 + 1  # the 2.3 KB of weights fit one block
    assert model.budget() == (800.0, 800.0, 80000.0)


def test_copies_pay_each_link_they_cross():
    devices = load_devices()
    host, gpu, fpga = devices["cpu"], devices["gpu"], devices["fpga"]
    assert gpu.link is not None and fpga.link is not None
    assert cost.transfer_seconds(1e6, host, host) == 0.0
    one = cost.transfer_seconds(1e6, host, gpu)
    assert one == pytest.approx(gpu.link.latency_s + 1e6 / gpu.link.bandwidth)
    both = cost.transfer_seconds(1e6, gpu, fpga)
    assert both == pytest.approx(one + fpga.link.latency_s + 1e6 / fpga.link.bandwidth)


def test_profiles_and_checks_declare_what_a_target_cannot_run(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text('[fpga]\nbase = "alveo-u250"\nunsupported_ops = ["Conv"]\n')
    options = PassOptions(targets=["cpu", "gpu", "fpga"], extra={"devices": str(path)})
    g = conv_graph()

    def no_relu_on_gpu(node: Node, types: object) -> str | None:
        return "no Relu on this GPU" if node.op == "Relu" else None

    cost.register_support_check("gpu", no_relu_on_gpu)
    try:
        assert cost.run(g, options) is True
    finally:
        cost._SUPPORT_CHECKS["gpu"].remove(no_relu_on_gpu)
    conv, relu = g.nodes
    assert set(conv.meta["cost"]["est_ms"]) == {"cpu", "gpu"}
    assert "unsupported by device profile alveo-u250" in conv.meta["unsupported"]["fpga"]
    assert relu.meta["unsupported"] == {"gpu": "no Relu on this GPU"}
    assert cost.run(g, options) is True  # the check is gone: Relu can run on the GPU now
    assert "gpu" in relu.meta["cost"]["est_ms"] and "unsupported" not in relu.meta
    assert cost.run(g, options) is False


def test_zoo_flops_match_published_figures(zoo_path):
    # ResNet-18: 1.81 GMACs; MobileNetV2: 0.30 GMACs (torchvision model cards), 2 FLOPs/MAC.
    for name, gflops in (("resnet18", 3.63), ("mobilenetv2", 0.60)):
        graph, _ = _imported(zoo_path(name))
        total = sum(c.flops for c in cost.node_costs(graph).values() if c.kind in cost.MAC_KINDS)
        assert total / 1e9 == pytest.approx(gflops, rel=0.02), name


def _imported(path):
    from hcompile.frontend import import_model

    graph, _ = import_model(path)
    options = PassOptions(targets=["cpu"])
    run_pipeline(graph, options)
    return graph, options


def test_the_pass_annotates_every_zoo_node_on_every_target(zoo_path, isolated_cache):
    graph, _ = _imported(zoo_path("transformer"))
    options = PassOptions(targets=["cpu", "gpu", "fpga"])
    cost.run(graph, options)
    for node in graph.nodes:
        est = node.meta["cost"]["est_ms"]
        assert set(est) | set(node.meta.get("unsupported", {})) == {"cpu", "gpu", "fpga"}
        assert all(ms >= 0 for ms in est.values())
    big = [n for n in graph.nodes if n.op == "MatMul" and n.meta["cost"]["flops"] > 1e6]
    tiny = [n for n in graph.nodes if n.meta["cost"]["flops"] < 1e4 and not n.meta["cost"]["fused"]
            and n.op not in ("Reshape", "Squeeze", "Unsqueeze")]
    assert big and all(n.meta["cost"]["est_ms"]["gpu"] < n.meta["cost"]["est_ms"]["cpu"]
                       for n in big)
    # A GPU kernel launch costs more than a tiny op on the host.
    assert tiny and all(n.meta["cost"]["est_ms"]["gpu"] > n.meta["cost"]["est_ms"]["cpu"]
                        for n in tiny)
