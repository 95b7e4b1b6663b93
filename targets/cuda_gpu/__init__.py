"""The ``gpu`` target: TVM's CUDA C with the default GPU pipeline (dlight schedules, fusion),
compiled ahead of time with nvcc, so the serving host needs no CUDA compiler.

Code: one fatbinary (``partitions/<id>/gpu.fatbin``, format ``cuda-plan``) holding the cubin
for ``--cuda-arch`` (default sm_80; ``HCOMPILE_CUDA_ARCH``) and PTX for that architecture,
which the driver JIT-compiles on newer GPUs; the launch plan is in the code entry
(``plan``). The runtime is ``hcompile.runtime.cuda_runner``.
"""

from __future__ import annotations

import hashlib
import os

import tvm

from hcompile.targets.base import CodeBlob
from hcompile.targets.cuda_gpu.nvcc import check_arch, compile_cuda
from hcompile.targets.launch_plan import DeviceBuild, LaunchPlanTarget
from hcompile.targets.registry import register_target

__all__ = ["CudaGpuTarget"]

DEFAULT_ARCH = "sm_80"


@register_target("gpu")
class CudaGpuTarget(LaunchPlanTarget):
    device = "gpu"

    def __init__(self, arch: str | None = None) -> None:
        self.arch = check_arch(arch or os.environ.get("HCOMPILE_CUDA_ARCH") or DEFAULT_ARCH)

    def tvm_target(self) -> tvm.target.Target:
        return tvm.target.Target({"kind": "cuda", "arch": self.arch}, host={"kind": "llvm"})

    def package_device(self, build: DeviceBuild, partition_id: int) -> list[CodeBlob]:
        images = compile_cuda(build.source, self.arch, f"partition {partition_id} for gpu")
        info = {
            "entry": "main",
            "plan": build.plan.to_json(),
            "arch": images.arch,
            "ptx_arch": images.ptx_arch,
            # what the fatbinary holds, so `inspect` and tests can check it without cuobjdump
            "images": {
                "cubin": {"arch": images.arch, "bytes": len(images.cubin),
                          "sha256": hashlib.sha256(images.cubin).hexdigest()},
                "ptx": {"arch": images.ptx_arch, "bytes": len(images.ptx),
                        "sha256": hashlib.sha256(images.ptx).hexdigest()},
            },
        }
        return [CodeBlob("cuda-plan", f"partitions/{partition_id}/gpu.fatbin", images.fatbin,
                         info)]
