"""passes/place.py and hcompile.plan: placement by cost, overrides, reasons, partitions and the
plan JSON; placements of the zoo under different device profiles."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hcompile.devices import DeviceSet, load_devices
from hcompile.errors import UsageError
from hcompile.ir import Graph, Node, TensorType, verify
from hcompile.passes import PassOptions, place, run_pipeline
from hcompile.plan import build_partitions, plan_json, subgraph

T = TensorType((2,), "float32")


def _graph() -> Graph:
    return Graph("g", {"x": T}, ["y", "h"], [
        Node("Add", "a", ["x", "c"], ["h"], output_types=[T], opset=17),
        Node("Relu", "b", ["h"], ["r"], output_types=[T], opset=17),
        Node("Neg", "c", ["r"], ["y"], output_types=[T], opset=17),
    ], constants={"c": np.ones(2, np.float32)})


def devices(tmp_path: Path, text: str = "") -> DeviceSet:
    """Built-in profiles with the uncalibrated host (tests must not depend on this machine)."""
    path = tmp_path / "devices.toml"
    path.write_text('[cpu]\nbase = "host-generic"\n' + text)
    return load_devices(path)


def test_single_target_places_everything_in_one_partition():
    g = _graph()
    assert place.run(g, PassOptions(targets=["cpu"])) is True
    assert {n.meta["target"] for n in g.nodes} == {"cpu"}
    assert {n.meta["reason"] for n in g.nodes} == {"single target"}
    assert place.run(g, PassOptions(targets=["cpu"])) is False
    (part,) = build_partitions(g)
    assert part.inputs == ["x"] and part.outputs == ["h", "y"]
    sub = subgraph(g, part)
    assert list(sub.inputs) == ["x"] and set(sub.constants) == {"c"}


def test_partition_boundaries_between_two_partitions():
    g = _graph()
    place.run(g, PassOptions())
    g.nodes[2].meta["partition"] = 1
    first, second = build_partitions(g)
    assert first.outputs == ["h", "r"]  # h is a model output, r feeds partition 1
    assert second.inputs == ["r"] and second.outputs == ["y"]


def test_partitions_out_of_order_are_refused():
    g = _graph()
    place.run(g, PassOptions())
    g.nodes[0].meta["partition"] = 1
    g.nodes[1].meta["partition"] = 0
    g.nodes[2].meta["partition"] = 1
    with pytest.raises(ValueError, match="reads \\['r'\\] before any earlier partition"):
        build_partitions(g)


def test_place_overrides_match_names_and_op_types_last_rule_wins(tmp_path):
    g = _graph()
    rules = ["*=gpu", "Relu=fpga", "c=cpu"]
    options = PassOptions(targets=["cpu", "gpu", "fpga"],
                          extra={"devices": devices(tmp_path), "place": rules})
    place.run(g, options)
    assert {n.name: n.meta["target"] for n in g.nodes} == {"a": "gpu", "b": "fpga", "c": "cpu"}
    assert {n.meta["reason"] for n in g.nodes} == {"override"}
    assert g.node("b").meta["reason_detail"] == "--place Relu=fpga"
    assert [p.target for p in build_partitions(g)] == ["gpu", "fpga", "cpu"]


@pytest.mark.parametrize("rule, message", [
    ("Relu=gpu", "not among --targets"),
    ("Relu", "expected NODE_GLOB=TARGET"),
])
def test_bad_place_rules_are_user_errors(rule, message):
    with pytest.raises(UsageError, match=message):
        place.run(_graph(), PassOptions(targets=["cpu", "fpga"], extra={"place": [rule]}))


def test_unsupported_ops_stay_on_the_cpu_and_cannot_be_forced(tmp_path):
    text = '[gpu]\nbase = "nvidia-h100"\nunsupported_ops = ["Relu"]\n'
    g = _graph()
    options = PassOptions(targets=["cpu", "gpu"], extra={"devices": devices(tmp_path, text),
                                                         "place": ["*=gpu", "b=cpu"]})
    place.run(g, options)
    relu = g.node("b")
    assert relu.meta["target"] == "cpu"
    with pytest.raises(UsageError, match="node b \\(Relu\\) cannot run on gpu"):
        place.run(_graph(), PassOptions(targets=["cpu", "gpu"], extra={
            "devices": devices(tmp_path, text), "place": ["Relu=gpu"]}))
    # Only the gpu allowed: the node the gpu cannot run still goes to the cpu, by name.
    g = _graph()
    place.run(g, PassOptions(targets=["gpu"], extra={"devices": devices(tmp_path, text)}))
    assert g.node("b").meta["target"] == "cpu" and g.node("b").meta["reason"] == "unsupported"
    assert "Relu is listed as unsupported" in g.node("b").meta["reason_detail"]
    assert {g.node("a").meta["target"], g.node("c").meta["target"]} == {"gpu"}


def _zoo(zoo_path, name: str, targets: list[str], devs: DeviceSet,
         shapes: dict[str, tuple[int, ...]] | None = None,
         **extra: object) -> tuple[Graph, PassOptions]:
    from hcompile.frontend import import_model

    graph, _ = import_model(zoo_path(name), shapes)
    options = PassOptions(targets=targets, verify=True, extra={"devices": devs, **extra})
    run_pipeline(graph, options)
    return graph, options


HEAVY = ("Conv", "MatMul", "Gemm")
# The built-in U250's generic 64-lane kernels (~38 GFLOP/s each) lose every convolution to
# the built-in host (a calibration of a Zen 5 core pair); the FPGA placement tests pair the
# card with a modest host CPU (1/12 of that peak) where the FPGA pays for its convolutions.
MODEST_HOST = "peak_flops = {float32 = 6e10}\n"


@pytest.mark.parametrize("name, shapes", [
    ("resnet18", None), ("mobilenetv2", None),
    # at batch 1 the attention's 16x16 products are launch-bound: the CPU keeps them
    ("transformer", {"x": (4, 16, 256)})])
def test_with_an_h100_convolutions_and_matmuls_go_to_the_gpu(zoo_path, tmp_path, name, shapes):
    devs = devices(tmp_path, '[gpu]\nbase = "nvidia-h100"\n')
    graph, options = _zoo(zoo_path, name, ["cpu", "gpu"], devs, shapes)
    heavy = [n for n in graph.nodes if n.op in HEAVY]
    assert heavy and all(n.meta["target"] == "gpu" for n in heavy)
    summary = options.extra["plan_summary"]
    assert summary.predicted_ms < summary.single_device_ms["cpu"]


@pytest.mark.parametrize("name", ["mlp", "lenet5", "lstm"])
def test_with_a_slow_link_small_models_stay_on_the_cpu(zoo_path, tmp_path, name):
    slow = devices(tmp_path, '[gpu]\nbase = "nvidia-h100"\nlink = "slow-link"\n')
    graph, options = _zoo(zoo_path, name, ["cpu", "gpu"], slow)
    assert {n.meta["target"] for n in graph.nodes} == {"cpu"}
    summary = options.extra["plan_summary"]
    assert summary.predicted_ms == summary.single_device_ms["cpu"]
    assert summary.single_device_ms["gpu"] > summary.single_device_ms["cpu"]


def test_the_same_small_model_goes_to_the_gpu_over_a_fast_link(zoo_path, tmp_path):
    # lenet5 at batch 64: ~4x faster on the H100 over its own (fast) link, ~1.5x slower over
    # the slow link (at small batches the CPU's dense schedules win over either link).
    batch = {"x": (64, 1, 28, 28)}
    fast = devices(tmp_path, '[gpu]\nbase = "nvidia-h100"\n')
    graph, options = _zoo(zoo_path, "lenet5", ["cpu", "gpu"], fast, batch)
    heavy = [n for n in graph.nodes if n.op in HEAVY]
    assert heavy and all(n.meta["target"] == "gpu" for n in heavy)
    summary = options.extra["plan_summary"]
    assert summary.predicted_ms < summary.single_device_ms["cpu"]
    slow = devices(tmp_path, '[gpu]\nbase = "nvidia-h100"\nlink = "slow-link"\n')
    graph, options = _zoo(zoo_path, "lenet5", ["cpu", "gpu"], slow, batch)
    assert {n.meta["target"] for n in graph.nodes} == {"cpu"}
    summary = options.extra["plan_summary"]
    assert summary.single_device_ms["gpu"] > summary.single_device_ms["cpu"]


def test_a_small_fpga_holds_only_what_fits(zoo_path, tmp_path):
    small = devices(tmp_path, MODEST_HOST + '[fpga]\nbase = "alveo-u250"\n'
                                            'fpga = {dsp = 1500, lut = 200000, bram = 300}\n')
    graph, options = _zoo(zoo_path, "resnet18", ["cpu", "fpga"], small)
    summary = options.extra["plan_summary"]
    problem, solution = summary.problem, summary.solution
    fpga = problem.devices.index("fpga")
    used = problem.usage(solution.assign, fpga)
    assert np.all(used <= problem.budgets[fpga] + 1e-6)
    assert used.max() > 0  # it does use the FPGA
    reasons = Counter(n.meta["reason"] for n in graph.nodes)
    assert reasons["resource limit"] > 0
    limited = next(n for n in graph.nodes if n.meta["reason"] == "resource limit")
    assert limited.meta["target"] == "cpu" and "budget" in limited.meta["reason_detail"]
    # The same model on the whole U250 puts more convolutions on the FPGA, none held back.
    graph_big, _ = _zoo(zoo_path, "resnet18", ["cpu", "fpga"],
                        devices(tmp_path, MODEST_HOST + '[fpga]\nbase = "alveo-u250"\n'))

    def convs_on_fpga(g: Graph) -> int:
        return sum(1 for n in g.nodes if n.op == "Conv" and n.meta["target"] == "fpga")

    assert convs_on_fpga(graph_big) > convs_on_fpga(graph)
    assert "resource limit" not in {n.meta["reason"] for n in graph_big.nodes}


def test_partitions_are_consecutive_runs_in_execution_order(zoo_path, tmp_path):
    u250 = devices(tmp_path, MODEST_HOST + '[fpga]\nbase = "alveo-u250"\n')
    graph, options = _zoo(zoo_path, "mobilenetv2", ["cpu", "fpga"], u250)
    verify(graph)
    ids = [n.meta["partition"] for n in graph.nodes]
    assert ids == sorted(ids) and ids[0] == 0  # contiguous, numbered in order
    parts = build_partitions(graph)
    assert len(parts) == len(set(ids)) > 1
    for part in parts:
        assert {graph.node(n).meta["partition"] for n in part.nodes} == {part.id}
        assert {graph.node(n).meta["target"] for n in part.nodes} == {part.target}
    assert [p["nodes"] for p in options.extra["plan_summary"].partitions] == \
        [p.nodes for p in parts]


def test_plan_json_has_the_design_fields(zoo_path, tmp_path):
    devs = devices(tmp_path, '[fpga]\nbase = "alveo-u250"\n')
    graph, options = _zoo(zoo_path, "resnet18", ["cpu", "fpga"], devs, partitioner="heft")
    parts = build_partitions(graph)
    plan = json.loads(json.dumps(plan_json(graph, parts, options.extra["plan_summary"])))
    assert plan["partitioner"] == "heft" and plan["solve_ms"] > 0
    assert set(plan["single_device_ms"]) == {"cpu", "fpga"}
    assert plan["predicted_ms"] <= max(plan["single_device_ms"].values())
    assert len(plan["partitions"]) == len(parts) > 1
    for p in plan["partitions"]:
        assert p["flops"] >= 0 and p["est_ms"] > 0 and p["end_ms"] >= p["start_ms"]
    assert plan["transfers"]
    for t in plan["transfers"]:
        assert t["bytes"] > 0 and t["est_ms"] > 0 and t["src_target"] != t["dst_target"]
        assert t["src"] == -1 or plan["partitions"][t["src"]]["target"] == t["src_target"]
    for n in plan["nodes"]:
        assert n["reason"] in ("cost", "resource limit", "unsupported", "override")
        assert n["target"] in n["est_ms"]


def test_plan_json_resimulates_when_codegen_moves_a_partition(zoo_path, tmp_path):
    devs = devices(tmp_path, '[gpu]\nbase = "nvidia-h100"\n')
    graph, options = _zoo(zoo_path, "resnet18", ["cpu", "gpu"], devs)
    parts = build_partitions(graph)
    before = plan_json(graph, parts, options.extra["plan_summary"])
    (only,) = parts
    only.target = "cpu"  # as the compiler does when the gpu cannot compile a partition
    after = plan_json(graph, parts, options.extra["plan_summary"])
    assert after["partitions"][0]["target"] == "cpu"
    assert after["predicted_ms"] > 20 * before["predicted_ms"]  # the H100 is ~50x faster
    assert after["notes"]["moved_after_placement"] == [0]


@pytest.mark.parametrize("partitioner", ["single", "greedy", "dp", "heft", "auto"])
def test_every_partitioner_runs_on_the_zoo(zoo_path, tmp_path, partitioner):
    graph, options = _zoo(zoo_path, "lenet5", ["cpu", "gpu", "fpga"], devices(tmp_path),
                          partitioner=partitioner)
    assert options.extra["plan_summary"].partitioner == partitioner
    assert all("target" in n.meta for n in graph.nodes)


def test_unknown_partitioner_is_a_user_error():
    with pytest.raises(UsageError, match="unknown partitioner 'magic'"):
        place.run(_graph(), PassOptions(extra={"partitioner": "magic"}))


@pytest.mark.slow  # compiles and runs: a cpu partition and an fpga partition (PoCL)
def test_a_mixed_cpu_fpga_plan_compiles_and_runs(zoo_path, tmp_path, monkeypatch,
                                                isolated_cache):
    import hcompile
    import hcompile.compiler
    from tests.conftest import ort_run

    real = hcompile.compiler.PassOptions

    def options(**kwargs: object) -> PassOptions:
        made = real(**kwargs)
        made.extra.update(devices=devices(tmp_path), place=["MatMul=fpga", "Softmax=cpu"])
        return made

    monkeypatch.setattr(hcompile.compiler, "PassOptions", options)
    path = zoo_path("mlp")
    art = hcompile.compile(path, targets=["cpu", "fpga"])
    targets = [p["target"] for p in art.manifest["plan"]["partitions"]]
    assert "fpga" in targets and "cpu" in targets
    x = np.random.default_rng(0).random((1, 784)).astype(np.float32)
    (got,) = hcompile.load(art).run({"x": x}).values()
    (want,) = ort_run(path, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_without_cpu_in_targets_what_overflows_the_fpga_spills_to_the_cpu(zoo_path,
                                                                         tmp_path, caplog):
    # The only target: the CPU is still underneath, and takes what does not fit.
    tiny = devices(tmp_path, '[fpga]\nbase = "alveo-u250"\nfpga = {dsp = 500, lut = 100000}\n')
    for partitioner in ("single", "greedy", "dp", "heft", "exhaustive", "auto"):
        caplog.clear()
        graph, options = _zoo(zoo_path, "lenet5", ["fpga"], tiny, partitioner=partitioner)
        summary = options.extra["plan_summary"]
        problem, assign = summary.problem, summary.solution.assign
        assert problem.fits(assign), partitioner
        spilled = [n for n in graph.nodes if n.meta["target"] == "cpu"]
        assert spilled and {n.meta["reason"] for n in spilled} == {"resource limit"}
        assert all(n.meta["reason_detail"].startswith("would not fit fpga (")
                   for n in spilled)
        # Each spilled node was needed on the CPU: none of them fits what is left.
        fpga = problem.devices.index("fpga")
        used = problem.usage(assign, fpga)
        for n in spilled:
            v = problem.names.index(n.name)
            assert np.any(used + problem.resources[fpga][v] > problem.budgets[fpga]), n.name
        assert any(n.meta["target"] == "fpga" for n in graph.nodes)
        assert summary.predicted_ms < 1e3  # the penalty steers, it is not reported
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "fpga (alveo-u250): the model needs" in warnings[0]
    # With the CPU allowed, a pinned node still goes there, and nothing else joins it.
    graph, options = _zoo(zoo_path, "lenet5", ["cpu", "fpga"], tiny,
                          place=["/features/features.0/Conv=fpga"])
    on_fpga = [n.name for n in graph.nodes if n.meta["target"] == "fpga"]
    assert on_fpga == ["/features/features.0/Conv"]
    summary = options.extra["plan_summary"]
    assert summary.problem.fits(summary.solution.assign)
