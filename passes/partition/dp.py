"""``dp``: dynamic programming over a topological order, with the live tensors as state.

The cost is the serial one: every node's time, every copy (once per tensor and device,
staged through the host), a partition start whenever the device changes from one node to
the next, and the copy of each model output back to the host. After node ``i`` the state
is the device of node ``i`` and, for every tensor still needed later, the set of devices
that hold it (a bitmask); nodes before ``i`` influence the future only through that state,
so keeping the cheapest way to reach each state is exact. On a chain the state is one
tensor and the serial cost is exactly the simulated latency, so ``dp`` is optimal there;
on a general graph it is optimal for the serial cost while the number of states stays
within ``max_states`` (else the cheapest states are kept, a beam search), and the
simulator then credits overlap between devices that the serial cost does not see.

With resource budgets the state also carries the resources used, and each state keeps its
Pareto front of (cost, resources) (at most ``PARETO`` entries).
"""

from __future__ import annotations

from hcompile.passes.partition.groups import Solution, evaluate, fit_budget
from hcompile.passes.partition.problem import HOST, Problem

PARETO = 8
#: Graphs up to this size carry FPGA resources in the DP state.
PARETO_NODES = 64

#: cost, resources used, parent key id, index in the parent's front, device of this node
Entry = tuple[float, tuple[float, ...], int, int, int]


def _dominated(a: Entry, b: Entry) -> bool:
    """Does ``b`` dominate ``a`` (no worse in cost and every resource)?"""
    return b[0] <= a[0] and all(y <= x for x, y in zip(a[1], b[1], strict=True))


def max_states_for(problem: Problem) -> int:
    """A state budget that keeps the work near 100k transitions."""
    return int(min(20000, max(16, 100000 // max(problem.n * len(problem.devices), 1))))


def placement(problem: Problem, max_states: int | None = None) -> list[int]:
    p = problem
    if p.n == 0:
        return []
    cap = max_states or max_states_for(p)
    # Resources in the state (exact under budgets) on small graphs; on large ones the
    # budget is enforced afterwards by fit_budget.
    budgeted = sorted(p.budgets) if p.n <= PARETO_NODES else []
    budgets = {d: p.budgets[d].tolist() for d in budgeted}
    resources = {d: p.resources[d].tolist() for d in budgeted}
    times = p.time.tolist()
    xfer = p.xfer.tolist()
    host_bit = 1 << HOST
    last_use = {t: max(tensor.consumers, default=-1) for t, tensor in enumerate(p.tensors)}
    live = [t for t, tensor in enumerate(p.tensors) if tensor.producer < 0 and tensor.consumers]
    # A key is (device of the last node, masks of the live tensors); each key keeps its
    # Pareto front of entries. history[v] is the layer before node v (for backtracking).
    keys: list[tuple[int, tuple[int, ...]]] = [(-1, tuple(host_bit for _ in live))]
    width = len(next(iter(budgets.values()))) if budgets else 0  # resources per device
    layer: dict[int, list[Entry]] = {0: [(0.0, (0.0,) * (width * len(budgeted)), -1, -1, -1)]}
    history: list[dict[int, list[Entry]]] = []
    for v in range(p.n):
        pos = {t: i for i, t in enumerate(live)}
        inputs = [(pos[t], xfer[t]) for t in p.inputs[v]]
        keep = [i for i, t in enumerate(live) if last_use[t] > v]
        born = tuple(t for t in p.outputs[v] if p.tensors[t].consumers and last_use[t] > v)
        moves = []
        for d in p.allowed[v]:
            add = times[v][d] + sum(xfer[t][d][HOST] for t in p.outputs[v]
                                    if p.tensors[t].output)
            slot = budgeted.index(d) * width if d in budgets else -1
            moves.append((d, 1 << d, add, (1 << d,) * len(born), slot))
        next_index: dict[tuple[int, tuple[int, ...]], int] = {}
        next_keys: list[tuple[int, tuple[int, ...]]] = []
        next_layer: dict[int, list[Entry]] = {}
        for kid, entries in layer.items():
            prev, masks = keys[kid]
            for d, bit, base, born_masks, slot in moves:
                add = base if d == prev else base + p.dispatch[d]
                new = list(masks)
                for i, rows in inputs:
                    m = new[i]
                    if not m & bit:
                        src = HOST if m & host_bit else m.bit_length() - 1
                        add += rows[src][d]
                        new[i] = m | bit | (host_bit if src != HOST else 0)
                key = (d, tuple([new[i] for i in keep]) + born_masks)
                nid = next_index.get(key)
                if nid is None:
                    nid = next_index[key] = len(next_keys)
                    next_keys.append(key)
                    next_layer[nid] = []
                front = next_layer[nid]
                for idx, (cost, used, *_rest) in enumerate(entries):
                    if slot >= 0:
                        grown = [u + r for u, r in zip(used[slot:slot + width], resources[d][v],
                                                       strict=True)]
                        if any(g > b + 1e-9 for g, b in zip(grown, budgets[d], strict=True)):
                            continue
                        used = (*used[:slot], *grown, *used[slot + width:])
                    _insert(front, (cost + add, used, kid, idx, d))
        history.append(layer)
        keys, layer = next_keys, _beam(next_layer, cap)
        live = [live[i] for i in keep] + list(born)
    return _backtrack(history, layer, p.n)


def _insert(entries: list[Entry], entry: Entry) -> None:
    """Keep ``entries`` a Pareto front (cost, resources), cheapest first."""
    if not entry[1]:
        if not entries:
            entries.append(entry)
        elif entry[0] < entries[0][0]:
            entries[0] = entry
        return
    if any(_dominated(entry, e) for e in entries):
        return
    entries[:] = [e for e in entries if not _dominated(e, entry)]
    entries.append(entry)
    entries.sort(key=lambda e: e[0])
    del entries[PARETO:]


def _beam(layer: dict[int, list[Entry]], cap: int) -> dict[int, list[Entry]]:
    layer = {k: e for k, e in layer.items() if e}
    if sum(len(e) for e in layer.values()) <= cap:
        return layer
    flat = sorted((e[0], k, i) for k, es in layer.items() for i, e in enumerate(es))[:cap]
    kept: dict[int, list[Entry]] = {}
    for _, k, i in sorted(flat, key=lambda x: (x[1], x[2])):
        kept.setdefault(k, []).append(layer[k][i])
    return kept


def _backtrack(history: list[dict[int, list[Entry]]], layer: dict[int, list[Entry]],
               n: int) -> list[int]:
    if not layer:
        raise ValueError("no placement fits the resource budgets")
    entry = min((e for es in layer.values() for e in es), key=lambda e: e[0])
    assign = [0] * n
    for v in reversed(range(n)):
        assign[v] = entry[4]
        entry = history[v][entry[2]][entry[3]]
    return assign


def solve(problem: Problem) -> Solution:
    assign = fit_budget(problem, placement(problem))[0]
    return evaluate(problem, assign, "dp")
