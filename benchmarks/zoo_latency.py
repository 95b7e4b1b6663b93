"""Compile time and run latency of every zoo model on the CPU, next to ONNX Runtime's.

    .venv/bin/python benchmarks/zoo_latency.py [--batch 1] [--repeat 20] [--threads N]

Both are timed in this process with the same inputs (median of --repeat runs after warm-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZOO = ("mlp", "lenet5", "resnet18", "mobilenetv2", "transformer", "lstm")


def _median_ms(fn, repeat: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", nargs="*", default=list(ZOO))
    args = parser.parse_args()

    import onnxruntime as ort

    import hcompile
    from models.build import build_model

    print(f"{'model':<12} {'compile s':>9} {'hcompile ms':>12} {'ORT ms':>9} {'ratio':>7}")
    for name in args.only:
        path = build_model(name, ROOT / "models" / "onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        spec = session.get_inputs()[0]
        shape = [args.batch if not isinstance(d, int) else d for d in spec.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        start = time.perf_counter()
        artifact = hcompile.compile(path, input_shapes={spec.name: shape})
        compile_s = time.perf_counter() - start
        exe = hcompile.load(artifact)
        feeds = {spec.name: x}
        ours = _median_ms(partial(exe.run, feeds), args.repeat)
        theirs = _median_ms(partial(session.run, None, feeds), args.repeat)
        print(f"{name:<12} {compile_s:>9.2f} {ours:>12.3f} {theirs:>9.3f} {ours / theirs:>7.2f}")


if __name__ == "__main__":
    main()
