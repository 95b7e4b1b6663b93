"""``hcompile bench ARTIFACT|MODEL [--vs onnxruntime]``: latency of a compiled model, next to
ONNX Runtime's, measured in the same process with the same inputs and thread count.

Runs alternate in blocks (some of ours, some of theirs, ...) after a warm-up so that load from
other processes hits both alike; the table shows the median and 90th percentile and the ratio
of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hcompile.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="time a model or artifact (optionally against ONNX Runtime)")
    p.add_argument("model", type=Path, metavar="ARTIFACT|MODEL",
                   help="an .hca artifact, or an ONNX model (compiled for the CPU first)")
    p.add_argument("--vs", choices=["onnxruntime"], help="also time this runtime")
    p.add_argument("--onnx", type=Path, metavar="MODEL.onnx",
                   help="the ONNX model for --vs when ARTIFACT is an .hca file")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="static shape for an ONNX input (repeatable)")
    p.add_argument("--repeat", type=int, default=50, help="timed runs of each (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="threads for both runtimes (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--pipeline", action="store_true",
                   help="also compare throughput: one request after another vs pipelined over "
                        "the devices (Executor.run_many)")
    p.add_argument("--depth", type=int, default=None, metavar="N",
                   help="requests in flight for --pipeline (default: two per device kind)")
    p.set_defaults(handler=run)


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


def set_threads(threads: int) -> None:
    """Make TVM's thread pool use ``threads`` (read when the pool starts, so call it first)."""
    if threads < 1:
        raise UsageError("--threads must be at least 1")
    os.environ["TVM_NUM_THREADS"] = str(threads)


def ort_session(model: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise UsageError("--vs onnxruntime needs the onnxruntime package",
                         hint="pip install onnxruntime") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


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


def parse_shapes(items: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``--input-shape`` values as a dict (shared with ``hcompile tune``)."""
    from hcompile.frontend import parse_input_shape

    shapes = dict(parse_input_shape(item) for item in items)
    if len(shapes) != len(items):
        raise UsageError("--input-shape is given twice for the same input")
    return shapes


def run(args: argparse.Namespace) -> int:
    import hcompile

    set_threads(args.threads)
    path: Path = args.model
    if not path.is_file():
        raise UsageError(f"{path} does not exist", hint="give an .hca artifact or an .onnx model")
    onnx_path = args.onnx
    if path.suffix == ".hca":
        exe = hcompile.load(path)
    else:
        shapes = parse_shapes(args.input_shape) or None
        exe = hcompile.load(hcompile.compile(path, input_shapes=shapes))
        onnx_path = onnx_path or path
    feeds = random_inputs(exe.inputs, args.seed)
    fns: dict[str, Callable[[], Any]] = {"hcompile": lambda: exe.run(feeds)}
    if args.vs == "onnxruntime":
        if onnx_path is None:
            raise UsageError("--vs onnxruntime with an artifact needs the ONNX model",
                             hint="pass --onnx MODEL.onnx")
        session = ort_session(onnx_path, args.threads)
        fns["onnxruntime"] = lambda: session.run(None, feeds)
    results = time_interleaved(fns, repeat=args.repeat, warmup=args.warmup)
    print(f"{path.name}: {args.threads} thread(s), {args.warmup} warm-up, {args.repeat} runs each")
    print(f"{'runtime':<12} {'median ms':>10} {'p90 ms':>10}")
    for name, timing in results.items():
        print(f"{name:<12} {timing.median_ms:>10.3f} {timing.p90_ms:>10.3f}")
    if "onnxruntime" in results:
        ratio = results["hcompile"].median_ms / results["onnxruntime"].median_ms
        print(f"ratio hcompile/onnxruntime (medians): {ratio:.2f}x")
    if args.pipeline:
        from hcompile.runtime.pipeline import compare_throughput

        requests = [random_inputs(exe.inputs, args.seed + i) for i in range(max(args.repeat, 8))]
        print(compare_throughput(exe, requests, depth=args.depth, warmup=args.warmup).describe())
    return 0
