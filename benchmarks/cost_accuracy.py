"""Cost-model accuracy: predicted vs measured whole-model CPU latency of the zoo.

    .venv/bin/python benchmarks/cost_accuracy.py [--calibrate] [--models mlp,...] [--rounds 3]
                                                 [--per-op] [--uncalibrated]

1. The host profile: this machine's calibration (``hcompile devices --calibrate``), measured
   now when there is none or with --calibrate (it measures hcompile's current CPU code, so
   re-run it after the code generator changes).
2. Predicted: the plan's simulated latency with every node on the CPU (``predicted_ms``).
3. Measured: ``hcompile.load(hcompile.compile(model)).run(...)`` on random inputs, in
   --rounds interleaved rounds of at least 0.5 s each: best run and median of round medians.
The goal is |error| <= 30% for every zoo model (error = predicted / measured - 1, against
the best run: other load on the machine only ever adds time).

--per-op: also time each heavy node (conv, matmul, pool, norm and its fused elementwise tail)
cut out of the ONNX file, compiled alone and run through the runtime (dispatch subtracted),
against its prediction: where a model's error comes from. The load average is printed:
on a busy machine multi-threaded kernels lose most, so large CNNs read slow.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
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
    from hcompile.passes import PassOptions, cost, run_pipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calibrate", action="store_true", help="re-calibrate first")
    parser.add_argument("--models", default=",".join(ZOO))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-op", action="store_true", help="time heavy nodes one by one")
    parser.add_argument("--uncalibrated", action="store_true",
                        help="predict with the built-in host-generic profile (what a compile "
                             "uses before `hcompile devices --calibrate`)")
    args = parser.parse_args()
    if args.uncalibrated:
        devices = load_devices("host-generic")
    elif args.calibrate or calibrate.cached_host_table() is None:
        start = time.perf_counter()
        path = calibrate.save(calibrate.calibrate(lambda msg: print(f"  calibrating: {msg}")))
        print(f"calibrated in {time.perf_counter() - start:.1f} s -> {path}")
    if not args.uncalibrated:
        devices = load_devices()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"host profile: {devices['cpu'].name} ({devices['cpu'].source})")
    print(f"{'model':12s} {'nodes':>5s} {'kernels':>7s} {'predicted ms':>12s} {'best ms':>10s} "
          f"{'median ms':>10s} {'error':>7s} {'vs median':>9s}")
    names = args.models.split(",")
    predicted, runs, sizes, kernels = {}, {}, {}, {}
    for name in names:
        path = ROOT / "models" / "onnx" / f"{name}.onnx"
        graph, _ = import_model(path)
        options = PassOptions(targets=["cpu"], extra={"devices": devices})
        run_pipeline(graph, options)
        predicted[name] = options.extra["plan_summary"].predicted_ms
        sizes[name] = len(graph.nodes)
        # Kernels as the cost model groups them (one launch each), fused nodes not counted.
        kernels[name] = sum(not c.view and not c.fused for c in cost.node_costs(graph).values())
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
        print(f"{name:12s} {sizes[name]:5d} {kernels[name]:7d} {predicted[name]:12.3f} "
              f"{best:10.3f} {median:10.3f} {error:+7.0%} {predicted[name] / median - 1:+9.0%}")
    if args.per_op:
        for name in names:
            per_op(ROOT / "models" / "onnx" / f"{name}.onnx", devices)
    worst = max(abs(e) for e in errors)
    print(f"worst |error| {worst:.0%} ({'within' if worst <= 0.30 else 'NOT within'} ±30%)")


HEAVY = ("conv", "depthwise", "matmul", "matvec", "pool", "norm")


def per_op(path: Path, devices) -> None:
    """Predicted vs measured time of each heavy node with its fused tail, cut out of the
    ONNX model (nodes the extractor cannot cut alone are skipped)."""
    import onnx
    from onnx import utils

    from hcompile.devices import calibrate, microbench
    from hcompile.frontend import import_model
    from hcompile.passes import PassOptions, cost, run_pipeline

    graph, _ = import_model(path)
    run_pipeline(graph, PassOptions(targets=["cpu"], extra={"devices": devices}))
    costs, consumers = cost.node_costs(graph), graph.consumers()
    known = {t for n in onnx.load(path).graph.node for t in n.output}
    dispatch = calibrate._best_of(calibrate.runner(microbench.add_model((4,))))
    totals: dict[str, list[float]] = {}
    print(f"\n{path.stem}: per node (us)")
    for node in graph.nodes:
        kind = costs[node.name].kind
        if not kind.endswith(HEAVY) or costs[node.name].view:
            continue
        tail, out = [node], node.outputs[0]
        while len(consumers.get(out, [])) == 1 and costs[consumers[out][0].name].fused:
            tail.append(consumers[out][0])
            out = tail[-1].outputs[0]
        inputs = [i for i in node.inputs if i and i not in graph.constants]
        if out not in known:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            try:
                utils.extract_model(str(path), f"{tmp}/m.onnx", inputs, [out])
                run = calibrate.runner(onnx.load(f"{tmp}/m.onnx"))
            except Exception:  # a node the extractor cannot cut out alone
                continue
        measured = max(calibrate._best_of(run) - dispatch, 1e-9)
        predicted = sum(cost.node_seconds(costs[n.name], devices["cpu"]) for n in tail)
        pair = totals.setdefault(kind, [0.0, 0.0])
        pair[0], pair[1] = pair[0] + predicted, pair[1] + measured
        print(f"  {node.name[-34:]:34s} {'+'.join(n.op for n in tail)[:24]:24s} {kind:18s} "
              f"{predicted * 1e6:9.1f} {measured * 1e6:9.1f} {predicted / measured - 1:+6.0%}")
    for kind, (p, m) in sorted(totals.items()):
        print(f"  total {kind:18s} predicted {p * 1e3:8.3f} ms  measured {m * 1e3:8.3f} ms "
              f"{p / m - 1:+6.0%}")


if __name__ == "__main__":
    main()
