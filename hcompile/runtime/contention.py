"""How fast devices are alone and together, and the batch split that finishes first.

``--shard-batch auto`` needs, per device, the time of a shard of ``rows`` rows. Measuring
each device alone is not enough where "devices" share hardware: here PoCL (the ``fpga``)
and the TVM CPU code run on the same host cores, so two shards running at once each take
longer than alone. The model therefore has two parts per device:

* :class:`DeviceSpeed` alone: ``fixed_s + rows / rows_per_s``;
* a **slowdown** while other shards run at the same time: the ratio of its median run time
  while every other candidate device runs the model in a loop to its median time alone
  (:func:`measure_slowdown`). 1.0 means independent hardware (a real FPGA or GPU).

:func:`predict_makespan` plays a split forward in time: while two or more shards run each
progresses at ``1 / slowdown`` of its alone speed; once only one is left it runs at full
speed. :func:`best_split` searches whole-row splits for the smallest prediction; a single
device wins unless a split beats it, so where sharding does not pay, ``auto`` says so and
uses one device. The slowdown is measured with every candidate running, at the full batch;
with three or more devices a pair running alone is assumed to slow down as much.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

#: what each extra shard costs a request beyond its device time: a device-worker hand-off,
#: splitting the inputs and concatenating the outputs (benchmarks/dispatch_overhead.py
#: measures ~50 µs for the hand-offs of a request on the workers)
SHARD_OVERHEAD_S = 50e-6

#: at most this many splits are scored exhaustively; larger batches get a coarse grid first
MAX_GRID = 20000


class DeviceSpeed(NamedTuple):
    """A device's time for ``rows`` rows of the model: ``fixed_s + rows / rows_per_s``."""

    rows_per_s: float
    fixed_s: float = 0.0

    def seconds(self, rows: int) -> float:
        return self.fixed_s + rows / self.rows_per_s if rows > 0 else 0.0


@dataclass(frozen=True)
class SplitChoice:
    """The chosen rows per device, its predicted makespan, and the best single device."""

    batch: int
    rows: dict[str, int]
    predicted_s: float
    single: str
    single_s: float
    best_split_s: float  # the best split over two or more devices (inf if none)

    @property
    def fractions(self) -> dict[str, float]:
        return {t: r / self.batch for t, r in self.rows.items()}

    @property
    def sharded(self) -> bool:
        return sum(1 for r in self.rows.values() if r > 0) > 1

    def describe(self) -> str:
        used = ", ".join(f"{t}={f:.2f}" for t, f in self.fractions.items() if f > 0)
        text = f"{used}: predicted makespan {self.predicted_s * 1e3:.3g} ms"
        if self.sharded:
            return f"{text} (best single device: {self.single} {self.single_s * 1e3:.3g} ms)"
        other = (f"; the best split would take {self.best_split_s * 1e3:.3g} ms"
                 if self.best_split_s < float("inf") else "")
        return f"{text}; sharding does not pay, so it runs on {self.single} alone{other}"


def predict_makespan(rows: Mapping[str, int], speeds: Mapping[str, DeviceSpeed],
                     slowdown: Mapping[str, float] | None = None) -> float:
    """Seconds until every shard is done, plus :data:`SHARD_OVERHEAD_S` per extra shard."""
    slowdown = slowdown or {}
    work = {t: speeds[t].seconds(r) for t, r in rows.items() if r > 0}
    shards, now = len(work), 0.0
    while work:
        together = len(work) > 1
        rate = {t: 1.0 / max(slowdown.get(t, 1.0), 1.0) if together else 1.0 for t in work}
        first = min(work, key=lambda t: work[t] / rate[t])
        step = work[first] / rate[first]
        now += step
        work = {t: w - step * rate[t] for t, w in work.items() if t != first}
    return now + SHARD_OVERHEAD_S * max(shards - 1, 0)


