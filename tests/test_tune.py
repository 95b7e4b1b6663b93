"""``hcompile tune``: task extraction, the time budget, the persistent database, and that a
later compile picks tuned records up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import hcompile
from hcompile.tuning.applied import AppliedRecords, workload_key
from hcompile.tuning.database import database_dir, has_records
from hcompile.tuning.space import has_parallel_loop, serial_space
from hcompile.tuning.tune import extract_tasks, tune_model
from tests.conftest import hcompile_cli, matmul_model, ort_run


def _target():
    from hcompile.targets.llvm_cpu import LLVMCPUTarget

    return LLVMCPUTarget().tvm_target()


def test_tasks_are_the_distinct_functions_biggest_first(zoo_path):
    tasks = extract_tasks(zoo_path("mlp"), None, _target())
    names = [t.name for t in tasks]
    assert len(names) == len(set(names)) >= 2
    assert names[0] == "fused_matmul_add_relu"  # 784x100: by far the most work
    work = [t.flops * t.weight for t in tasks]
    assert work == sorted(work, reverse=True)


def test_hand_scheduled_kernels_are_not_tasks(zoo_path):
    """The fused LSTM recurrence is written scheduled: it is no MetaSchedule task."""
    names = [t.name for t in extract_tasks(zoo_path("lstm"), {"x": (2, 20, 32)}, _target())]
    assert names and not any("lstm_recurrence" in n for n in names)
    assert any("matmul" in n for n in names)  # the input projections still are


def test_tasks_are_the_functions_a_compile_schedules(zoo_path):
    """Tasks come from the compile's own pre-scheduling passes: the transformer's GELU is
    the fast erf there (FastMath), so its task must be too, or no record would ever match."""
    tasks = extract_tasks(zoo_path("transformer"), None, _target())
    gelu = [t for t in tasks if "erf" in t.extracted.dispatched[0].script()
            or "fast_math" in t.extracted.dispatched[0].script()]
    assert gelu
    assert all("T.erf(" not in t.extracted.dispatched[0].script() for t in gelu)


def test_load_time_functions_are_not_tasks(zoo_path):
    """Weight padding and packing run once, at load (main_transform_params): not tasks."""
    names = [t.name for t in extract_tasks(zoo_path("mlp"), {"x": (16, 784)}, _target())]
    assert len(names) == 3 and not any("pad" in n for n in names), names
    resnet = [t.name for t in extract_tasks(zoo_path("resnet18"), None, _target())]
    assert not any("rsqrt" in n for n in resnet)  # batch-norm folding of the weights


def test_budget_exhausted_tunes_nothing(zoo_path, isolated_cache):
    report = tune_model(zoo_path("mlp"), trials=2, minutes=1e-6)
    assert report.tuned == [] and len(report.skipped_budget) >= 2


def test_bad_budget_is_a_user_error(zoo_path, isolated_cache):
    from hcompile.errors import UsageError

    with pytest.raises(UsageError):
        tune_model(zoo_path("mlp"), trials=0)


@pytest.mark.slow
def test_tune_then_compile_uses_the_records(tmp_path: Path, isolated_cache):
    """A real (small) MetaSchedule run: records persist per target and are applied."""
    model = matmul_model(tmp_path / "mm.onnx")
    progress: list[tuple[int, int]] = []
    report = tune_model(model, trials=2, progress=lambda d, t, *_: progress.append((d, t)))
    assert report.tuned and progress[-1][0] == progress[-1][1]
    assert report.database == database_dir(_target())
    assert report.database.is_relative_to(isolated_cache)
    assert has_records(_target())
    # The compile-cache key follows the database, and the tuned code is still correct.
    x = np.random.default_rng(1).standard_normal((4, 32)).astype(np.float32)
    got = hcompile.load(hcompile.compile(model)).run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(model, {"x": x})[0], rtol=1e-4, atol=1e-5)
    # Every searched workload is decided: kept (faster in the model) or the rules.
    (task,) = extract_tasks(model, None, _target())
    decisions = AppliedRecords.load(_target()).decisions
    key = workload_key(task.extracted.dispatched[0])
    assert key in decisions and decisions[key].model == "mm"
    check = report.validation
    assert sorted(check.kept + check.dropped + check.rules_best) == [task.name]
    # Tuning again skips what the database has and what is decided, unless asked to retune.
    again = tune_model(model, trials=2)
    assert again.tuned == [] or again.skipped_known == []  # failed runs are not "known"
    if again.tuned == []:
        assert again.validation.compiles == 0 and not again.validation.rules_best


def test_cli_tune_reports_progress_and_database(tmp_path: Path, isolated_cache):
    model = matmul_model(tmp_path / "mm.onnx")
    result = hcompile_cli("tune", str(model), "--trials", "2", "--minutes", "0.000001")
    assert result.returncode == 0, result.stderr
    assert "database:" in result.stdout and "left for lack of time" in result.stdout
    result = hcompile_cli("tune", str(tmp_path / "missing.onnx"))
    assert result.returncode == 2


@pytest.mark.slow
def test_cli_tune_reports_what_it_kept(tmp_path: Path, isolated_cache):
    """A full (one-trial) tune from the command line says what became of the search, and
    MetaSchedule's own logs stay off the console for every task, not just the first."""
    w = np.random.default_rng(0).standard_normal((256, 128)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]),
         helper.make_node("Softmax", ["h"], ["y"], axis=1)], "mm_softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 128])],
        [numpy_helper.from_array(w, "w")])
    model = tmp_path / "mm_softmax.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model)
    result = hcompile_cli("tune", str(model), "--trials", "1", "-q")
    assert result.returncode == 0, result.stderr
    assert "tuned 2 operator(s)" in result.stdout, result.stdout
    verdicts = [line for line in result.stdout.splitlines()
                if "made the whole model faster" in line or "keep the schedule rules" in line]
    assert verdicts, result.stdout
    assert (database_dir(_target()) / "applied.json").is_file()
    assert "task_scheduler" not in result.stdout and "XGB" not in result.stdout


