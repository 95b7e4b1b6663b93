"""Executor dispatch overhead per partition, with partitions that do nothing.

    .venv/bin/python benchmarks/dispatch_overhead.py [--partitions 64] [--repeat 200]

A benchmark-only code format (``bench-null``, on a "cpu" and an "fpga" device) returns its
input unchanged, so the time a run takes is the executor's own: checking inputs, wrapping
them, scheduling each partition, copies between devices, collecting outputs. The overhead
per partition is the slope between a small (1 or 2 partitions) and an N-partition model (median of
--repeat runs each), which cancels the per-run costs:

* chain, one device: runs in the caller's thread (nothing can overlap);
* chain, alternating devices: inline too, plus a copy step per partition;
* fan-out over two devices: N independent partitions then a join, on the device workers
  (dependency counters, queue hand-offs, cross-thread wake-ups);
* run_many: the alternating chain on the device workers, 4 requests in flight (time per
  request).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hcompile  # noqa: E402
from hcompile.artifact import Artifact  # noqa: E402
from hcompile.runtime import RUNNERS, PartitionRunner, register_runner  # noqa: E402


class _Null(PartitionRunner):
    def run(self, args: Sequence[Any]) -> list[Any]:
        return [args[0]]


for _device in ("cpu", "fpga"):
    if f"bench-null-{_device}" not in RUNNERS:
        register_runner(f"bench-null-{_device}")(
            type(f"Null_{_device}", (_Null,), {"runs_on": _device}))


def _artifact(parts: list[tuple[str, list[str], str]], output: str) -> Artifact:
    spec = {"shape": [16], "dtype": "float32"}
    partitions = [{"id": i, "target": d, "device": d, "inputs": ins, "params": [],
                   "outputs": [out], "fallback": None,
                   "code": [{"format": f"bench-null-{d}", "member": "null", "entry": "main"}]}
                  for i, (d, ins, out) in enumerate(parts)]
    return Artifact({"inputs": [{"name": "x", **spec}], "outputs": [{"name": output, **spec}],
                     "weights": {}, "partitions": partitions}, {"null": b"\0"})


def chain(n: int, devices: Sequence[str]) -> Artifact:
    names = ["x"] + [f"t{i}" for i in range(n)]
    return _artifact([(devices[i % len(devices)], [names[i]], names[i + 1]) for i in range(n)],
                     names[-1])


def fan_out(n: int) -> Artifact:
    parts = [(("cpu", "fpga")[i % 2], ["x"], f"t{i}") for i in range(n)]
    parts.append(("cpu", [f"t{i}" for i in range(n)], "y"))
    return _artifact(parts, "y")


def _median_s(fn: Callable[[], Any], repeat: int) -> float:
    for _ in range(max(10, repeat // 10)):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    n, repeat = args.partitions, args.repeat
    feeds = {"x": np.zeros(16, np.float32)}

    def per_run(make: Callable[[int], Artifact], count: int, many: bool = False) -> float:
        exe = hcompile.load(make(count))
        if many:
            batch = [feeds] * 16
            seconds = _median_s(lambda: list(exe.run_many(batch, depth=4)), max(repeat // 8, 5))
            exe.close()
            return seconds / len(batch)
        seconds = _median_s(lambda: exe.run(feeds), repeat)
        exe.close()
        return seconds

    cases: list[tuple[str, Callable[[int], Artifact], bool, str, int]] = [
        ("chain, cpu only", lambda k: chain(k, ["cpu"]), False, "inline", 1),
        ("chain, cpu/fpga alternating", lambda k: chain(k, ["cpu", "fpga"]), False, "inline", 1),
        ("fan-out over cpu+fpga, join", fan_out, False, "device workers", 2),
        ("chain cpu/fpga, run_many(depth 4)", lambda k: chain(k, ["cpu", "fpga"]), True,
         "device workers", 2),
    ]
    print(f"{'graph':<36} {'path':<15} {'small':>6} {'run µs':>8} {n:>4} {'run µs':>8} "
          f"{'µs/partition':>13}")
    for label, make, many, path, base in cases:
        small = per_run(make, base, many)
        big = per_run(make, n, many)
        slope = (big - small) / (n - base)
        print(f"{label:<36} {path:<15} {base:>6} {small * 1e6:>8.1f} {n:>4} {big * 1e6:>8.1f} "
              f"{slope * 1e6:>13.1f}")


if __name__ == "__main__":
    main()
