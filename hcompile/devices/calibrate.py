"""Host CPU calibration: measure this machine and hcompile's CPU code, cache the profile.

``hcompile devices --calibrate`` runs microbenchmarks and writes the host profile to
``<cache>/devices/host-<key>.toml`` (cache: ``$HCOMPILE_CACHE_DIR``, else
``$XDG_CACHE_HOME/hcompile``, else ``~/.cache/hcompile``). The key hashes the CPU model,
core count, the hcompile and TVM versions and the sources of the CPU code generator: the
efficiencies describe the code hcompile generates today, so a changed code generator (new
schedules) needs a new calibration, and until then the uncalibrated profile is used.

What is measured:
* peak FLOP/s: a numpy (BLAS) float32/float64 GEMM; memory bandwidth: a large copy;
* ``dispatch_s``: running a one-node model through ``hcompile.load(...).run``;
  ``launch_s``: the extra time per kernel of a chain of tiny recurrent-cell-like blocks, less
  what the calibrated model gives those kernels (the cost model charges it once per kernel,
  ``passes.cost.kernel_groups``, on top of the kernel's own time);
* ``elementwise_s``: seconds per element of transcendental functions (Erf, Tanh, ...),
  whose generated code costs far more or less than a FLOP count says;
* ``memory_bytes``: the host's RAM (/proc/meminfo), the capacity the resource check uses;
* compute efficiency of conv, depthwise conv, matmul and matvec on a grid of reduction
  length k and output row length n (``microbench.GRIDS``): single-op models compiled with
  ``hcompile.compile`` and timed through the runtime, as a fraction of the GEMM peak
  (convs as one more conv in a chain, strided ones less the blocked layout's conversions);
* memory efficiency of elementwise, pool, norm, reduce and data ops.
Every timing is the minimum of several runs (robust to other load on the machine).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Progress = Callable[[str], None]



def codegen_fingerprint() -> str:
    """A hash of the sources that decide hcompile's CPU code (the cpu target and its
    schedules, lowering, op lowerings) and of the settings that change it: a new schedule
    makes the old calibration stale. Found without importing them (no TVM import)."""
    import importlib.util

    digest = hashlib.sha256()
    digest.update(os.environ.get("HCOMPILE_CPU_SCHEDULES", "1").encode())
    digest.update(os.environ.get("HCOMPILE_CPU", "").encode())
    roots = []
    for package, parts in (("hcompile.targets", ("llvm_cpu", "lowering.py", "base.py")),
                           ("hcompile.ops", ("",))):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            roots += [Path(location) / part for part in parts]
    for root in roots:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def machine_info() -> dict[str, Any]:
    """What the calibration depends on: the CPU, its cores, and the code generator."""
    import importlib.metadata as md

    def version(dist: str) -> str:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            return "unknown"

    return {"cpu": _cpu_model(), "cores": os.cpu_count() or 1, "machine": platform.machine(),
            "hcompile": version("hcompile"), "tvm": version("apache-tvm"),
            "codegen": codegen_fingerprint()}


def cache_path() -> Path:
    info = machine_info()
    key = hashlib.sha256(repr(sorted(info.items())).encode()).hexdigest()[:16]
    from hcompile.runtime.cache import default_cache_dir

    return default_cache_dir() / "devices" / f"host-{key}.toml"


def cached_host_table() -> dict[str, Any] | None:
    """The calibrated host profile of this machine, or None when not calibrated yet."""
    path = cache_path()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    table.setdefault("calibration", {})["cache_file"] = str(path)
    return table


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---- measurement -----------------------------------------------------------------------

@dataclass
class Calibration:
    """The measured host profile (a TOML table) and the raw measurements."""

    table: dict[str, Any]
    benches: list[dict[str, Any]] = field(default_factory=list)


def _best_of(fn: Callable[[], object], min_time: float = 0.3, min_reps: int = 7,
             max_reps: int = 500) -> float:
    """Best wall time of ``fn`` over at least ``min_reps`` runs and ``min_time`` seconds (at
    most ``max_reps`` runs). On a loaded 2-core machine a 50 us kernel needs hundreds of
    runs to find both cores free: 200 left the matmul benchmarks ~20% slow."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= max_reps:
            break
    return min(times)


