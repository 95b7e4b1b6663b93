"""The placement problem every partitioner solves, independent of the IR.

Nodes are indexed in topological order; device 0 is the host CPU (``cpu``), where model
inputs start and model outputs must end. ``time[v, d]`` is node ``v``'s estimated time on
device ``d`` (``inf`` where ``d`` cannot run it or is not allowed). Tensors carry the data
between nodes; a tensor needed on another device is copied over the links, staged through
the host when neither end is the host. FPGA devices have a resource budget that the nodes
placed on them must fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

HOST = 0


@dataclass(frozen=True, slots=True)
class Tensor:
    """name; producer: node index or -1 for a model input (on the host); consumers: node
    indices; nbytes: size; output: a model output (must reach the host)."""

    name: str
    producer: int
    consumers: tuple[int, ...]
    nbytes: float
    output: bool = False


@dataclass(frozen=True, slots=True)
class Link:
    """A device's link to the host: seconds per copy = latency + bytes / bandwidth."""

    latency: float
    bandwidth: float

    def seconds(self, nbytes: float) -> float:
        return self.latency + nbytes / self.bandwidth


@dataclass
class Problem:
    """devices: target names (``devices[0] == "cpu"``, the host); names: node names in
    topological order; time: (nodes, devices) seconds, read-only once constructed (make a
    new Problem to change it); tensors: data edges; dispatch: cost of starting a partition,
    per device; links: per device (None for the host); resources: device -> (nodes, r)
    of what each node needs there (DSP/BRAM/LUT/memory bytes from the place pass); budgets:
    device -> (r,) limit."""

    devices: tuple[str, ...]
    names: tuple[str, ...]
    time: np.ndarray
    tensors: tuple[Tensor, ...]
    dispatch: tuple[float, ...]
    links: tuple[Link | None, ...]
    resources: dict[int, np.ndarray] = field(default_factory=dict)
    budgets: dict[int, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, d = len(self.names), len(self.devices)
        if self.time.shape != (n, d):
            raise ValueError(f"time is {self.time.shape}, expected {(n, d)}")
        if self.devices[HOST] != "cpu" or self.links[HOST] is not None:
            raise ValueError("device 0 must be the host cpu, without a link")
        self.inputs: list[list[int]] = [[] for _ in range(n)]
        self.outputs: list[list[int]] = [[] for _ in range(n)]
        for t, tensor in enumerate(self.tensors):
            if tensor.producer >= 0:
                self.outputs[tensor.producer].append(t)
            for c in dict.fromkeys(tensor.consumers):
                if c <= tensor.producer:
                    raise ValueError(f"tensor {tensor.name}: consumer {c} precedes producer")
                self.inputs[c].append(t)
        self.preds = [sorted({self.tensors[t].producer for t in ins} - {-1})
                      for ins in self.inputs]
        self.succs: list[list[int]] = [[] for _ in range(n)]
        for v, ps in enumerate(self.preds):
            for p in ps:
                self.succs[p].append(v)
        self.allowed = [[dev for dev in range(d) if math.isfinite(self.time[v, dev])]
                        for v in range(n)]
        empty = [self.names[v] for v in range(n) if not self.allowed[v]]
        if empty:
            raise ValueError(f"nodes with no device that can run them: {empty}")
        # Plain lists for the simulator's inner loops (time is read-only after this).
        self.time_list: list[list[float]] = self.time.tolist()
        self.producer = [tensor.producer for tensor in self.tensors]
        self.is_output = [tensor.output for tensor in self.tensors]
        self.hop_up = [[0.0 if link is None else link.seconds(tensor.nbytes)
                        for link in self.links] for tensor in self.tensors]
        self.hop_down = self.hop_up  # links are symmetric: same cost each direction
        # xfer[t][a][b]: seconds to make tensor t, present on a, available on b.
        self.xfer = np.zeros((len(self.tensors), d, d))
        for t, tensor in enumerate(self.tensors):
            for a in range(d):
                for b in range(d):
                    self.xfer[t, a, b] = self.copy_seconds(tensor.nbytes, a, b)

    @property
    def n(self) -> int:
        return len(self.names)

    def copy_seconds(self, nbytes: float, src: int, dst: int) -> float:
        if src == dst:
            return 0.0
        seconds = 0.0
        for end in (src, dst):
            link = self.links[end]
            if link is not None:
                seconds += link.seconds(nbytes)
        return seconds

    def usage(self, assign: list[int], device: int) -> np.ndarray:
        """Resources the nodes assigned to ``device`` use there."""
        res = self.resources.get(device)
        if res is None:
            return np.zeros(len(next(iter(self.budgets.values()), np.zeros(3))))
        mask = np.fromiter((a == device for a in assign), bool, len(assign))
        return res[mask].sum(axis=0)

    def fits(self, assign: list[int]) -> bool:
        return all(np.all(self.usage(assign, d) <= budget + 1e-9)
                   for d, budget in self.budgets.items())

    def is_chain(self) -> bool:
        """Each node feeds only the next one, from one model input to one model output."""
        if any(len(ps) > 1 for ps in self.preds) or any(len(ss) > 1 for ss in self.succs):
            return False
        if any(self.preds[v] != [v - 1] for v in range(1, self.n)):
            return False
        outs = [t for t in self.tensors if t.output]
        return len(outs) == 1 and outs[0].producer == self.n - 1 and all(
            not t.output or t.producer == self.n - 1 for t in self.tensors)
