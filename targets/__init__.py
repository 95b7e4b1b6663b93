"""Code generators, one per target. Importing this package registers them explicitly."""

from hcompile.targets import llvm_cpu  # noqa: F401 - registers "cpu"
from hcompile.targets.registry import get_target, register_target, target_names

__all__ = ["get_target", "register_target", "target_names"]
