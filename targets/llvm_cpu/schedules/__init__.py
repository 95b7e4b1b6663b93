"""CPU schedules without tuning, and the Relax pipeline that applies them.

The pipeline is TVM's CPU pipeline with two steps added after fusion: tuned records from the
MetaSchedule database (``hcompile tune``) where there are any, then :mod:`.rules` for every
function still unscheduled.
"""

from __future__ import annotations

from typing import Any

import tvm
from tvm import relax, tirx

from hcompile.targets.llvm_cpu.fast_math import FastMath
from hcompile.targets.llvm_cpu.schedules.features import CPUFeatures
from hcompile.targets.llvm_cpu.schedules.rules import schedule_prim_func

__all__ = ["CPUFeatures", "ScheduleCPU", "cpu_pipeline", "pre_schedule_passes",
           "schedule_prim_func"]


@tvm.transform.module_pass(opt_level=0, name="hcompile.ScheduleCPU")
class ScheduleCPU:
    """Apply the CPU schedule rules to every PrimFunc not scheduled yet."""

    def __init__(self, features: CPUFeatures) -> None:
        self.features = features

    def transform_module(self, mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        updates = {}
        for gvar, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc):
                continue
            if func.attrs is not None and func.attrs.get("tirx.is_scheduled", False):
                continue
            scheduled = schedule_prim_func(func, self.features)
            if scheduled is not None:
                updates[gvar] = scheduled.with_attr("tirx.is_scheduled", True)
        for gvar, func in updates.items():
            mod[gvar] = func
        return mod


def pre_schedule_passes(target: tvm.target.Target, features: CPUFeatures, *,
                        layouts: bool, blocked_convs: bool) -> list[tvm.transform.Pass]:
    """Everything the CPU pipeline does before scheduling. ``hcompile tune`` extracts its
    tasks after exactly these, so a record's workload is the function a compile looks up
    (run inside ``with target``). ``layouts``: the schedules' weight layouts (padded dense
    columns, and blocked convs if ``blocked_convs``)."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

    from hcompile.targets.llvm_cpu.layout import layout_passes

    return ([FastMath()]  # erf/tanh/sigmoid: else a libm call per element
            + cpu_generic.library_dispatch_passes(target)
            + (layout_passes(features, blocked_convs=blocked_convs) if layouts else [])
            + cpu_generic.legalize_passes(target))


def cpu_pipeline(target: tvm.target.Target, *, schedules: bool = True,
                 database: Any = None, blocked_convs: bool = True) -> tvm.transform.Pass:
    """TVM's CPU pipeline plus tuned records (``database``) and the schedule rules;
    ``blocked_convs``: convs in blocked layouts (:mod:`..layout`, part of the schedules)."""
    from tvm.relax.backend.cpu_generic import pipeline as cpu_generic

    features = CPUFeatures.of(target)

    @tvm.transform.module_pass(opt_level=0, name="hcompile.CPUPipeline")
    def _pipeline(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        with target:
            # Built inside the target context: MetaScheduleApplyDatabase reads it when made.
            scheduling: list[tvm.transform.Pass] = []
            if database is not None:
                scheduling.append(relax.transform.MetaScheduleApplyDatabase(
                    enable_warning=False))
            if schedules:
                scheduling.append(ScheduleCPU(features))
            passes = (pre_schedule_passes(target, features, layouts=schedules,
                                          blocked_convs=blocked_convs)
                      + scheduling
                      + cpu_generic.dataflow_lower_passes(target)
                      + cpu_generic.finalize_passes(target))
            if database is not None:
                with database:
                    return tvm.transform.Sequential(passes)(mod)
            return tvm.transform.Sequential(passes)(mod)

    return _pipeline
