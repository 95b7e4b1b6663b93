"""Code generators, one per target. Importing this package registers them explicitly."""

from hcompile.targets import cuda_gpu, llvm_cpu, opencl_fpga  # noqa: F401 - "gpu", "cpu", "fpga"
from hcompile.targets.registry import get_target, register_target, target_names

__all__ = ["get_target", "register_target", "target_names"]
