"""Dependency-driven execution: one worker (a thread with a queue) per device.

A partition becomes ready when every partition producing one of its inputs has finished
(a counter per request, not a fixed order); ready partitions go to their device's queue,
so independent partitions on different devices run at the same time, and with several
requests in flight (``Executor.run_many``) each device works on a different request.

Between devices a tensor takes an explicit **copy step** (a span on the link's trace
track): a device-resident tensor (:mod:`hcompile.runtime.residency`) is downloaded there;
a host tensor gets host staging (made a 64-byte aligned, contiguous host buffer for the
next device), the runner's upload staying inside its ``run``. Between partitions on the
same device there is no step: a resident tensor stays on the device.

Hot path notes: the per-request state is a few lists; a worker that finishes a partition
runs a ready successor on its own device directly instead of queueing it; graphs where
nothing can overlap are run in the caller's thread by the executor (no hand-off at all).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hcompile.runtime.residency import is_resident, resident_names
from hcompile.runtime.tensors import ALIGNMENT, to_ffi
from hcompile.runtime.trace import Trace, link_track

#: where model inputs and weights live
HOST = "cpu"


class StepGraph:
    """The partitions' dependencies: who produces each tensor and who waits for whom."""

    def __init__(self, steps: Sequence[tuple[Sequence[str], Sequence[str]]]) -> None:
        """``steps``: ``(input names, output names)`` per partition, in manifest order."""
        self.producer: dict[str, int] = {}
        self.deps: list[tuple[int, ...]] = []
        self.consumers: list[list[int]] = [[] for _ in steps]
        for i, (inputs, outputs) in enumerate(steps):
            deps = tuple(sorted({self.producer[n] for n in inputs if n in self.producer}))
            self.deps.append(deps)
            for d in deps:
                self.consumers[d].append(i)
            self.producer.update((n, i) for n in outputs)
        self.counts = [len(d) for d in self.deps]
        self.roots = [i for i, c in enumerate(self.counts) if c == 0]
        # ancestors as bit sets: step j depends (transitively) on i iff bit i of ancestors[j]
        self.ancestors: list[int] = []
        for deps in self.deps:
            bits = 0
            for d in deps:
                bits |= self.ancestors[d] | (1 << d)
            self.ancestors.append(bits)

    def independent(self, i: int, j: int) -> bool:
        """Whether neither step waits for the other (they may run at the same time)."""
        lo, hi = min(i, j), max(i, j)
        return not (self.ancestors[hi] >> lo) & 1

    def can_overlap(self, device_of: Sequence[str]) -> bool:
        """Whether two partitions on different devices could ever run at the same time."""
        n = len(self.deps)
        return any(device_of[i] != device_of[j] and self.independent(i, j)
                   for j in range(n) for i in range(j))


class DeviceWorkers:
    """One daemon thread and FIFO queue per device name, started on first use."""

    def __init__(self) -> None:
        self._queues: dict[str, queue.SimpleQueue[Callable[[], None] | None]] = {}
        self._lock = threading.Lock()

    def submit(self, device: str, work: Callable[[], None]) -> None:
        q = self._queues.get(device)
        if q is None:
            q = self._start(device)
        q.put(work)

    def _start(self, device: str) -> queue.SimpleQueue[Callable[[], None] | None]:
        with self._lock:
            q = self._queues.get(device)
            if q is None:
                q = queue.SimpleQueue()
                thread = threading.Thread(target=_serve, args=(q,), daemon=True,
                                          name=f"hcompile-{device}")
                thread.start()
                self._queues[device] = q
            return q

    def close(self) -> None:
        """Stop the threads once their queues are empty (idempotent)."""
        with self._lock:
            for q in self._queues.values():
                q.put(None)
            self._queues.clear()


def _serve(q: queue.SimpleQueue[Callable[[], None] | None]) -> None:
    # Holds only the queue (and no finished work while waiting), so an executor nobody
    # references can be collected.
    while True:
        work = q.get()
        if work is None:
            return
        work()
        del work


