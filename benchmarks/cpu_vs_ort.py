"""The zoo on the CPU against ONNX Runtime, at batch 1 and 16.

    .venv/bin/python benchmarks/cpu_vs_ort.py [--batches 1 16] [--repeat 30] [--threads N]
                                              [--only mlp resnet18] [--tuned [--trials 64]]

Per model and batch: hcompile and ONNX Runtime latency (medians, runs interleaved in this
process, same inputs and thread count), their ratio, the GFLOP/s hcompile achieves, and that as
a percentage of the sgemm peak measured here at the start (the better of numpy/OpenBLAS and
ONNX Runtime/MLAS on a 1024^3 matmul). Also the cold
and warm (compile cache) compile times. ``--tuned`` runs ``hcompile tune`` on each model first
(records persist, so a second ``--tuned`` run tunes nothing new).
The machine may be shared: ratios are measured in one run, interleaved; repeat to judge noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ZOO = ("mlp", "lenet5", "resnet18", "mobilenetv2", "transformer", "lstm")


def sgemm_peak_gflops(threads: int) -> float:
    """The best float32 1024^3 matmul rate here, in GFLOP/s: numpy's (OpenBLAS) and ONNX
    Runtime's (MLAS). OpenBLAS's wheel may run an older kernel family (AVX2 on this AVX-512
    host), so numpy alone can sit below what compiled code reaches."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, (n, n)) for k in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, (n, n))])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(helper.make_model(graph).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    best = float("inf")
    # ORT first: OpenBLAS's threads spin after a call and would take the cores from MLAS.
    for run in (lambda: session.run(None, {"a": a, "b": b}), lambda: a @ b):
        run()
        for _ in range(5):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def model_flops(path: Path, shapes: dict[str, tuple[int, ...]]) -> float:
    """Arithmetic of the whole model (the cost pass's per-node ``flops``)."""
    from hcompile.frontend import import_model
    from hcompile.passes import PassOptions, run_pipeline

    graph, _ = import_model(path, shapes)
    run_pipeline(graph, PassOptions(targets=["cpu"]))
    total = 0.0
    for node in graph.nodes:
        cost = node.meta.get("cost") or {}
        total += float(cost.get("flops", 0.0) or 0.0)
    return total


def input_shapes(path: Path, batch: int) -> dict[str, tuple[int, ...]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    shapes = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = tuple(d.dim_value if d.HasField("dim_value") else batch
                                   for d in dims)
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", nargs="*", default=list(ZOO))
    parser.add_argument("--tuned", action="store_true", help="run hcompile tune first")
    parser.add_argument("--trials", type=int, default=64, help="trials per operator (--tuned)")
    parser.add_argument("--minutes", type=float, default=10.0,
                        help="tuning budget per model (--tuned)")
    args = parser.parse_args()

    from hcompile.cli.bench_cmd import ort_session, set_threads
    from hcompile.timing import random_inputs, time_interleaved

    set_threads(args.threads)
    import hcompile
    from models.build import build_model

    peak = sgemm_peak_gflops(args.threads)
    print(f"threads {args.threads}; measured sgemm peak {peak:.0f} GFLOP/s; "
          f"{args.repeat} interleaved runs, medians")
    print(f"{'model':<12} {'batch':>5} {'cold s':>7} {'warm s':>7} {'hcompile ms':>12} "
          f"{'ORT ms':>9} {'ratio':>7} {'GFLOP/s':>8} {'% peak':>7}")
    ratios = []
    for name in args.only:
        path = build_model(name, ROOT / "models" / "onnx")
        for batch in args.batches:
            shapes = input_shapes(path, batch)
            if args.tuned:
                from hcompile.tuning.tune import tune_model

                tuned = tune_model(path, input_shapes=shapes, trials=args.trials,
                                   minutes=args.minutes)
                check = tuned.validation
                print(f"  tune {name} b{batch}: {len(tuned.tuned)} searched, "
                      f"{len(tuned.skipped_budget)} left; kept {len(check.kept)}, "
                      f"dropped {len(check.dropped)}, rules best {len(check.rules_best)}; "
                      f"{tuned.seconds:.0f} s ({check.seconds:.0f} s validating)", flush=True)
            # Cold compile into an empty compile cache, then the warm one from it.
            with tempfile.TemporaryDirectory() as tmp:
                saved = os.environ.get("HCOMPILE_CACHE_DIR")
                os.environ["HCOMPILE_CACHE_DIR"] = tmp
                _link_tuning(saved, Path(tmp))
                start = time.perf_counter()
                hcompile.compile(path, input_shapes=shapes)
                cold = time.perf_counter() - start
                start = time.perf_counter()
                artifact = hcompile.compile(path, input_shapes=shapes)
                warm = time.perf_counter() - start
                if saved is None:
                    del os.environ["HCOMPILE_CACHE_DIR"]
                else:
                    os.environ["HCOMPILE_CACHE_DIR"] = saved
            exe = hcompile.load(artifact)
            feeds = random_inputs(exe.inputs, 0)
            session = ort_session(path, args.threads)
            times = time_interleaved({"hc": partial(exe.run, feeds),
                                      "ort": partial(session.run, None, feeds)},
                                     repeat=args.repeat, warmup=args.warmup)
            ours, theirs = times["hc"].median_ms, times["ort"].median_ms
            flops = model_flops(path, shapes)
            gflops = flops / (ours * 1e-3) / 1e9
            ratios.append(ours / theirs)
            print(f"{name:<12} {batch:>5} {cold:>7.2f} {warm:>7.2f} {ours:>12.3f} "
                  f"{theirs:>9.3f} {ours / theirs:>7.2f} {gflops:>8.1f} "
                  f"{100 * gflops / peak:>6.1f}%", flush=True)
    if ratios:
        print(f"median ratio {statistics.median(ratios):.2f}, worst {max(ratios):.2f}")


def _link_tuning(saved: str | None, tmp: Path) -> None:
    """Let the temporary cache dir see the real tuning database (only compiles go cold)."""
    from hcompile.runtime.cache import default_cache_dir

    real = Path(saved) if saved else None
    if real is None:
        os.environ.pop("HCOMPILE_CACHE_DIR", None)
        real = default_cache_dir()
        os.environ["HCOMPILE_CACHE_DIR"] = str(tmp)
    tuning = real / "tuning"
    if tuning.is_dir():
        (tmp / "tuning").symlink_to(tuning, target_is_directory=True)


if __name__ == "__main__":
    main()
