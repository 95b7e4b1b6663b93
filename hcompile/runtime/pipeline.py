"""Throughput of pipelined requests (``Executor.run_many``) against sequential ``run`` calls,
for ``hcompile bench --pipeline`` and ``benchmarks/pipeline_throughput.py``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from hcompile.runtime.executor import Executor


@dataclass(frozen=True)
class Throughput:
    requests: int
    depth: int | None
    sequential_rps: float
    pipelined_rps: float

    @property
    def speedup(self) -> float:
        return self.pipelined_rps / self.sequential_rps

    def describe(self) -> str:
        depth = "default" if self.depth is None else str(self.depth)
        return (f"throughput over {self.requests} requests: sequential {self.sequential_rps:.1f} "
                f"req/s, pipelined (run_many, depth {depth}) {self.pipelined_rps:.1f} req/s, "
                f"{self.speedup:.2f}x")


def compare_throughput(exe: Executor, requests: Sequence[Mapping[str, np.ndarray]], *,
                       depth: int | None = None, warmup: int = 2) -> Throughput:
    """Time ``requests`` run one after another, then through ``run_many`` (after warm-up)."""
    for request in requests[:warmup]:
        exe.run(request)
    list(exe.run_many(requests[:warmup], depth=depth))
    start = time.perf_counter()
    for request in requests:
        exe.run(request)
    sequential = len(requests) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in exe.run_many(requests, depth=depth):
        pass
    pipelined = len(requests) / (time.perf_counter() - start)
    return Throughput(len(requests), depth, sequential, pipelined)
