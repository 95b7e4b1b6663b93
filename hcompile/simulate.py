"""Event simulation of a plan: devices and links as resources, partitions as tasks.

This is how the heterogeneous executor runs a plan, and how every partitioner is scored:

* each device runs one partition at a time; a partition starts when its device is free and
  every tensor it reads is present on its device; among ready partitions the lowest id
  goes first; it takes ``dispatch + sum of its nodes' times``, and its outputs appear
  together when it ends (a partition is one compiled function);
* a tensor needed on another device is copied when its producer ends: over the source's
  link to the host, then over the destination's link from the host (each link direction
  is a FIFO resource); a copy to the host is shared by every device that needs it;
* model inputs start on the host at time 0; the latency is when the last model output is
  on the host.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcompile.passes.partition.problem import Problem

HOST = 0
HOST_BIT = 1 << HOST
_AVAIL, _FINISH, _READY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Copy:
    """One link hop of a tensor: ``link`` is ``(device, "up"|"down")``."""

    tensor: int
    src: int
    dst: int
    link: tuple[int, str]
    start: float
    end: float


@dataclass
class SimResult:
    """latency: seconds until the last model output is on the host; spans: per partition
    (start, end); ready: when each partition's inputs were all present; arrivals: when each
    (tensor, device) pair became present; copies: every link hop (when recorded); busy:
    seconds each device computed."""

    latency: float
    spans: list[tuple[float, float]] = field(default_factory=list)
    ready: list[float] = field(default_factory=list)
    arrivals: dict[tuple[int, int], float] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)


def simulate(problem: Problem, assign: list[int], groups: list[list[int]],
             record: bool = True) -> SimResult:
    """Simulate partitions ``groups`` (node lists, in a topological order of partitions)."""
    p = problem
    ndev = len(p.devices)
    times, producer, up, down = p.time_list, p.producer, p.hop_up, p.hop_down
    group_of = [0] * p.n
    for g, nodes in enumerate(groups):
        for v in nodes:
            group_of[v] = g
    gdev = [assign[nodes[0]] for nodes in groups]
    gtime = [p.dispatch[d] + sum(times[v][d] for v in nodes)
             for d, nodes in zip(gdev, groups, strict=True)]
    # Which groups wait for which tensors (readers[t]: (device, group)); which devices need
    # each tensor (a bitmask); which devices hold it or will (have, a bitmask).
    waiting = [0] * len(groups)
    readers: dict[int, list[tuple[int, int]]] = {}
    needed = [HOST_BIT if out else 0 for out in p.is_output]
    for g, nodes in enumerate(groups):
        d = gdev[g]
        seen = set()
        for v in nodes:
            for t in p.inputs[v]:
                prod = producer[t]
                if t in seen or (prod >= 0 and group_of[prod] == g):
                    continue
                seen.add(t)
                waiting[g] += 1
                readers.setdefault(t, []).append((d, g))
                needed[t] |= 1 << d
    ready_at = [0.0] * len(groups)
    have = [0] * len(p.tensors)
    link_free = [0.0] * (2 * ndev)  # 2d: device d's link to the host, 2d+1: from the host
    events: list[tuple[float, int, int, int]] = []  # time, kind, key, device
    queue: list[list[int]] = [[] for _ in range(ndev)]
    device_free = [True] * ndev
    spans = [(0.0, 0.0)] * len(groups)
    busy = [0.0] * ndev
    arrivals: dict[tuple[int, int], float] = {}
    copies: list[Copy] = []
    latency = 0.0
    push, pop = heapq.heappush, heapq.heappop

    def hop(t: int, src: int, dst: int, now: float) -> None:
        slot = 2 * src if dst == HOST else 2 * dst + 1
        start = now if now > link_free[slot] else link_free[slot]
        end = start + (up[t][src] if dst == HOST else down[t][dst])
        link_free[slot] = end
        have[t] |= 1 << dst
        push(events, (end, _AVAIL, t, dst))
        if record:
            copies.append(Copy(t, src, dst, (src, "up") if dst == HOST else (dst, "down"),
                               start, end))

    def arrive(t: int, dev: int, now: float) -> float:
        arrivals[(t, dev)] = now
        for d, g in readers.get(t, ()):
            if d == dev:
                waiting[g] -= 1
                if now > ready_at[g]:
                    ready_at[g] = now
                if waiting[g] == 0:
                    push(events, (ready_at[g], _READY, g, 0))
        missing = needed[t] & ~have[t]
        if missing:  # forward to the devices that still need it, through the host
            if dev == HOST:
                for d in range(1, ndev):
                    if missing >> d & 1:
                        hop(t, HOST, d, now)
            elif not have[t] & HOST_BIT:
                hop(t, dev, HOST, now)
        return now if dev == HOST and p.is_output[t] else 0.0

    for t in range(len(p.tensors)):
        if producer[t] < 0:
            have[t] = HOST_BIT
            push(events, (0.0, _AVAIL, t, HOST))
    for g in range(len(groups)):
        if waiting[g] == 0:
            push(events, (0.0, _READY, g, 0))

    while events:
        now = events[0][0]
        while events and events[0][0] == now:
            _, kind, key, dev = pop(events)
            if kind == _AVAIL:
                latency = max(latency, arrive(key, dev, now))
            elif kind == _FINISH:
                d = gdev[key]
                device_free[d] = True
                for v in groups[key]:
                    for t in p.outputs[v]:
                        have[t] |= 1 << d
                        latency = max(latency, arrive(t, d, now))
            else:
                push(queue[gdev[key]], key)
        for d in range(ndev):
            if device_free[d] and queue[d]:
                g = pop(queue[d])
                device_free[d] = False
                end = now + gtime[g]
                spans[g] = (now, end)
                busy[d] += gtime[g]
                push(events, (end, _FINISH, g, 0))
    if any(w > 0 for w in waiting):
        raise ValueError("the partitions form a cycle or read a tensor nobody produces")
    latency = max(latency, max((s[1] for s in spans), default=0.0))
    return SimResult(latency, spans, ready_at, arrivals, copies, busy)