def best_split(batch: int, speeds: Mapping[str, DeviceSpeed],
               slowdown: Mapping[str, float] | None = None) -> SplitChoice:
    """The whole-row split with the smallest :func:`predict_makespan`; ties go to fewer
    devices, and a split must beat the best single device to be chosen."""
    targets = [t for t in speeds if speeds[t].rows_per_s > 0]
    if not targets:
        raise ValueError("no device has a positive throughput")

    def cost(rows: Sequence[int]) -> float:
        return predict_makespan(dict(zip(targets, rows, strict=True)), speeds, slowdown)

    singles = {t: speeds[t].seconds(batch) for t in targets}
    single = min(targets, key=singles.__getitem__)  # first of equals: the given order
    best_rows: tuple[int, ...] | None = None
    best_s = float("inf")
    if len(targets) > 1:
        step = _grid_step(batch, len(targets))
        for split in _compositions(batch, len(targets), step):
            if sum(1 for r in split if r > 0) > 1 and (s := cost(split)) < best_s - 1e-12:
                best_rows, best_s = split, s
        if best_rows is not None:
            best_rows, best_s = _refine(best_rows, best_s, cost, step)
    chosen = {t: batch if t == single else 0 for t in targets}
    predicted = singles[single]
    if best_rows is not None and best_s < predicted - 1e-12:
        chosen, predicted = dict(zip(targets, best_rows, strict=True)), best_s
    return SplitChoice(batch, {t: chosen.get(t, 0) for t in speeds}, predicted, single,
                       singles[single], best_s)


def _grid_step(batch: int, devices: int) -> int:
    step = 1
    while ((batch // step) + 1) ** (devices - 1) > MAX_GRID:
        step += 1
    return step


def _compositions(batch: int, devices: int, step: int) -> Iterator[tuple[int, ...]]:
    """Rows per device (the last takes the rest), the others on a grid of ``step`` rows."""
    if devices == 1:
        yield (batch,)
        return
    firsts = sorted({*range(0, batch + 1, step), batch})
    for first in firsts:
        for rest in _compositions(batch - first, devices - 1, step):
            yield (first, *rest)


def _refine(rows: tuple[int, ...], best: float, cost: Callable[[Sequence[int]], float],
            step: int) -> tuple[tuple[int, ...], float]:
    """Hill-climb from a grid point: move up to ``step`` rows between two devices."""
    improved = step > 1
    while improved:
        improved = False
        for a in range(len(rows)):
            for b in range(len(rows)):
                for k in range(1, min(step, rows[a]) + 1):
                    trial = list(rows)
                    trial[a] -= k
                    trial[b] += k
                    if a != b and (s := cost(trial)) < best - 1e-12:
                        rows, best, improved = tuple(trial), s, True
    return rows, best


# -- measurement ---------------------------------------------------------------------------

#: ``run()`` -> None: one run of the model on one device (an executor bound to its inputs)
RunOnce = Callable[[], object]


def median_seconds(run: RunOnce, repeat: int) -> float:
    """Median time of ``repeat`` runs, after one warm-up run."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_slowdown(runs: Mapping[str, RunOnce], alone: Mapping[str, float],
                     repeat: int = 5, limit_s: float = 30.0) -> dict[str, float]:
    """Per device: its median run time while all the others run in a loop, over its median
    time ``alone`` (at least 1). Only runs that ended while every device was still
    running are counted."""
    if len(runs) < 2:
        return {t: 1.0 for t in runs}
    together = _run_together(runs, repeat, limit_s)
    return {t: max(statistics.median(together[t]) / max(alone[t], 1e-12), 1.0)
            if together[t] else 1.0 for t in runs}


def _run_together(runs: Mapping[str, RunOnce], repeat: int,
                  limit_s: float) -> dict[str, list[float]]:
    stop = threading.Event()
    start = threading.Barrier(len(runs) + 1)
    samples: dict[str, list[float]] = {t: [] for t in runs}

    def loop(target: str) -> None:
        start.wait()
        while not stop.is_set():
            begin = time.perf_counter()
            runs[target]()
            if not stop.is_set():
                samples[target].append(time.perf_counter() - begin)

    threads = [threading.Thread(target=loop, args=(t,), daemon=True) for t in runs]
    for thread in threads:
        thread.start()
    start.wait()
    deadline = time.perf_counter() + limit_s
    while min(len(s) for s in samples.values()) < repeat and time.perf_counter() < deadline:
        time.sleep(0.001)
    stop.set()
    for thread in threads:
        thread.join()
    return samples
