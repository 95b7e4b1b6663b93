"""Tuning keeps a searched record only where the whole model runs faster with it; the kept
records and every decision live in ``applied.json``, which compiles read."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import hcompile
from hcompile.errors import UsageError
from hcompile.tuning.applied import AppliedRecords, Decision, applied_path, workload_key
from hcompile.tuning.database import applying, database_fingerprint
from hcompile.tuning.tune import extract_tasks
from hcompile.tuning.validate import MARGIN, Candidate, split_search, validate
from tests.conftest import matmul_model, ort_run


def _target():
    from hcompile.targets.llvm_cpu import LLVMCPUTarget

    return LLVMCPUTarget().tvm_target()


class FakeTrials:
    """Each candidate scales the model's time by a known factor: the search's logic alone."""

    def __init__(self, factors: dict[str, float], model_s: float = 1.0) -> None:
        self.factors, self.model_s, self.tried = factors, model_s, []

    def ratio(self, group: Sequence[Candidate]) -> float:
        self.tried.append([c.name for c in group])
        return float(np.prod([self.factors[c.name] for c in group]))

    def keep(self, group: Sequence[Candidate]) -> None:
        pass


def _cand(name: str, gain_s: float | None = None) -> Candidate:
    return Candidate(name, name, None, None, gain_s)


def test_split_search_keeps_exactly_the_records_that_pay():
    trials = FakeTrials({"a": 0.9, "b": 1.2, "c": 0.95, "d": 0.97})
    decided = split_search([_cand(n) for n in "abcd"], trials)
    kept = {c.name for c, keep, _ in decided if keep}
    assert kept == {"a", "c", "d"}
    assert {c.name for c, _, _ in decided} == set("abcd")
    # all at once (0.995x: not enough), then halves: a+b (1.08x) split, c+d (0.92x) kept
    assert trials.tried == [list("abcd"), ["a", "b"], ["a"], ["b"], ["c", "d"]]
    ratios = {c.name: r for c, _, r in decided}
    assert ratios["b"] == pytest.approx(1.2) and ratios["a"] == pytest.approx(0.9)


def test_split_search_keeps_a_paying_group_whole():
    trials = FakeTrials({"a": 0.95, "b": 0.98, "c": 1.0})
    decided = split_search([_cand(n) for n in "abc"], trials)
    assert trials.tried == [["a", "b", "c"]]
    assert all(keep for _, keep, _ in decided)


def test_gains_too_small_to_measure_are_not_applied():
    """The search predicts 1 µs per run against a 1 s model: unmeasurable, so not kept,
    and never compiled."""
    trials = FakeTrials({"a": 0.5, "b": 0.5}, model_s=1.0)
    decided = split_search([_cand("a", 1e-6), _cand("b", 1e-6)], trials)
    assert trials.tried == []
    assert [(c.name, keep, ratio) for c, keep, ratio in decided] == [
        ("a", False, None), ("b", False, None)]


def _record_of(task, trace) -> object:
    """A tuning record for ``task`` holding ``trace`` (a schedule we choose)."""
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.MemoryDatabase()
    mod = task.extracted.dispatched[0]
    database.commit_tuning_record(ms.database.TuningRecord(
        trace, database.commit_workload(mod), [1e-3], _target(),
        ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
    return database.get_top_k(database.commit_workload(mod), 1)[0]


def _candidate(model: Path, *, rules: bool) -> Candidate:
    """The model's one function with the rules' schedule, or with no schedule at all."""
    from tvm import s_tir

    from hcompile.targets.llvm_cpu.schedules import CPUFeatures
    from hcompile.targets.llvm_cpu.schedules.rules import rule_schedule

    (task,) = extract_tasks(model, None, _target())
    mod = task.extracted.dispatched[0]
    if rules:
        sch = rule_schedule(mod["main"], CPUFeatures.of(_target()))
        assert sch is not None
        trace = sch.trace
    else:  # a lookup, no transformation: TVM's naive loops (a record needs an instruction)
        sch = s_tir.Schedule(mod)
        sch.get_sblock("root", func_name="main")
        trace = sch.trace
    return Candidate(task.name, workload_key(mod), mod, _record_of(task, trace), None)


def test_a_record_that_slows_the_model_is_not_applied(tmp_path: Path, isolated_cache):
    """The unscheduled matmul (tens of times slower than the rules) is measured inside the
    model and dropped; compiles keep the rules."""
    model = matmul_model(tmp_path / "mm.onnx", 64, 512, 256)
    cand = _candidate(model, rules=False)
    applied = AppliedRecords.load(_target())
    report = validate(model, None, [cand], applied, "mm")
    assert report.dropped == [cand.name] and report.kept == [] and report.compiles == 2
    decision = applied.decisions[cand.key]
    assert not decision.kept and decision.ratio is not None and decision.ratio > 1 - MARGIN
    assert applied.database() is None


def test_a_record_that_speeds_the_model_is_applied(tmp_path: Path, isolated_cache,
                                                    monkeypatch: pytest.MonkeyPatch):
    """Without the rules (HCOMPILE_CPU_SCHEDULES=0) the rules' schedule as a tuned record
    is a large win: kept, saved, and applied by a later compile, with correct numbers."""
    monkeypatch.setenv("HCOMPILE_CPU_SCHEDULES", "0")
    model = matmul_model(tmp_path / "mm.onnx", 64, 512, 256)
    cand = _candidate(model, rules=True)
    applied = AppliedRecords.load(_target())
    report = validate(model, None, [cand], applied, "mm")
    assert report.kept == [cand.name] and report.ratio is not None and report.ratio < 1.0
    before = database_fingerprint(_target())
    applied.save()
    assert database_fingerprint(_target()) != before  # compiles after this miss the cache
    reread = AppliedRecords.load(_target())
    assert reread.decisions[cand.key].kept and reread.database() is not None
    x = np.random.default_rng(1).standard_normal((64, 512)).astype(np.float32)
    got = hcompile.load(hcompile.compile(model)).run({"x": x})["y"]
    np.testing.assert_allclose(got, ort_run(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_applied_file_round_trips_and_forgets(tmp_path: Path):
    path = tmp_path / "applied.json"
    records = AppliedRecords(path)
    records.decide("1", Decision("f", "m", kept=False, ratio=1.03))
    records.decide("2", Decision("g", "m", kept=False, ratio=None))
    records.save()
    assert json.loads(path.read_text())["version"] == 1
    again = AppliedRecords.read(path)
    assert again.decisions == records.decisions
    again.forget("2")
    assert not again.decided("2") and again.decided("1") and again.kept() == {}
    assert again.database() is None  # nothing kept: compiles use the rules


def test_a_damaged_file_is_a_clear_error_for_tune_and_a_warning_for_compile(
        tmp_path: Path, isolated_cache, caplog: pytest.LogCaptureFixture):
    path = applied_path(_target())
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(UsageError) as info:
        AppliedRecords.load(_target())
    assert str(path) in info.value.message and "hcompile tune" in info.value.hint
    model = matmul_model(tmp_path / "mm.onnx", 4, 32, 16)
    with caplog.at_level(logging.WARNING, logger="hcompile"):
        exe = hcompile.load(hcompile.compile(model))
    assert "schedule rules only" in caplog.text
    x = np.ones((4, 32), np.float32)
    np.testing.assert_allclose(exe.run({"x": x})["y"], ort_run(model, {"x": x})[0],
                               rtol=1e-5, atol=1e-5)
    assert path.read_text() == "{not json"  # left for the user to look at


def test_trial_builds_stay_out_of_the_compile_cache(tmp_path: Path, isolated_cache):
    model = matmul_model(tmp_path / "mm.onnx", 4, 32, 16)
    with applying(None):
        assert database_fingerprint(_target()) is None
        hcompile.compile(model)
    assert not (isolated_cache / "compile").exists() or not any(
        (isolated_cache / "compile").rglob("entry.json"))
    hcompile.compile(model)
    assert any((isolated_cache / "compile").rglob("entry.json"))


def test_candidates_are_searched_records_that_beat_the_rules(tmp_path: Path):
    """Only the rules' record: not searched yet, no verdict. A search that found nothing
    faster: the rules are best. A faster candidate: a candidate, with the predicted gain."""
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms

    from hcompile.tuning.baseline import rule_schedules
    from hcompile.tuning.validate import find_candidates

    model = matmul_model(tmp_path / "mm.onnx", 64, 512, 256)
    (task,) = extract_tasks(model, None, _target())
    (rules,) = rule_schedules([task], _target())
    mod = task.extracted.dispatched[0]
    other = s_tir.Schedule(mod)
    other.get_sblock("root", func_name="main")

    def database(*records: tuple[object, float]) -> object:
        db = ms.database.MemoryDatabase(module_equality="structural")
        for trace, secs in records:
            db.commit_tuning_record(ms.database.TuningRecord(
                trace, db.commit_workload(mod), [secs], _target(),
                ms.arg_info.ArgInfo.from_prim_func(mod["main"])))
        return db

    assert find_candidates([task], database((rules.trace, 1e-4)), _target()) == ([], [])
    slower = database((rules.trace, 1e-4), (other.trace, 5e-4))
    assert find_candidates([task], slower, _target()) == ([], [task])
    faster = database((rules.trace, 1e-4), (other.trace, 4e-5))
    (cand,), rules_best = find_candidates([task], faster, _target())
    assert rules_best == [] and cand.gain_s == pytest.approx(6e-5, rel=1e-3)
