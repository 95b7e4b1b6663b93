"""Timing compiled code fairly: runs interleaved in blocks, medians, random inputs.

Shared by ``hcompile bench``, the benchmarks and tuning's whole-model validation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcompile.errors import UsageError


@dataclass(frozen=True, slots=True)
class Timing:
    """Latencies of one runtime in milliseconds."""

    median_ms: float
    p90_ms: float
    runs: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Timing:
        ordered = sorted(samples)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        return cls(statistics.median(ordered), p90, len(ordered))


#: Pause before each block of runs: ONNX Runtime's pool threads spin after a run and would
#: take the cores from the next block (mobilenetv2 at batch 1 on 2 cores: hcompile's block
#: after ORT's read 3.9 ms with a 10 ms pause, 2.8 ms with 200 ms, 2.4 ms alone).
BLOCK_PAUSE_S = 0.1


def time_interleaved(fns: Mapping[str, Callable[[], Any]], *, repeat: int, warmup: int,
                     rounds: int = 5) -> dict[str, Timing]:
    """Time every function ``repeat`` times after ``warmup`` untimed runs, taking turns in up
    to ``rounds`` blocks (so drifting load hits all alike). Blocks, not single runs: a runtime's
    thread pool spins for a while after a run and would steal the cores from the next one; a
    pause (``BLOCK_PAUSE_S``) and one untimed run start every block."""
    if repeat < 1 or warmup < 0:
        raise UsageError("--repeat must be at least 1 and --warmup at least 0")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    rounds = max(1, min(rounds, repeat))
    sizes = [repeat // rounds + (1 if i < repeat % rounds else 0) for i in range(rounds)]
    for size in sizes:
        for name, fn in fns.items():
            time.sleep(BLOCK_PAUSE_S)
            fn()
            for _ in range(size):
                start = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: Timing.of(values) for name, values in samples.items()}


def random_inputs(specs: Sequence[Any], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape, dtype in specs:
        kind = np.dtype(dtype).kind
        if kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dtype)
        elif kind == "b":
            feeds[name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[name] = rng.integers(0, 10, size=shape).astype(dtype)
    return feeds
