"""Pipelined requests (``Executor.run_many``) against one ``run`` after another.

    .venv/bin/python benchmarks/pipeline_throughput.py [--requests 40] [--depth 4]

Two models, each a chain of a CPU stage and an FPGA stage, so nothing overlaps inside one
request and any gain comes from the CPU working on request n + 1 while the FPGA works on
request n:

* ``stages``: the two stages are 10 ms device waits (a device busy with its own work while
  the host is free: the scheduler's best case);
* ``lenet5``: the zoo's LeNet-5, its convolution block on the FPGA (PoCL, which runs on
  the same host cores as the CPU stage, so the two compete for them here).

Prints requests per second and the speed-up of each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hcompile  # noqa: E402


def measure(exe: Any, feeds: list[dict[str, np.ndarray]], depth: int) -> tuple[float, float]:
    from hcompile.runtime.pipeline import compare_throughput

    list(exe.run_many(feeds[:4], depth=depth))  # warm-up: threads, kernels
    result = compare_throughput(exe, feeds, depth=depth)
    return result.sequential_rps, result.pipelined_rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    from tests.runtime_models import compile_placed, sleep_artifact

    rng = np.random.default_rng(0)
    models = []
    stages = hcompile.load(sleep_artifact([("cpu", ["x"], ["a"], 0.01, 1.0),
                                           ("fpga", ["a"], ["y"], 0.01, 1.0)]))
    models.append(("stages (10 ms + 10 ms)", stages,
                   [{"x": np.zeros(4, np.float32)} for _ in range(args.requests)]))
    lenet = compile_placed(ROOT / "models" / "onnx" / "lenet5.onnx",
                           ["/features/*=fpga", "/classifier/*=cpu"],
                           input_shapes={"x": (8, 1, 28, 28)})
    exe = hcompile.load(lenet)
    placed = ", ".join(f"#{p.id} {p.runs_on}" for p in exe.partitions)
    models.append((f"lenet5 b8 ({placed})"[:30], exe,
                   [{"x": rng.standard_normal((8, 1, 28, 28)).astype(np.float32)}
                    for _ in range(args.requests)]))
    print(f"{'model':<30} {'stage ms (traced)':<24} {'sequential req/s':>17} "
          f"{'run_many req/s':>15} {'speed-up':>9}")
    for label, model, feeds in models:
        seq, pipe = measure(model, feeds, args.depth)
        print(f"{label:<30} {stage_ms(model, feeds):<24} {seq:>17.1f} {pipe:>15.1f} "
              f"{pipe / seq:>8.2f}x")


def stage_ms(exe: Any, feeds: list[dict[str, np.ndarray]]) -> str:
    """Median time of each partition, from a trace of sequential runs."""
    from hcompile.runtime.trace import Trace

    trace = Trace()
    for f in feeds[:10]:
        exe.run(f, trace=trace)
    times: dict[str, list[float]] = {}
    for s in trace.spans:
        if s.name.startswith("partition"):
            times.setdefault(f"{s.track}", []).append((s.end - s.start) * 1e3)
    return " + ".join(f"{track} {np.median(t):.2f}" for track, t in times.items())


if __name__ == "__main__":
    main()
