"""The FPGA device profile: the limits code generation must respect.

A small dataclass with defaults that fit common OpenCL FPGA boards; the cost-model work
will load real boards' profiles from TOML (``FpgaProfile.from_mapping``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from hcompile.errors import UsageError


@dataclass(frozen=True)
class FpgaProfile:
    """name: what to call the device; max_work_group_size: work-items per work-group (the
    FPGA SDKs' default without an attribute is 256); local_mem_bytes: ``__local`` memory one
    kernel may use (32 KiB is OpenCL 1.2's minimum for a full-profile device; boards build it
    from on-chip RAM); compiler/board: the vendor flow for board binaries (``aoc`` with
    ``-board=``, ``v++`` with ``--platform``), None for source only."""

    name: str = "generic-opencl-fpga"
    max_work_group_size: int = 256
    local_mem_bytes: int = 32 * 1024
    compiler: str | None = None
    board: str | None = None

    def __post_init__(self) -> None:
        if self.max_work_group_size < 1 or self.local_mem_bytes < 0:
            raise UsageError(f"FPGA profile {self.name!r}: limits must be positive "
                             f"(max_work_group_size={self.max_work_group_size}, "
                             f"local_mem_bytes={self.local_mem_bytes})")
        if self.compiler not in (None, "aoc", "v++"):
            raise UsageError(f"FPGA profile {self.name!r}: unknown compiler "
                             f"{self.compiler!r}", hint="use aoc (Intel) or v++ (AMD/Xilinx)")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FpgaProfile:
        """A profile from a parsed TOML table; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown FPGA profile keys {unknown}",
                             hint=f"known keys: {', '.join(sorted(known))}")
        return cls(**dict(data))
