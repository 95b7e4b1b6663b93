"""Partition quality: every partitioner against the exact optimum on small random graphs.

    .venv/bin/python benchmarks/partition_quality.py [--graphs 200] [--max-nodes 12] [--seed 0]

Random DAGs and chains of 3 to --max-nodes nodes on 3 devices (cpu, gpu, fpga with a
resource budget; ``hcompile.passes.partition.synthetic``). Each plan is scored by the
simulator; the table gives the ratio of its latency to ``exhaustive``'s (1.000 = optimal):
mean, median, 90th percentile, worst, and how often it is within 2% and exactly optimal.
Also checked: ``dp`` equals ``exhaustive`` on every chain, ``auto`` is within 2% everywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = ("single", "greedy", "dp", "heft", "auto", "auto-heuristic")


def main() -> None:
    from hcompile.passes.partition import auto, solve
    from hcompile.passes.partition.synthetic import random_problem

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graphs", type=int, default=200)
    parser.add_argument("--max-nodes", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    ratios: dict[str, list[float]] = {n: [] for n in NAMES}
    chain_ok = chains = 0
    exact_ms: list[float] = []
    for i in range(args.graphs):
        chain = i % 4 == 0
        problem = random_problem(rng, int(rng.integers(3, args.max_nodes + 1)), chain=chain)
        start = time.perf_counter()
        best = solve(problem, "exhaustive")
        exact_ms.append((time.perf_counter() - start) * 1e3)
        if not best.notes.get("optimal"):
            print(f"graph {i}: exhaustive timed out", file=sys.stderr)
        for name in NAMES:
            if name == "auto-heuristic":  # auto as it runs on graphs too big to be exact
                saved = auto.EXACT_NODES
                auto.EXACT_NODES = 0
                try:
                    latency = solve(problem, "auto").latency
                finally:
                    auto.EXACT_NODES = saved
            else:
                latency = solve(problem, name).latency
            ratios[name].append(latency / best.latency)
        if chain:
            chains += 1
            chain_ok += abs(ratios["dp"][-1] - 1.0) < 1e-9
    print(f"{args.graphs} random graphs ({chains} chains), 3-{args.max_nodes} nodes, 3 devices; "
          f"exhaustive: median {np.median(exact_ms):.1f} ms, max {max(exact_ms):.0f} ms")
    print(f"{'partitioner':16s} {'mean':>7s} {'median':>7s} {'p90':>7s} {'worst':>7s} "
          f"{'<=2%':>6s} {'optimal':>8s}")
    for name in NAMES:
        r = np.array(ratios[name])
        print(f"{name:16s} {r.mean():7.3f} {np.median(r):7.3f} {np.percentile(r, 90):7.3f} "
              f"{r.max():7.3f} {np.mean(r <= 1.02):6.0%} {np.mean(r <= 1 + 1e-9):8.0%}")
    worst_auto = max(ratios["auto"])
    print(f"dp == exhaustive on {chain_ok}/{chains} chains; auto worst ratio {worst_auto:.4f} "
          f"({'within' if worst_auto <= 1.02 else 'NOT within'} 2%)")


if __name__ == "__main__":
    main()
