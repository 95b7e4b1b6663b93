"""The ``fpga`` target: TVM's OpenCL C with GPU-style schedules, made FPGA-friendly.

Code: OpenCL C 1.2 source (``partitions/<id>/fpga.cl``, format ``opencl-plan``) with a fixed
``reqd_work_group_size`` on every kernel, and the launch plan in the code entry
(``plan``). With a vendor compiler (``HCOMPILE_FPGA_COMPILER=aoc|v++`` and
``HCOMPILE_FPGA_BOARD``; the CLI's ``--fpga-compiler``), a board binary comes first
(format ``opencl-binary-plan``). The runtime (``hcompile.runtime.opencl_runner``) runs
either on any OpenCL device; PoCL on the CPU is the emulator.
"""

from __future__ import annotations

import os

import tvm

from hcompile.targets.base import CodeBlob
from hcompile.targets.launch_plan import DeviceBuild, LaunchPlanTarget
from hcompile.targets.opencl_fpga.board import BINARY_KINDS, board_binary
from hcompile.targets.opencl_fpga.profile import FpgaProfile
from hcompile.targets.opencl_fpga.source import fpga_source
from hcompile.targets.registry import register_target

__all__ = ["FpgaProfile", "OpenCLFpgaTarget"]


@register_target("fpga")
class OpenCLFpgaTarget(LaunchPlanTarget):
    device = "fpga"

    def __init__(self, profile: FpgaProfile | None = None) -> None:
        self.profile = profile or FpgaProfile(
            compiler=os.environ.get("HCOMPILE_FPGA_COMPILER") or None,
            board=os.environ.get("HCOMPILE_FPGA_BOARD") or None,
        )

    def tvm_target(self) -> tvm.target.Target:
        p = self.profile
        return tvm.target.Target(
            {"kind": "opencl", "max_num_threads": p.max_work_group_size,
             "max_threads_per_block": p.max_work_group_size, "thread_warp_size": 1,
             "max_shared_memory_per_block": p.local_mem_bytes},
            host={"kind": "llvm"},
        )

    def package_device(self, build: DeviceBuild, partition_id: int) -> list[CodeBlob]:
        what = f"partition {partition_id} for {self.name}"
        source = fpga_source(build.source, build.plan, self.profile, what)
        info = {"entry": "main", "plan": build.plan.to_json(), "cl_std": "CL1.2",
                "profile": self.profile.name}
        code = []
        binary = board_binary(source, self.profile, what)
        if binary is not None and self.profile.compiler is not None:
            suffix, vendor = BINARY_KINDS[self.profile.compiler]
            code.append(CodeBlob("opencl-binary-plan", f"partitions/{partition_id}/fpga.{suffix}",
                                 binary, {**info, "vendor": vendor, "board": self.profile.board}))
        code.append(CodeBlob("opencl-plan", f"partitions/{partition_id}/fpga.cl",
                             source.encode(), info))
        return code
