"""Which search space a task is tuned in: MetaSchedule's LLVM space, or that space without
parallel loops where the schedule rules found parallel code does not pay.

MetaSchedule's default space parallelises every candidate (the 64 candidates of each of the
mlp's functions all had a parallel loop) and times them alone, back to back, with the
thread pool awake. Inside a model a small kernel's fork-join lands between other kernels
and the Python call, and the rules measured that below ``PARALLEL_MIN_WORK`` multiply-adds
(``targets/llvm_cpu/schedules/features.py``) one thread is faster there. So a task whose
rule schedule is serial is searched among serial schedules only: the search then competes
with the rules on the terms the model runs them.
"""

from __future__ import annotations

from typing import Any


def has_parallel_loop(mod: Any) -> bool:
    """Whether any loop of the (scheduled) module's functions runs in parallel (TVM 0.27's
    Python API has no TIR statement visitor; the printed form names the loop kind)."""
    from tvm import tirx

    return any("T.parallel(" in func.script() for func in mod.functions.values()
               if isinstance(func, tirx.PrimFunc))


def serial_space() -> Any:
    """MetaSchedule's LLVM search space (rules, postprocessors, mutators) without parallelism:
    the same rules with ``max_jobs_per_core = -1`` and no parallel-extent mutator."""
    from tvm.s_tir import meta_schedule as ms

    rules = []
    for rule in ms.schedule_rule.ScheduleRule.create("llvm"):
        if isinstance(rule, ms.schedule_rule.ParallelizeVectorizeUnroll):
            rule = ms.schedule_rule.ParallelizeVectorizeUnroll(
                max_jobs_per_core=-1, max_vectorize_extent=int(rule.max_vectorize_extent),
                unroll_max_steps=[int(s) for s in rule.unroll_max_steps],
                unroll_explicit=bool(rule.unroll_explicit))
        elif isinstance(rule, ms.schedule_rule.AddRFactor):
            factor = rule.max_innermost_factor
            rule = ms.schedule_rule.AddRFactor(
                max_jobs_per_core=-1,
                max_innermost_factor=None if factor is None else int(factor))
        rules.append(rule)
    mutators = {m: float(p) for m, p in ms.mutator.Mutator.create("llvm").items()
                if not isinstance(m, ms.mutator.MutateParallel)}
    return ms.space_generator.PostOrderApply(sch_rules=rules, postprocs="llvm",
                                             mutator_probs=mutators)
