"""``hcompile bench ARTIFACT|MODEL [--vs onnxruntime]``: latency of a compiled model, next to
ONNX Runtime's, measured in the same process with the same inputs and thread count.

Runs alternate in blocks (some of ours, some of theirs, ...) after a warm-up so that load from
other processes hits both alike; the table shows the median and 90th percentile and the ratio
of medians.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hcompile.errors import UsageError
from hcompile.timing import random_inputs, time_interleaved


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