def measure_gemm_peak(dtype: str = "float32", size: int = 1024) -> float:
    rng = np.random.default_rng(0)
    a = rng.random((size, size)).astype(dtype)
    b = rng.random((size, size)).astype(dtype)
    out = np.empty_like(a)
    seconds = _best_of(lambda: np.matmul(a, b, out=out), min_reps=3)
    return 2.0 * size**3 / seconds


def measure_stream(nbytes: int = 1 << 27) -> float:
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    seconds = _best_of(lambda: np.copyto(dst, src), min_reps=3)
    return 2.0 * nbytes / seconds


def runner(model: Any) -> Callable[[], object]:
    """``run()`` of ``hcompile.load(hcompile.compile(model))`` on fixed random inputs."""
    import hcompile

    exe = hcompile.load(hcompile.compile(model, targets=["cpu"]))
    rng = np.random.default_rng(0)
    feeds = {s.name: rng.random(s.shape).astype(s.dtype) for s in exe.inputs}
    return lambda: exe.run(feeds)


def time_model(model: Any) -> float:
    """Best wall time of one run of ``model`` compiled for the CPU."""
    return _best_of(runner(model))


def calibrate(progress: Progress | None = None, rounds: int = 3) -> Calibration:
    """Measure the host and hcompile's CPU code; returns the profile table (not saved).

    Every microbenchmark is compiled first, then all are timed in ``rounds`` interleaved
    rounds and each keeps its best time, so that a burst of other load on the machine
    spoils at most one round of each.
    """
    from hcompile.devices import microbench as mb

    say = progress or (lambda msg: None)
    say("numpy GEMM peak and memory bandwidth")
    peak32 = measure_gemm_peak("float32")
    peak64 = measure_gemm_peak("float64", 512)
    stream = measure_stream()

    overhead = {"one-node model": mb.add_model((4,)), "chain of 1 cell": mb.small_op_chain(1),
                "chain of 32 cells": mb.small_op_chain(32)}
    grid = [mb.compute_bench(kind, k, n, r) for kind, (ks, ns) in mb.GRIDS.items()
            for k in ks for n in ns
            for r in ((1, mb.CHAIN_CONVS) if kind in mb.CHAINED_KINDS else (1,))]
    memory = [mb.memory_bench(kind, n) for kind in mb.MEMORY_KINDS for n in mb.MEMORY_SIZES]
    memory += [mb.pool_base(n) for n in mb.MEMORY_SIZES]
    unary = [mb.unary_bench(op) for op in mb.TIMED_ELEMENTWISE]
    models = list(overhead.values()) + [b.model for b in grid + memory + unary]
    names = list(overhead) + [b.name for b in grid + memory + unary]
    runs = []
    for name, model in zip(names, models, strict=True):
        say(f"compiling {name}")
        runs.append(runner(model))
    best = [float("inf")] * len(runs)
    for r in range(rounds):
        say(f"timing, round {r + 1} of {rounds}")
        for i, run in enumerate(runs):
            best[i] = min(best[i], _best_of(run, min_time=0.1, min_reps=3, max_reps=5000))
    tiny, chain1, chain32 = best[:3]
    timed = dict(zip(names[3:], best[3:], strict=True))
    # First with the chain's whole time per kernel as the launch overhead, then again with
    # the residual the first table leaves (what the cost model charges per kernel on top of
    # the kernels' own times): the benchmarks' kernel times are what remains of their runs
    # after dispatch and that same per-kernel charge.
    launch = max((chain32 - chain1) / (31 * mb.CHAIN_KERNELS), 1e-7)
    for _ in range(2):
        dispatch = max(tiny - launch, 1e-6)
        table, benches = _profile(mb, timed, launch, dispatch, peak32, peak64, stream, rounds)
        launch = residual_launch(table, chain32 - chain1)
    table["launch_s"] = launch
    table["dispatch_s"] = max(tiny - launch, 1e-6)
    benches = [{"name": n, "ms": t * 1e3} for n, t in zip(overhead, best[:3], strict=True)] \
        + benches
    table["calibration"]["benches"] = benches
    return Calibration(table, benches)


