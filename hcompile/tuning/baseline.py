"""The schedule rules as the search's baseline: timed like candidates, stored as records.

Each task's rule schedule (:func:`hcompile.targets.llvm_cpu.schedules.rules.rule_schedule`) is
built and timed by the same builder and runner as the search's candidates and committed with
its trace, so the search database's best record for a workload is the rules' schedule unless
the search found a faster one. Rule schedules are built in batches: every builder call starts
a pool of processes that import TVM (about 20 s per call here), which one call per task paid
again and again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("hcompile")


def rule_schedules(tasks: Sequence[Any], target: Any) -> list[Any]:
    """The rules' schedule of each task (a ``tvm.s_tir.Schedule``; None where no rule
    applies)."""
    from hcompile.targets.llvm_cpu.schedules import CPUFeatures
    from hcompile.targets.llvm_cpu.schedules.rules import rule_schedule

    features = CPUFeatures.of(target)
    return [rule_schedule(t.extracted.dispatched[0]["main"], features) for t in tasks]


def record_rule_schedules(tasks: Sequence[Any], schedules: Sequence[Any], target: Any,
                          database: Any, builder: Any, runner: Any) -> None:
    """Build and time the rule schedules of ``tasks`` in one batch; commit them as records."""
    from tvm.s_tir import meta_schedule as ms

    todo = [(task, sch) for task, sch in zip(tasks, schedules, strict=True) if sch is not None]
    if not todo:
        return
    built = builder.build([ms.builder.BuilderInput(sch.mod, target) for _, sch in todo])
    runs = []
    for (task, sch), result in zip(todo, built, strict=True):
        if result.error_msg:
            log.warning("tune: the rule schedule of %s did not build: %s", task.name,
                        result.error_msg.splitlines()[0])
            continue
        args_info = ms.arg_info.ArgInfo.from_prim_func(sch.mod["main"])
        runs.append((task, sch, args_info,
                     ms.runner.RunnerInput(result.artifact_path, "cpu", args_info)))
    futures = runner.run([run[3] for run in runs])
    for (task, sch, args_info, _), future in zip(runs, futures, strict=True):
        result = future.result()
        if result.error_msg or not result.run_secs:
            log.warning("tune: the rule schedule of %s did not run: %s", task.name,
                        (result.error_msg or "no time").strip().splitlines()[-1])
            continue
        run_secs = [float(t) for t in result.run_secs]
        mod = task.extracted.dispatched[0]
        database.commit_tuning_record(ms.database.TuningRecord(
            sch.trace, database.commit_workload(mod), run_secs, target, args_info))
        log.info("tune: %s with the rules: %.1f us", task.name, 1e6 * min(run_secs))


def trace_key(trace: Any) -> str:
    """A trace as comparable text (a record's trace after the database's JSON round trip
    equals the original's)."""
    import tvm

    return str(tvm.ir.save_json(trace.as_json()))


def searched(database: Any, mod: Any, rules: Any) -> bool:
    """Whether the search database has a record for ``mod`` other than the rules' own (a
    task whose rule schedule was recorded but whose search never ran is not searched)."""
    if not database.has_workload(mod):
        return False
    records = database.get_top_k(database.commit_workload(mod), 1 << 16)
    if rules is None:
        return len(records) > 0
    key = trace_key(rules.trace)
    return any(trace_key(r.trace) != key for r in records)
