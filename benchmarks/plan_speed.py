"""Planning time: the cost model and every partitioner on a synthetic 1,000-node graph.

    .venv/bin/python benchmarks/plan_speed.py [--nodes 1000] [--repeat 3]

Two measurements, 3 devices (cpu, gpu, fpga) with the built-in profiles:
* the whole place step on an IR graph (cost pass + partitioner + partitions + summary), as
  ``hcompile`` runs it, for each partitioner (exhaustive is skipped: it is for small graphs);
* the partitioners alone on a random 1,000-node placement problem (no IR).
The goal is auto <= 1 s for 1,000 nodes. Times are the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARTITIONERS = ("single", "greedy", "dp", "heft", "auto")


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    from hcompile.devices import load_devices
    from hcompile.passes import PassOptions, cost, place
    from hcompile.passes.partition import solve
    from hcompile.passes.partition.synthetic import network_graph, random_problem

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import hcompile.ops  # noqa: F401 - the op registry imports TVM (~1.5 s): not planning time

    devices = load_devices()
    graph = network_graph(args.nodes)
    print(f"synthetic IR graph: {len(graph.nodes)} nodes, targets cpu,gpu,fpga "
          f"({', '.join(p.name for p in devices.profiles.values())})")
    print(f"{'step':32s} {'seconds':>8s} {'predicted ms':>13s} {'partitions':>10s}")
    start = time.perf_counter()
    options = PassOptions(targets=["cpu", "gpu", "fpga"], extra={"devices": devices})
    cost.run(graph, options)
    print(f"{'cost pass':32s} {time.perf_counter() - start:8.3f}")
    for name in PARTITIONERS:
        def step(name: str = name) -> None:
            opts = PassOptions(targets=["cpu", "gpu", "fpga"],
                               extra={"devices": devices, "partitioner": name})
            cost.run(graph, opts)
            place.run(graph, opts)
            step.summary = opts.extra["plan_summary"]  # type: ignore[attr-defined]

        seconds = _best(step, args.repeat)
        summary = step.summary  # type: ignore[attr-defined]
        print(f"{'cost + place, ' + name:32s} {seconds:8.3f} {summary.predicted_ms:13.3f} "
              f"{len(summary.partitions):10d}")

    problem = random_problem(np.random.default_rng(0), args.nodes)
    print(f"\nrandom placement problem: {problem.n} nodes, 3 devices, FPGA budget")
    for name in PARTITIONERS:
        result: dict[str, Any] = {}

        def run(name: str = name, result: dict[str, Any] = result) -> None:
            result["s"] = solve(problem, name)

        seconds = _best(run, args.repeat)
        print(f"{'partitioner ' + name:32s} {seconds:8.3f} {result['s'].latency * 1e3:13.3f} "
              f"{len(result['s'].groups):10d}")


if __name__ == "__main__":
    main()