@pytest.mark.slow
def test_the_rule_schedule_is_a_measured_record(tmp_path: Path, isolated_cache):
    """Tuning stores the rules' own schedule, timed like a candidate: the database's best
    record is never slower than the code a compile without tuning would make."""
    import tvm
    import tvm_ffi
    from tvm import s_tir

    from hcompile.targets.llvm_cpu.schedules import CPUFeatures
    from hcompile.targets.llvm_cpu.schedules.rules import rule_schedule
    from hcompile.tuning.database import open_search_database

    model = matmul_model(tmp_path / "mm.onnx")
    report = tune_model(model, trials=2)
    database = open_search_database(_target())
    task = extract_tasks(model, None, _target())[0]
    mod = task.extracted.dispatched[0]
    records = database.get_top_k(database.commit_workload(mod), 100)
    assert records and all(r.run_secs for r in records)
    rule = rule_schedule(mod["main"], CPUFeatures.of(_target()))
    assert rule is not None

    def replayed(record) -> tvm.IRModule:
        sch = s_tir.Schedule(mod)
        record.trace.apply_to_schedule(sch, remove_postproc=False)
        return sch.mod

    assert any(tvm_ffi.structural_equal(replayed(r), rule.mod) for r in records)
    # 4x32x16 is far below the rules' parallel threshold: the search stayed serial too
    assert report.serial == [task.name]
    assert len(records) > 1 and not any(has_parallel_loop(replayed(r)) for r in records)


def test_search_is_serial_where_the_rules_are(tmp_path: Path):
    """Small functions: serial rule schedule; big ones: parallel (the space follows them)."""
    from hcompile.targets.llvm_cpu.schedules import CPUFeatures
    from hcompile.targets.llvm_cpu.schedules.rules import rule_schedule

    features = CPUFeatures.of(_target())
    for (rows, k, n), parallel in [((4, 32, 16), False), ((256, 1024, 512), True)]:
        model = matmul_model(tmp_path / f"mm{rows}.onnx", rows, k, n)
        mod = extract_tasks(model, None, _target())[0].extracted.dispatched[0]
        rules = rule_schedule(mod["main"], features)
        assert rules is not None
        assert has_parallel_loop(rules.mod) is (parallel and features.cores > 1)


def test_serial_space_has_no_parallel_rule_or_mutator():
    from tvm.s_tir import meta_schedule as ms

    space = serial_space()
    rules = {type(r).__name__: r for r in space.sch_rules}
    assert int(rules["ParallelizeVectorizeUnroll"].max_jobs_per_core) == -1
    assert int(rules["AddRFactor"].max_jobs_per_core) == -1
    assert "MultiLevelTiling" in rules  # the rest of MetaSchedule's space is kept
    assert not any(isinstance(m, ms.mutator.MutateParallel) for m in space.mutator_probs)
    assert any(isinstance(m, ms.mutator.MutateTileSize) for m in space.mutator_probs)


def test_a_task_with_only_its_rules_record_is_not_searched(tmp_path: Path):
    """Rule schedules are recorded in batches ahead of the search; one whose search never
    ran (the time budget ended) must be searched by the next tune, not skipped as known."""
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    from hcompile.tuning.baseline import rule_schedules, searched

    model = matmul_model(tmp_path / "mm.onnx", 64, 256, 128)
    (task,) = extract_tasks(model, None, _target())
    (rules,) = rule_schedules([task], _target())
    mod = task.extracted.dispatched[0]
    database = ms.database.MemoryDatabase(module_equality="structural")
    assert not searched(database, mod, rules)

    def commit(trace) -> None:
        database.commit_tuning_record(ms.database.TuningRecord(
            trace, database.commit_workload(mod), [1e-5], _target(),
            ms.arg_info.ArgInfo.from_prim_func(mod["main"])))

    commit(rules.trace)
    assert not searched(database, mod, rules)
    other = s_tir.Schedule(mod)
    other.get_sblock("root", func_name="main")
    commit(other.trace)  # a search candidate
    assert searched(database, mod, rules)