def _profile(mb: Any, timed: dict[str, float], launch: float, dispatch: float, peak32: float,
             peak64: float, stream: float, rounds: int
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The profile table from the benchmarks' best times (``timed``, by name), charging
    every benchmark ``dispatch`` once and ``launch`` per kernel."""
    benches: list[dict[str, Any]] = []
    kernel = {}
    for name, seconds in timed.items():
        copies = 1  # kernels per run
        if name.startswith("matvec"):
            copies = int(name.split()[1])
        elif name.endswith(f" x{mb.CHAIN_CONVS}"):
            copies = mb.CHAIN_CONVS
        elif name.startswith("pool: "):
            copies = 2  # the conv and the pool
        kernel[name] = max(seconds - dispatch - copies * launch, 1e-7)
    conversion = _marginal_convs(mb, kernel, launch=0.0)
    _strided_convs(mb, kernel, conversion)
    _blocked_pools(mb, kernel, conversion)
    benches += [{"name": name, "ms": seconds * 1e3} for name, seconds in kernel.items()]
    rates = {kind: [[grid_rate(mb, kernel, kind, k, n) for n in ns] for k in ks]
             for kind, (ks, ns) in mb.GRIDS.items()}
    mem_rates = {kind: [mb.memory_bench(kind, n).nbytes / kernel[mb.memory_bench(kind, n).name]
                        for n in mb.MEMORY_SIZES] for kind in mb.MEMORY_KINDS}
    bandwidth = max(stream, *(r for row in mem_rates.values() for r in row))
    # Other load on the machine can depress the GEMM peak more than the kernels measured
    # after it: the peak is at least the fastest kernel, so efficiencies stay <= 1.
    peak32 = max(peak32, *(r for table in rates.values() for row in table for r in row))

    def clamp(x: float) -> float:
        return float(min(max(x, 1e-4), 1.0))

    efficiency: dict[str, Any] = {
        kind: {"k": list(mb.GRIDS[kind][0]), "n": list(mb.GRIDS[kind][1]),
               "value": [[clamp(r / peak32) for r in row] for row in table]}
        for kind, table in rates.items()}
    efficiency["default"] = 1.0
    unary = [mb.unary_bench(op) for op in mb.TIMED_ELEMENTWISE]
    table: dict[str, Any] = {
        "name": "host",
        "target": "cpu",
        "description": f"host CPU, calibrated: {_cpu_model()}",
        "mem_bandwidth": bandwidth,
        "launch_s": launch,
        "launch_per_node": False,  # per kernel: fused nodes run in their head's kernel
        "dispatch_s": dispatch,
        "peak_flops": {"float32": peak32, "float64": peak64, "float16": peak32,
                       "bfloat16": peak32, "int8": 2 * peak32},
        "efficiency": efficiency,
        "measured_kinds": sorted(rates),
        "mem_efficiency": {k: {"n": [mb.memory_bench(k, n).elements for n in mb.MEMORY_SIZES],
                               "value": [[clamp(r / bandwidth) for r in row]]}
                           for k, row in mem_rates.items()},
        "layout_conversion_s": conversion,
        "elementwise_s": {op: kernel[b.name] / mb.UNARY_ELEMENTS
                          for op, b in zip(mb.TIMED_ELEMENTWISE, unary, strict=True)},
        **_memory_entry(),
        "calibration": {**machine_info(), "chain_node_s": launch,
                        "layout_conversion_s_per_element": conversion,
                        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "rounds": rounds,
                        "numpy_stream_bytes_per_s": stream},
    }
    return table, benches


def residual_launch(table: dict[str, Any], chain_seconds: float) -> float:
    """The per-kernel overhead the cost model must add: the measured time of the 31 extra
    chain blocks less what the calibrated model already gives their kernels, per kernel
    (``passes.cost.kernel_groups``: fused nodes run inside their head's kernel).

    Charging each node the chain's whole time per node (kernels included) as well as its
    kernel estimate counted the kernels twice; charging it to every node, fused or not,
    made the LSTM (566 nodes, ~122 kernels) +40% slow.
    """
    from hcompile.devices import microbench as mb
    from hcompile.devices.profile import DeviceProfile
    from hcompile.frontend import import_model
    from hcompile.passes import cost

    profile = DeviceProfile.from_mapping({**table, "launch_s": 0.0, "launch_per_node": False},
                                         where="calibration")
    kernels, nodes = 0.0, 0
    for blocks, sign in ((32, 1), (1, -1)):
        graph, _ = import_model(mb.small_op_chain(blocks))
        for c in cost.node_costs(graph).values():
            if not c.view:
                kernels += sign * cost.node_seconds(c, profile)
                nodes += sign * (not c.fused)
    return float(max((chain_seconds - kernels) / max(nodes, 1), 1e-8))


def _memory_entry() -> dict[str, float]:
    """The host's RAM as the profile's ``memory_bytes`` (the resource check's capacity)."""
    from hcompile.devices.profile import host_memory_bytes

    ram = host_memory_bytes()
    return {} if ram is None else {"memory_bytes": ram}


def _marginal_convs(mb: Any, kernel: dict[str, float], launch: float) -> float:
    """Replace each chained kind's lone-conv time by one more conv's time in a chain (see
    ``microbench.CHAINED_KINDS``); a lone conv's time stays where noise makes that <= 0.
    Returns the blocked layout's conversion time per element: the median over the chained
    points of (lone conv - marginal conv) per element converted around the lone conv."""
    per_element = []
    for kind in mb.CHAINED_KINDS:
        ks, ns = mb.GRIDS[kind]
        for k in ks:
            for n in ns:
                bench = mb.compute_bench(kind, k, n)
                one = bench.name
                chain = mb.compute_bench(kind, k, n, mb.CHAIN_CONVS).name
                extra = (kernel[chain] - kernel[one]) / (mb.CHAIN_CONVS - 1) - launch
                if extra > 0:
                    if bench.elements > 0 and kernel[one] > extra:
                        per_element.append((kernel[one] - extra) / bench.elements)
                    kernel[one] = extra
    return float(np.median(per_element)) if per_element else 0.0


def _strided_convs(mb: Any, kernel: dict[str, float], conversion: float) -> None:
    """Strided convs change the size, so they are timed alone: take the blocked layout's
    conversion of their input and output off (mobilenet's strided depthwise convs ran 5x
    faster in the model than alone), keeping at least a tenth of the lone time."""
    for kind in mb.GRIDS:
        if not kind.startswith("strided_"):
            continue
        ks, ns = mb.GRIDS[kind]
        for k in ks:
            for n in ns:
                bench = mb.compute_bench(kind, k, n)
                lone = kernel[bench.name]
                kernel[bench.name] = max(lone - conversion * bench.elements, 0.1 * lone)


def _blocked_pools(mb: Any, kernel: dict[str, float], conversion: float) -> None:
    """A pool of a conv's (blocked) output: the conv+pool benchmark less the conv alone,
    plus the conversion back of the conv output the pooled output replaced."""
    for n in mb.MEMORY_SIZES:
        chained, base = mb.memory_bench("pool", n), mb.pool_base(n)
        both = kernel[chained.name]
        pool = both - kernel[base.name] + conversion * base.elements
        kernel[chained.name] = max(pool, 0.05 * both)


def grid_rate(mb: Any, kernel: dict[str, float], kind: str, k: int, n: int) -> float:
    bench = mb.compute_bench(kind, k, n)
    return float(bench.flops / kernel[bench.name])


def save(calibration: Calibration, path: Path | None = None) -> Path:
    path = path or cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(dump_toml(calibration.table), encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---- a small TOML writer (tomllib reads only) -----------------------------------------

def dump_toml(data: dict[str, Any]) -> str:
    """TOML for nested dicts of numbers, strings, bools and lists (inline below level 1)."""
    head = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    lines = ["# Written by `hcompile devices --calibrate`; delete to re-calibrate.", *head]
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]"]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