class Request:
    """One run in flight: its tensors, what is still pending, and how it ended."""

    __slots__ = (
        "done",
        "env",
        "error",
        "lock",
        "number",
        "pending",
        "remaining",
        "trace",
        "where",
    )

    def __init__(self, env: dict[str, Any], graph: StepGraph, trace: Trace | None) -> None:
        self.env = env
        self.where: dict[str, str] = {}  # tensor -> device that produced it (default: host)
        self.remaining = list(graph.counts)
        self.pending = len(graph.counts)
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.trace = trace
        self.number = trace.next_request() if trace is not None else 0

    def fail(self, error: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = error
        self.done.set()

    def wait(self) -> dict[str, Any]:
        """The environment once every partition has run; re-raises the first failure."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.env


#: ``run_step(index, args) -> outputs``: runs partition ``index`` (fallback included)
RunStep = Callable[[int, list[Any]], list[Any]]


class Scheduler:
    """Runs requests over a :class:`StepGraph` on :class:`DeviceWorkers`."""

    def __init__(self, graph: StepGraph, inputs: Sequence[Sequence[str]],
                 outputs: Sequence[Sequence[str]], labels: Sequence[str], run_step: RunStep,
                 device_of: Callable[[int], str]) -> None:
        self.graph = graph
        self._inputs = inputs
        self._outputs = outputs
        self._labels = labels
        self._run_step = run_step
        self._device_of = device_of
        self.workers = DeviceWorkers()

    def submit(self, env: dict[str, Any], trace: Trace | None = None) -> Request:
        """Start a request on ``env`` (model inputs and weights); returns at once."""
        request = Request(env, self.graph, trace)
        if not self.graph.counts:
            request.done.set()
        for i in self.graph.roots:
            self._dispatch(request, i)
        return request

    def _dispatch(self, request: Request, i: int) -> None:
        device = self._device_of(i)
        self.workers.submit(device, lambda: self._work(request, i, device))

    def _work(self, request: Request, i: int, device: str) -> None:
        graph = self.graph
        while True:
            if request.error is not None:
                return
            try:
                args = self._gather(request, i, device)
                start = time.perf_counter()
                results = self._run_step(i, args)
                end = time.perf_counter()
            except BaseException as error:  # the caller re-raises it from wait()
                request.fail(error)
                return
            ran_on = self._device_of(i)  # differs from ``device`` after a CPU fallback
            if request.trace is not None:
                # inputs that stayed on the device (no copy step): see residency.py
                kept = resident_names(self._inputs[i], args)
                request.trace.add(ran_on, self._labels[i], start, end, request=request.number,
                                  queue=device, **({"resident_inputs": kept} if kept else {}))
            names = self._outputs[i]
            request.env.update(zip(names, results, strict=False))
            if ran_on != HOST:
                request.where.update((n, ran_on) for n in names)
            ready = []
            with request.lock:
                for c in graph.consumers[i]:
                    request.remaining[c] -= 1
                    if request.remaining[c] == 0:
                        ready.append(c)
                request.pending -= 1
                finished = request.pending == 0
            if finished:
                request.done.set()
                return
            follow = -1
            for c in ready:
                if follow < 0 and self._device_of(c) == device:
                    follow = c  # run it here, without a queue hop
                else:
                    self._dispatch(request, c)
            if follow < 0:
                return
            i = follow

    def _gather(self, request: Request, i: int, device: str) -> list[Any]:
        env, where = request.env, request.where
        args = []
        for name in self._inputs[i]:
            value = env[name]
            src = where.get(name, HOST)
            if src != device:
                value = self._copy(request, name, value, src, device)
            args.append(value)
        return args

    def _copy(self, request: Request, name: str, value: Any, src: str, dst: str) -> Any:
        """The copy step from ``src`` to ``dst``: a download of a device-resident tensor, or
        host staging (see the module docstring)."""
        start = time.perf_counter()
        download = is_resident(value)
        array = value.to_numpy() if download else np.from_dlpack(value)
        if download or not array.flags.c_contiguous or array.ctypes.data % ALIGNMENT:
            value = to_ffi(array)
        end = time.perf_counter()
        if request.trace is not None:
            request.trace.add(link_track(src, dst), f"copy {name}", start, end,
                              request=request.number, bytes=int(array.nbytes),
                              **({"download": True} if download else {}))
        return value

    def close(self) -> None:
        self.workers.close()
