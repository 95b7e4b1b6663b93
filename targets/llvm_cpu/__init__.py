"""The ``cpu`` target: TVM's LLVM backend for the host CPU, code as a Relax VM shared library.

Code is scheduled by :mod:`.schedules` (rules, no tuning) and by tuned records from
``hcompile tune`` where the tuning database has them. ``HCOMPILE_CPU_SCHEDULES=0`` turns the
rules off (TVM's unscheduled code, for comparisons); ``HCOMPILE_CPU_BLOCKED_CONV=0`` only the
blocked-layout convs (:mod:`.layout`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import tvm

from hcompile.runtime.tvm_cpu import configure_thread_pool, physical_cores
from hcompile.targets.base import Target
from hcompile.targets.llvm_cpu.schedules import cpu_pipeline
from hcompile.targets.registry import register_target

log = logging.getLogger("hcompile")

#: How the Relax VM runs ``main``: its instructions compiled to machine code.
EXEC_MODE = "compiled"


@register_target("cpu")
class LLVMCPUTarget(Target):
    device = "cpu"

    def __init__(self, mcpu: str | None = None, num_cores: int | None = None) -> None:
        configure_thread_pool()
        # HCOMPILE_CPU overrides the detected CPU, e.g. to build for an older serving host.
        self.mcpu = mcpu or os.environ.get("HCOMPILE_CPU") or \
            tvm.target.codegen.llvm_get_system_cpu()
        self.num_cores = num_cores or physical_cores()
        self.schedules = os.environ.get("HCOMPILE_CPU_SCHEDULES", "1") != "0"
        self.blocked_convs = os.environ.get("HCOMPILE_CPU_BLOCKED_CONV", "1") != "0"

    def tvm_target(self) -> tvm.target.Target:
        return tvm.target.Target({"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.num_cores})

    def relax_pipeline(self, target: tvm.target.Target) -> Any:
        from hcompile.tuning.database import open_database

        return cpu_pipeline(target, schedules=self.schedules, database=open_database(target),
                            blocked_convs=self.blocked_convs)

    def _compile(self, module: tvm.IRModule, target: tvm.target.Target) -> Any:
        # The Relax VM's functions compiled to machine code (``exec_mode="compiled"``) rather
        # than interpreted bytecode: the VM's per-instruction work (~0.1 µs each; an LSTM step
        # is ~10 instructions) was a third of small models' time (lstm batch 1: 67 -> 50 µs).
        from tvm import relax

        try:
            return relax.build(module, target, relax_pipeline=self.relax_pipeline(target),
                               exec_mode=EXEC_MODE)
        except Exception as err:  # TVM raises its own error types with C++ context
            if not self.schedules:
                raise
            log.warning("cpu code generation failed (%s); compiling that partition again "
                        "without schedules (slower code)", str(err).splitlines()[0][:200])
            return relax.build(module, target, relax_pipeline=self.fallback_pipeline(target),
                               exec_mode=EXEC_MODE)

    def fallback_pipeline(self, target: tvm.target.Target) -> Any:
        # A schedule that TVM's code generator rejects must cost speed, never the compile.
        return cpu_pipeline(target, schedules=False) if self.schedules else None

    def cache_flags(self) -> dict[str, Any] | None:
        from hcompile.tuning.database import database_fingerprint

        tuned = database_fingerprint(self.tvm_target())
        if tuned is None:  # records under trial (hcompile tune): not worth caching
            return None
        return {"schedules": self.schedules, "blocked_convs": self.blocked_convs,
                "exec_mode": EXEC_MODE, "tuned": tuned}
