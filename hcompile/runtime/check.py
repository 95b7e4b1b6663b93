"""``hcompile run --check``: run every device partition's CPU code beside it and compare.

The model runs once as usual, keeping every intermediate tensor; then each partition that
did not run CPU code is run again on its CPU fallback with the same inputs, and the
largest absolute difference per output is reported. A partition already on the CPU is its
own reference (error 0, ``reference`` says so). The relative error is the max absolute
error over the largest magnitude of the reference output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hcompile.runtime.residency import to_host
from hcompile.runtime.runners import RUNNERS

if TYPE_CHECKING:
    from hcompile.runtime.executor import Executor


@dataclass(frozen=True)
class PartitionCheck:
    id: int
    target: str
    runs_on: str
    reference: str  # "cpu fallback", "is cpu code" or "no cpu code"
    max_abs_err: float
    max_rel_err: float


def check_partitions(exe: Executor, inputs: Mapping[str, np.ndarray]) -> list[PartitionCheck]:
    """Per partition, the max error of what ran against the partition's CPU code."""
    env = exe._environment(inputs)
    exe._run_inline(env)
    env = {name: to_host(value) for name, value in env.items()}  # device-resident ones too
    rows = []
    for step, info in zip(exe._steps, exe.partitions, strict=True):
        spec = step.spec
        if info.runs_on == "cpu":
            rows.append(PartitionCheck(spec.id, spec.target, info.runs_on, "is cpu code", 0.0, 0.0))
            continue
        code = spec.fallback
        if code is None:
            rows.append(PartitionCheck(spec.id, spec.target, info.runs_on, "no cpu code",
                                       float("nan"), float("nan")))
            continue
        runner = RUNNERS[code.format](spec, code, step.blob_of(code.member), step.params,
                                      exe._options)
        expected = runner.run([env[n] for n in spec.inputs])
        abs_err = rel_err = 0.0
        for name, want in zip(spec.outputs, expected, strict=True):
            got = np.from_dlpack(env[name]).astype(np.float64)
            ref = np.from_dlpack(want).astype(np.float64)
            if got.size:
                diff = np.abs(got - ref)
                abs_err = max(abs_err, float(np.nanmax(diff)))
                scale = max(float(np.nanmax(np.abs(ref))), 1e-30)
                rel_err = max(rel_err, float(np.nanmax(diff)) / scale)
        rows.append(PartitionCheck(spec.id, spec.target, info.runs_on, "cpu fallback",
                                   abs_err, rel_err))
    return rows


def format_checks(rows: list[PartitionCheck]) -> str:
    lines = ["partition  target  ran on  reference      max abs err  max rel err"]
    for r in rows:
        lines.append(f"#{r.id:<9} {r.target:<7} {r.runs_on:<7} {r.reference:<14} "
                     f"{r.max_abs_err:<12.3g} {r.max_rel_err:.3g}")
    return "\n".join(lines)
