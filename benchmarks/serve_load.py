"""Load test of ``hcompile serve`` on loopback: throughput, p50 and p99 latency, errors.

    .venv/bin/python benchmarks/serve_load.py [--model mlp] [--requests 2000]
        [--concurrency 16] [--max-batch 8] [--batch-timeout-ms 2]
        [--modes plain,batched,ray,ray-plain]

Each mode starts the real server as a separate process (``hcompile serve``) and drives it
with --concurrency threads, each with its own Triton HTTP client, sending batch-1 requests
as binary tensors. ``plain``: the batch-1 artifact, one run per request. ``batched``: the
batch-N artifact with dynamic batching. ``ray``: the batched server in 2 Ray Serve replicas
(a local Ray instance); ``ray-plain``: the batch-1 artifact in 2 replicas. Every reply is
checked against a direct ``exe.run``; a wrong or failed reply counts as an error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HCOMPILE = Path(sys.executable).parent / "hcompile"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(args: list[str], port: int, model: str, start_timeout: float) -> Iterator[str]:
    import tritonclient.http as httpclient

    proc = subprocess.Popen([str(HCOMPILE), "serve", *args, "--port", str(port), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read()}")  # type: ignore[union-attr]
            with contextlib.suppress(Exception), httpclient.InferenceServerClient(url) as c:
                if c.is_model_ready(model):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _drive(url: str, model: str, cases: list[tuple[np.ndarray, np.ndarray]], requests: int,
           concurrency: int) -> dict[str, float]:
    import tritonclient.http as httpclient

    latencies: list[float] = []
    errors = [0]
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker() -> None:
        with httpclient.InferenceServerClient(url) as client:
            while True:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                x, want = cases[index % len(cases)]
                tensor = httpclient.InferInput("x", list(x.shape), "FP32")
                tensor.set_data_from_numpy(x)
                start = time.perf_counter()
                try:
                    got = client.infer(model, [tensor]).as_numpy("y")
                    ok = got is not None and np.allclose(got, want, rtol=1e-5, atol=1e-6)
                except Exception:
                    ok = False
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    errors[0] += not ok

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = sorted(x * 1e3 for x in latencies)
    return {"requests": len(ms), "errors": errors[0], "rps": len(ms) / wall,
            "p50": statistics.median(ms), "p99": ms[min(len(ms) - 1, int(0.99 * len(ms)))]}


def _counts(url: str, model: str) -> tuple[int, int]:
    """(requests answered, executor runs) so far, from the statistics extension."""
    import tritonclient.http as httpclient

    with httpclient.InferenceServerClient(url) as client:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp", help="zoo model name (default mlp)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0)
    parser.add_argument("--modes", default="plain,batched,ray,ray-plain")
    args = parser.parse_args()

    import hcompile

    onnx_path = ROOT / "models" / "onnx" / f"{args.model}.onnx"
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        single = Path(tmp) / f"{args.model}.hca"
        batched = Path(tmp) / f"{args.model}_b{args.max_batch}.hca"
        hcompile.compile(onnx_path).save(single)
        exe = hcompile.load(single)
        spec = exe.inputs[0]
        if len(exe.inputs) != 1:
            raise SystemExit("serve_load drives single-input models only")
        shape = (args.max_batch, *spec.shape[1:])
        hcompile.compile(onnx_path, input_shapes={spec.name: shape}).save(batched)
        rng = np.random.default_rng(0)
        cases = []
        for _ in range(64):
            x = rng.standard_normal(spec.shape).astype(spec.dtype)
            cases.append((x, exe.run({spec.name: x})[exe.outputs[0].name]))
        batch_flags = ["--max-batch", str(args.max_batch),
                       "--batch-timeout-ms", str(args.batch_timeout_ms)]
        configs = {
            "plain": ([str(single)], 60.0),
            "batched": ([str(batched), *batch_flags], 60.0),
            "ray": ([str(batched), *batch_flags, "--ray", "--replicas", "2"], 180.0),
            "ray-plain": ([str(single), "--ray", "--replicas", "2"], 180.0),
        }
        print(f"model {args.model}, {args.requests} requests of batch 1, "
              f"{args.concurrency} concurrent, loopback, {os.cpu_count()} CPUs")
        print(f"{'mode':<28} {'ok':>6} {'errors':>6} {'req/s':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'req/run':>9}")
        for mode in modes:
            flags, start_timeout = configs[mode]
            label = {"plain": "plain (batch-1 artifact)",
                     "batched": f"dynamic batching (max {args.max_batch})",
                     "ray": f"Ray Serve x2 (max {args.max_batch})",
                     "ray-plain": "Ray Serve x2 (no batching)"}[mode]
            with _server([*flags, "--name", args.model], _free_port(), args.model,
                         start_timeout) as url:
                _drive(url, args.model, cases, min(200, args.requests), args.concurrency)
                before = _counts(url, args.model)
                r = _drive(url, args.model, cases, args.requests, args.concurrency)
                after = _counts(url, args.model)
            runs = after[1] - before[1]
            # Under Ray the stats request reaches one replica only: no fill figure there.
            fill = f"{(after[0] - before[0]) / runs:.1f}" if runs and "ray" not in mode else "-"
            print(f"{label:<28} {r['requests'] - r['errors']:>6} {r['errors']:>6} "
                  f"{r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {fill:>9}", flush=True)


if __name__ == "__main__":
    main()
