"""Partition runners and their registry, keyed by code format.

A runner loads one partition's code and calls it. Each runner class registers itself with
``@register_runner("<format>")``; the executor picks, for every partition, the first code
entry whose format has a runner that can run on this machine, then the partition's CPU
fallback. Adding a device means adding one module with one registered class (and
importing it in ``hcompile/runtime/__init__.py``).

The tensors passed between runners are ``tvm_ffi.Tensor`` objects (DLPack); a runner
receives the partition's inputs and returns one tensor per output, in manifest order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from hcompile.artifact.manifest import CodeSpec, PartitionSpec
from hcompile.errors import DeviceError


@dataclass(frozen=True)
class RunnerOptions:
    """Load-time settings every runner receives."""

    cache_dir: Path


class PartitionRunner(ABC):
    """Runs one partition. Subclasses set ``runs_on`` and implement ``run``.

    The constructor gets the partition, the chosen code entry, that member's bytes and the
    partition's params (host ``tvm_ffi.Tensor`` objects, converted once per executor);
    it loads everything so that ``run`` only computes. ``run`` must be thread-safe.
    """

    #: the code format this class was registered for (set by :func:`register_runner`)
    format: ClassVar[str] = ""
    #: the device kind the code runs on ("cpu", "gpu", "fpga")
    runs_on: ClassVar[str] = "cpu"

    def __init__(
        self,
        partition: PartitionSpec,
        code: CodeSpec,
        blob: bytes,
        params: Sequence[Any],
        options: RunnerOptions,
    ) -> None:
        self.partition = partition
        self.code = code

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this runner cannot work on this machine (missing device or library), or None."""
        return None

    @abstractmethod
    def run(self, args: Sequence[Any]) -> list[Any]:
        """Call the code with the partition's inputs; return one tensor per output."""


#: code format -> runner class; filled by @register_runner only
RUNNERS: dict[str, type[PartitionRunner]] = {}


def register_runner(
    code_format: str,
) -> Callable[[type[PartitionRunner]], type[PartitionRunner]]:
    """Class decorator: make ``cls`` the runner for code entries of ``code_format``."""

    def decorate(cls: type[PartitionRunner]) -> type[PartitionRunner]:
        if code_format in RUNNERS:
            raise ValueError(
                f"code format {code_format!r} already has a runner ({RUNNERS[code_format]})"
            )
        cls.format = code_format
        RUNNERS[code_format] = cls
        return cls

    return decorate


@dataclass(frozen=True)
class CodeChoice:
    code: CodeSpec
    runner: type[PartitionRunner]
    fallback: bool


def _why_not(code: CodeSpec) -> str | None:
    runner = RUNNERS.get(code.format)
    if runner is None:
        return f"{code.format}: this hcompile has no runner for that format"
    reason = runner.unavailable_reason()
    return f"{code.format}: {reason}" if reason else None


def unavailable_reasons(partition: PartitionSpec) -> list[str]:
    """Why each of the partition's primary code entries cannot run here."""
    return [reason for code in partition.code if (reason := _why_not(code))]


def choose_code(partition: PartitionSpec) -> CodeChoice:
    """The first runnable code entry of ``partition``, else its fallback, else DeviceError."""
    reasons = []
    for code in partition.code:
        reason = _why_not(code)
        if reason is None:
            return CodeChoice(code, RUNNERS[code.format], fallback=False)
        reasons.append(reason)
    if partition.fallback is not None:
        reason = _why_not(partition.fallback)
        if reason is None:
            return CodeChoice(partition.fallback, RUNNERS[partition.fallback.format], True)
        reasons.append(f"fallback {reason}")
    else:
        reasons.append("no CPU fallback code in the artifact")
    raise DeviceError(
        f"partition {partition.id} (target {partition.target!r}, device "
        f"{partition.device!r}) cannot run on this machine: " + "; ".join(reasons),
        hint=f"run it on a machine with a {partition.target} device, or recompile with "
        "--targets cpu (or with a CPU fallback)",
    )
