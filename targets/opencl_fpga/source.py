"""Making TVM's OpenCL C FPGA-friendly, and checking it stays within what FPGA SDKs take.

FPGA HLS compilers (Intel FPGA SDK for OpenCL, AMD Vitis) size a kernel's pipeline for a
work-group size known at compile time, so every kernel gets
``__attribute__((reqd_work_group_size(x, y, z)))`` equal to the local size its launches use.
They accept OpenCL C 1.2 only and no dynamically sized ``__local`` memory.
"""

from __future__ import annotations

import math
import re

from hcompile.errors import CompileError
from hcompile.runtime.launch_plan import LaunchPlan
from hcompile.targets.opencl_fpga.profile import FpgaProfile

_KERNEL = re.compile(r"__kernel\s+(?:__attribute__\(\([^()]*(?:\([^()]*\))?[^()]*\)\)\s*)?"
                     r"void\s+(\w+)\s*\(")
_REQD = re.compile(r"__kernel\s+__attribute__\(\(reqd_work_group_size\((\d+),\s*(\d+),\s*(\d+)"
                   r"\)\)\)\s+void\s+(\w+)\s*\(")

#: OpenCL C 2.x and later features, which OpenCL 1.2 FPGA compilers reject
NEWER_THAN_1_2 = (
    "sub_group_", "work_group_reduce", "work_group_broadcast", "work_group_scan", "__generic",
    "to_global(", "to_local(", "to_private(", "enqueue_kernel", "atomic_work_item_fence",
    "memory_scope_", "cl_khr_subgroups", "pipe ", "ndrange_t",
)


def kernel_names(source: str) -> list[str]:
    """Names of the kernels defined or declared in ``source``, each once, in order."""
    return list(dict.fromkeys(_KERNEL.findall(source)))


def reqd_work_group_sizes(source: str) -> dict[str, tuple[int, int, int]]:
    """``{kernel: (x, y, z)}`` from the ``reqd_work_group_size`` attributes in ``source``."""
    return {m[4]: (int(m[1]), int(m[2]), int(m[3])) for m in _REQD.finditer(source)}


def fpga_source(source: str, plan: LaunchPlan, profile: FpgaProfile, what: str) -> str:
    """``source`` with a ``reqd_work_group_size`` on every kernel, after checking it against
    the plan and the device profile; CompileError says what does not fit."""
    problems = []
    newer = sorted({word for word in NEWER_THAN_1_2 if word in source})
    if newer:
        problems.append(f"uses OpenCL C features newer than 1.2 ({', '.join(newer)})")
    planned = {k.name: k for k in plan.kernels}
    in_source = kernel_names(source)
    unlaunched = [n for n in in_source if n not in planned]
    missing = [n for n in planned if n not in in_source]
    if unlaunched:
        problems.append(f"has kernels no launch uses: {unlaunched}")
    if missing:
        problems.append(f"lacks kernels the plan launches: {missing}")
    for k in plan.kernels:
        size = math.prod(k.block)
        if size > profile.max_work_group_size:
            problems.append(f"kernel {k.name} needs work-groups of {size} work-items, "
                            f"{profile.name} allows {profile.max_work_group_size}")
        if k.shared_bytes > profile.local_mem_bytes:
            problems.append(f"kernel {k.name} needs {k.shared_bytes} bytes of local memory, "
                            f"{profile.name} has {profile.local_mem_bytes}")
    dynamic = sorted({x.kernel for x in plan.launches if x.dynamic_shared_bytes})
    if dynamic:
        problems.append(f"kernels {dynamic} use dynamically sized local memory")
    if problems:
        raise CompileError(f"{what}: the OpenCL code does not fit an FPGA: "
                           + "; ".join(problems),
                           hint="keep this partition on another target (--targets cpu,...)")

    def attribute(match: re.Match[str]) -> str:
        x, y, z = planned[match[1]].block
        return f"__kernel __attribute__((reqd_work_group_size({x}, {y}, {z}))) void {match[1]}("

    header = (f"// hcompile: OpenCL C 1.2 for {profile.name}; every kernel has a fixed "
              "work-group size (reqd_work_group_size)\n")
    return header + _KERNEL.sub(attribute, source)
