"""Batch-sharded latency against single-device latency.

    .venv/bin/python benchmarks/sharding.py [--models mlp lenet5] [--batch 32] [--repeat 20]
                                            [--targets cpu,fpga]

Per model: the whole batch on each single device, then sharded over the devices with the
split ``--shard-batch auto`` picks (measured per-row rate and fixed cost per device, and
each device's slowdown while the others run: see hcompile/runtime/contention.py), the split
the devices' speeds alone would give (auto before the contention model), and an even
split. Median latency of --repeat runs after warm-up; "predicted" is the model's makespan
for that split. "fpga only" is the model on the FPGA, with the
CPU taking what does not fit its resource budget. Here the ``fpga`` is PoCL on the same host cores
as the CPU code, so the shards compete for the cores; with a real FPGA or GPU beside the
CPU the shards run on separate hardware.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import hcompile  # noqa: E402
from hcompile.runtime.contention import predict_makespan  # noqa: E402
from hcompile.runtime.sharding import split_batch  # noqa: E402
from hcompile.sharding_compile import (  # noqa: E402
    calibrate_contention,
    choose_split,
    compile_for_device,
    compile_sharded,
)

SHAPES = {"mlp": (784,), "lenet5": (1, 28, 28), "transformer": (16, 256), "lstm": (20, 32)}


def _median_ms(exe: Any, feeds: dict[str, np.ndarray], repeat: int) -> float:
    for _ in range(3):
        exe.run(feeds)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        exe.run(feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="*", default=["mlp", "lenet5"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--targets", default="cpu,fpga")
    args = parser.parse_args()
    logging.getLogger("hcompile").setLevel(logging.ERROR)
    targets = [t.strip() for t in args.targets.split(",")]
    print(f"{'model':<12} {'batch':>5} {'configuration':<46} {'predicted':>9} "
          f"{'latency ms':>10}")
    for name in args.models:
        path = ROOT / "models" / "onnx" / f"{name}.onnx"
        shape = (args.batch, *SHAPES[name])
        feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        rates, slowdown = calibrate_contention(path, {"x": shape}, targets)
        rows = []
        for target in targets:
            exe = hcompile.load(compile_for_device(path, target, {"x": shape}))
            predicted = rates[target].seconds(args.batch) * 1e3
            rows.append((f"{target} only", predicted, _median_ms(exe, feeds, args.repeat)))
            exe.close()
        auto = choose_split(args.batch, rates, slowdown)
        alone = choose_split(args.batch, rates)
        even = {t: 1 / len(targets) for t in targets}
        configurations = (("auto", auto.fractions, slowdown),
                          ("alone speeds", alone.fractions, slowdown),
                          ("even", even, slowdown))
        for label, fractions, slow in configurations:
            split = split_batch(args.batch, fractions)
            predicted = predict_makespan(split, rates, slow) * 1e3
            spec = {t: f for t, f in fractions.items() if split[t] > 0}
            art = compile_sharded(path, spec, input_shapes={"x": shape})
            exe = hcompile.load(art)
            text = exe.sharding.describe() if exe.sharding else "?"
            rows.append((f"{label}: {text}", predicted, _median_ms(exe, feeds, args.repeat)))
            exe.close()
        for label, predicted, ms in rows:
            print(f"{name:<12} {args.batch:>5} {label:<46} {predicted:>9.2f} {ms:>10.2f}")
        rates_text = ", ".join(f"{t} {v.rows_per_s:.0f} rows/s + {v.fixed_s * 1e3:.2f} ms, "
                               f"{slowdown[t]:.2f}x slower while sharing"
                               for t, v in rates.items())
        print(f"{'':<12} {'':>5} calibrated: {rates_text}")
        print(f"{'':<12} {'':>5} auto: {auto.describe()}")


if __name__ == "__main__":
    main()
