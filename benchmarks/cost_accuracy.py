"""Cost-model accuracy: predicted vs measured whole-model CPU latency of the zoo.

    .venv/bin/python benchmarks/cost_accuracy.py [--calibrate] [--models mlp,...] [--rounds 3]

1. The host profile: this machine's calibration (``hcompile devices --calibrate``), measured
   now when there is none or with --calibrate (it measures hcompile's current CPU code, so
   re-run it after the code generator changes).
2. Predicted: the plan's simulated latency with every node on the CPU (``predicted_ms``).
3. Measured: ``hcompile.load(hcompile.compile(model)).run(...)`` on random inputs, in
   --rounds interleaved rounds of at least 0.5 s each: best run and median of round medians.
The goal is |error| <= 30% for every zoo model (error = predicted / measured - 1, against
the best run: other load on the machine only ever adds time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZOO = ("mlp", "lenet5", "resnet18", "mobilenetv2", "transformer", "lstm")


def _times(fn, min_time: float = 1.0, min_reps: int = 5) -> list[float]:
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - start < min_time and len(times) < 500):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    import hcompile
    from hcompile.devices import calibrate, load_devices
    from hcompile.frontend import import_model
    from hcompile.passes import PassOptions, run_pipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calibrate", action="store_true", help="re-calibrate first")
    parser.add_argument("--models", default=",".join(ZOO))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.calibrate or calibrate.cached_host_table() is None:
        start = time.perf_counter()
        path = calibrate.save(calibrate.calibrate(lambda msg: print(f"  calibrating: {msg}")))
        print(f"calibrated in {time.perf_counter() - start:.1f} s -> {path}")
    devices = load_devices()
    print(f"host profile: {devices['cpu'].name} ({devices['cpu'].source})")
    print(f"{'model':12s} {'nodes':>5s} {'predicted ms':>12s} {'best ms':>10s} "
          f"{'median ms':>10s} {'error':>7s} {'vs median':>9s}")
    names = args.models.split(",")
    predicted, runs, sizes = {}, {}, {}
    for name in names:
        path = ROOT / "models" / "onnx" / f"{name}.onnx"
        graph, _ = import_model(path)
        options = PassOptions(targets=["cpu"], extra={"devices": devices})
        run_pipeline(graph, options)
        predicted[name] = options.extra["plan_summary"].predicted_ms
        sizes[name] = len(graph.nodes)
        exe = hcompile.load(hcompile.compile(path, targets=["cpu"]))
        rng = np.random.default_rng(0)
        feeds = {s.name: rng.random(s.shape).astype(s.dtype) for s in exe.inputs}
        runs[name] = lambda exe=exe, feeds=feeds: exe.run(feeds)
    times: dict[str, list[list[float]]] = {name: [] for name in names}
    for _ in range(args.rounds):  # interleaved, so that a burst of load hits one round
        for name in names:
            times[name].append([t * 1e3 for t in _times(runs[name], min_time=0.5)])
    errors = []
    for name in names:
        best = min(min(r) for r in times[name])
        median = statistics.median(statistics.median(r) for r in times[name])
        error = predicted[name] / best - 1
        errors.append(error)
        print(f"{name:12s} {sizes[name]:5d} {predicted[name]:12.3f} {best:10.3f} "
              f"{median:10.3f} {error:+7.0%} {predicted[name] / median - 1:+9.0%}")
    worst = max(abs(e) for e in errors)
    print(f"worst |error| {worst:.0%} ({'within' if worst <= 0.30 else 'NOT within'} ±30%)")


if __name__ == "__main__":
    main()
