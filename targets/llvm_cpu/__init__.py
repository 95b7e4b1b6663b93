"""The ``cpu`` target: TVM's LLVM backend for the host CPU, code as a Relax VM shared library."""

from __future__ import annotations

import os

import tvm

from hcompile.targets.base import Target
from hcompile.targets.registry import register_target


@register_target("cpu")
class LLVMCPUTarget(Target):
    device = "cpu"

    def __init__(self, mcpu: str | None = None, num_cores: int | None = None) -> None:
        # HCOMPILE_CPU overrides the detected CPU, e.g. to build for an older serving host.
        self.mcpu = mcpu or os.environ.get("HCOMPILE_CPU") or \
            tvm.target.codegen.llvm_get_system_cpu()
        self.num_cores = num_cores or os.cpu_count() or 1

    def tvm_target(self) -> tvm.target.Target:
        return tvm.target.Target({"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.num_cores})
