"""Decompose LSTM / GRU / RNN (ai.onnx, opset 7 and 14 semantics) into primitive ONNX ops.

TVM has no recurrent operators, so every RNN node becomes an unrolled loop over its (static)
sequence length, built from Gemm, Split, Add, Mul, Sub, Where, Less, Concat, Reshape, Transpose,
Gather, Clip and the activation ops:

    X [T, N, I] --Reshape--> [T*N, I] --Gemm(Wᵀ, Wb+Rb)--> Split into T x [N, gates*H]   (hoisted)
    per step t:  gates = Gemm(H_prev, Rᵀ, x_t); split; activations; new H (and C)
    sequence_lens: valid = Less(t, lens); H = Where(valid, H_new, H_prev);
                   Y_t = Where(valid, H_new, 0)
    Y = Reshape(Concat(Y_t...)) [T, D, N, H];  Y_h / Y_c = Reshape(Concat(final states))

Weights are prepared at compile time (transposed, gate-split, biases summed) and added as new
constants; W, R, B and P must therefore be constants (:data:`DECOMPOSED`), while X, sequence_lens,
initial_h and initial_c may be run-time tensors. Behaviour follows ONNX Runtime where the spec is
silent: a batch entry's steps past its length leave the state unchanged and write zeros to Y, and
an entry of length 0 gets zero Y_h / Y_c even when an initial state is given. The cells live in
``rnn_cells.py``; outputs nobody reads are not computed.

When the CPU is the only target, LSTMs the fused kernel covers are not unrolled: after the
hoisted projection each direction becomes one ``hcompile::LSTMRecurrence`` node
(``rnn_fused.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from hcompile.errors import ModelError, UnsupportedOpError
from hcompile.passes import rnn_fused
from hcompile.passes.rnn_cells import (
    Activation,
    Cell,
    CellConfig,
    Emitter,
    GruCell,
    LstmCell,
    RnnCell,
)

if TYPE_CHECKING:
    from hcompile.ir import Graph, Node
    from hcompile.passes import PassOptions

#: Ops this pass removes -> indices of inputs that must be compile-time constants (W, R, B, P).
DECOMPOSED: dict[str, tuple[int, ...]] = {"LSTM": (1, 2, 3, 7), "GRU": (1, 2, 3), "RNN": (1, 2, 3)}

#: Gates per op (rows of W per direction, in units of hidden_size) and default activations.
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_DEFAULT_ACTIVATIONS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"),
                       "RNN": ("Tanh",)}
_DIRECTIONS = {"forward": ["fw"], "reverse": ["bw"], "bidirectional": ["fw", "bw"]}

#: ONNX RNN activation (lower-case) -> (takes alpha, takes beta, default alpha, default beta).
#: Defaults follow ONNX Runtime (rnn_helpers.cc), our oracle: 0 unless listed otherwise there.
#: (ThresholdedRelu's 0 differs from the standalone ThresholdedRelu op's default of 1.0.)
_ACTIVATION_ARGS: dict[str, tuple[bool, bool, float, float]] = {
    "sigmoid": (False, False, 0.0, 0.0),
    "tanh": (False, False, 0.0, 0.0),
    "relu": (False, False, 0.0, 0.0),
    "affine": (True, True, 0.0, 0.0),
    "leakyrelu": (True, False, 0.01, 0.0),
    "thresholdedrelu": (True, False, 0.0, 0.0),
    "scaledtanh": (True, True, 0.0, 0.0),
    "hardsigmoid": (True, True, 0.2, 0.5),
    "elu": (True, False, 1.0, 0.0),
    "softsign": (False, False, 0.0, 0.0),
    "softplus": (False, False, 0.0, 0.0),
}


#: Recurrences are unrolled at compile time; longer sequences would make graphs of millions of
#: nodes (the compile would run for hours), so they are refused with a clear error.
MAX_UNROLLED_STEPS = 4096


def run(graph: Graph, options: PassOptions) -> bool:
    """Replace every LSTM/GRU/RNN node in place by its unrolled (or fused) decomposition."""
    if not any(_is_rnn(node) for node in graph.nodes):
        return False
    taken = set(graph.tensor_types()) | {node.name for node in graph.nodes}
    used = set(graph.outputs) | {i for node in graph.nodes for i in node.inputs if i}
    nodes: list[Node] = []
    for node in graph.nodes:
        if _is_rnn(node):
            nodes.extend(_decompose(graph, node, taken, used, options))
        else:
            nodes.append(node)
    graph.nodes = nodes
    return True


def _is_rnn(node: Node) -> bool:
    return node.domain in ("", "ai.onnx") and node.op in DECOMPOSED


@dataclass
class _Spec:
    """What one RNN node computes, read from its inputs and attributes."""

    op: str
    steps: int  # T
    batch: int  # N
    hidden: int  # H
    layout: int
    tags: list[str]  # "fw" / "bw" per direction, in output order
    weights: dict[str, np.ndarray]  # W, R and, when given, B and P
    inputs: dict[str, str]  # X, sequence_lens, initial_h, initial_c ("" when absent)


def _parse(graph: Graph, node: Node) -> _Spec:
    names = list(node.inputs) + [""] * (8 - len(node.inputs))
    keys = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    given = dict(zip(keys, names, strict=True))
    weights = {}
    for key in ("W", "R", "B", "P"):
        name = given[key]
        if key == "P" and node.op != "LSTM":
            continue
        if not name:
            if key in ("W", "R"):
                raise ModelError(f"{node.op} input {key} is missing", node=node.name)
            continue
        if name not in graph.constants:
            raise UnsupportedOpError(
                f"{node.op} input {key} ('{name}') is computed at run time; hcompile needs the "
                "weights of recurrent ops as constants", node=node.name,
                hint="export the model with its weights as initializers")
        weights[key] = np.asarray(graph.constants[name])
    direction = str(node.attr("direction", "forward"))
    if direction not in _DIRECTIONS:
        raise ModelError(f"{node.op} attribute 'direction' is '{direction}'; expected forward, "
                         "reverse or bidirectional", node=node.name)
    layout = int(node.attr("layout", 0))
    x_shape = graph.type_of(given["X"]).shape
    if len(x_shape) != 3 or layout not in (0, 1):
        raise ModelError(f"{node.op} needs a 3-d X and layout 0 or 1 (got X{list(x_shape)}, "
                         f"layout {layout})", node=node.name)
    steps, batch = (x_shape[0], x_shape[1]) if layout == 0 else (x_shape[1], x_shape[0])
    tags = _DIRECTIONS[direction]
    hidden = int(node.attr("hidden_size", weights["R"].shape[-1]))
    expect = {"W": (len(tags), _GATES[node.op] * hidden, x_shape[2]),
              "R": (len(tags), _GATES[node.op] * hidden, hidden),
              "B": (len(tags), 2 * _GATES[node.op] * hidden), "P": (len(tags), 3 * hidden)}
    for key, value in weights.items():
        if value.shape != expect[key]:
            raise ModelError(f"{node.op} input {key} has shape {list(value.shape)}; expected "
                             f"{list(expect[key])}", node=node.name)
    if steps == 0 or batch == 0:
        raise UnsupportedOpError(f"{node.op} with an empty sequence or batch is not supported",
                                 node=node.name)
    if steps > MAX_UNROLLED_STEPS:
        raise UnsupportedOpError(
            f"{node.op} over {steps} time steps: hcompile unrolls recurrences and allows at most "
            f"{MAX_UNROLLED_STEPS} steps", node=node.name,
            hint="compile with a shorter sequence (--input-shape) and run it in chunks")
    inputs = {k: given[k] for k in ("X", "sequence_lens", "initial_h", "initial_c")}
    return _Spec(node.op, steps, batch, hidden, layout, tags, weights, inputs)


def _parse_activations(
    node: Node, defaults: tuple[str, ...], num_directions: int
) -> list[list[Activation]]:
    """``activations``/``activation_alpha``/``activation_beta`` -> one list per direction.

    alpha and beta values are consumed in order by the activations that take them (ORT's rule).
    """
    names = [str(a) for a in node.attr("activations", [])] or list(defaults) * num_directions
    per_dir = len(defaults)
    if len(names) != per_dir * num_directions:
        raise ModelError(f"{node.op} attribute 'activations' has {len(names)} entries; expected "
                         f"{per_dir * num_directions} ({per_dir} per direction)", node=node.name)
    alphas = [float(a) for a in node.attr("activation_alpha", [])]
    betas = [float(b) for b in node.attr("activation_beta", [])]
    parsed = []
    for name in names:
        key = name.lower()
        if key not in _ACTIVATION_ARGS:
            raise UnsupportedOpError(
                f"{node.op} attribute 'activations' uses '{name}', which is not supported",
                node=node.name, hint=f"supported: {', '.join(sorted(_ACTIVATION_ARGS))}")
        takes_alpha, takes_beta, alpha, beta = _ACTIVATION_ARGS[key]
        if takes_alpha and alphas:
            alpha = alphas.pop(0)
        if takes_beta and betas:
            beta = betas.pop(0)
        parsed.append(Activation(key, alpha, beta))
    return [parsed[d * per_dir:(d + 1) * per_dir] for d in range(num_directions)]


def _make_cells(em: Emitter, node: Node, spec: _Spec) -> list[Cell]:
    acts = _parse_activations(node, _DEFAULT_ACTIVATIONS[node.op], len(spec.tags))
    clip = node.attr("clip")
    cells: list[Cell] = []
    for d, tag in enumerate(spec.tags):
        cfg = CellConfig(spec.hidden, acts[d], None if clip is None else float(clip), tag)
        w, r = spec.weights["W"][d], spec.weights["R"][d]
        b = spec.weights["B"][d] if "B" in spec.weights else None
        if node.op == "LSTM":
            p = spec.weights["P"][d] if "P" in spec.weights else None
            cells.append(LstmCell(em, cfg, w, r, b, p, bool(node.attr("input_forget", 0))))
        elif node.op == "GRU":
            cells.append(GruCell(em, cfg, w, r, b, bool(node.attr("linear_before_reset", 0))))
        else:
            cells.append(RnnCell(em, cfg, w, r, b))
    return cells


class _Masks:
    """Which batch entries are inside their sequence at step t, from ``sequence_lens``.

    ``at(t)`` is True (all entries: no masking), False (none: skip the step) or the name of a
    bool ``[N, 1]`` tensor. Constant lengths give constant answers; run-time lengths a Less node.
    """

    def __init__(self, em: Emitter, lens: str, batch: int) -> None:
        self.em = em
        self.lens = lens
        self.batch = batch
        self.const: np.ndarray | None = None
        if lens in em.graph.constants:
            self.const = np.asarray(em.graph.constants[lens]).astype(np.int64).reshape(batch, 1)
        self._cache: dict[int, str | bool] = {}
        self._column: str | None = None

    def at(self, t: int) -> str | bool:
        if not self.lens:
            return True
        if t not in self._cache:
            self._cache[t] = self._build(t)
        return self._cache[t]

    def _build(self, t: int) -> str | bool:
        em = self.em
        if self.const is not None:
            valid = t < self.const
            if valid.all() or not valid.any():
                return bool(valid.all())
            return em.const(valid, f"valid_t{t}")
        if self._column is None:
            self._column = em.reshape(self.lens, (self.batch, 1), "lens_column")
        step = em.scalar(t, em.dtype_of(self.lens))
        return em.binary("Less", step, self._column, f"valid_t{t}", dtype="bool")


def _initial_state(em: Emitter, spec: _Spec, key: str, d: int) -> str | None:
    """Direction d's slice [N, H] of initial_h / initial_c; None when absent or all zeros."""
    name = spec.inputs[key]
    if not name:
        return None
    axis = 0 if spec.layout == 0 else 1
    if name in em.graph.constants:
        value = np.take(np.asarray(em.graph.constants[name]), d, axis=axis)
        if not np.any(value):
            return None
        return em.const(np.ascontiguousarray(value, dtype=em.dtype), f"{spec.tags[d]}/{key}")
    return em.gather(name, d, axis, f"{spec.tags[d]}/{key}")


def _decompose(graph: Graph, node: Node, taken: set[str], used: set[str],
               options: PassOptions) -> list[Node]:
    """The nodes replacing ``node`` (none when none of its outputs is used)."""
    spec = _parse(graph, node)
    outputs = list(node.outputs) + [""] * (3 - len(node.outputs))
    need = [bool(name) and name in used for name in outputs]  # Y, Y_h, Y_c
    if node.op != "LSTM":
        need[2] = False
    if not any(need):
        return []
    x_name = spec.inputs["X"]
    em = Emitter(graph, node, taken, graph.type_of(x_name).dtype)
    cells = _make_cells(em, node, spec)
    if spec.layout == 1:
        x_name = em.transpose(x_name, (1, 0, 2), "X_time_major")
    x_rows = em.reshape(x_name, (spec.steps * spec.batch, em.shape(x_name)[2]), "X_rows")
    if rnn_fused.fusable(node, spec, cells, em.dtype, options):
        starts = [[_initial_state(em, spec, key, d) for key in ("initial_h", "initial_c")]
                  for d in range(len(cells))]
        fused_ys, fused_finals = rnn_fused.emit(em, spec, cast("list[LstmCell]", cells),
                                                x_rows, starts)
        if need[0]:
            rnn_fused.emit_y(em, spec, fused_ys, outputs[0])
        _emit_outputs(em, spec, outputs, [False, *need[1:]], [], fused_finals)
        return em.nodes
    masks = _Masks(em, spec.inputs["sequence_lens"], spec.batch)
    ys: list[dict[int, str]] = []
    finals: list[list[str | None]] = []
    for d, cell in enumerate(cells):
        initial = [_initial_state(em, spec, key, d)
                   for key in ("initial_h", "initial_c")[:cell.num_states]]
        y, final = _unroll(em, spec, cell, cell.project(x_rows, spec.steps), initial, masks,
                           spec.tags[d], need[0])
        ys.append(y)
        finals.append(final)
    _emit_outputs(em, spec, outputs, need, ys, finals)
    return em.nodes


def _unroll(em: Emitter, spec: _Spec, cell: Cell, projections: list[tuple[str, ...]],
            initial: list[str | None], masks: _Masks, tag: str,
            need_y: bool) -> tuple[dict[int, str], list[str | None]]:
    """Emit one direction's time steps: (Y_t [N, H] by step t, final states)."""
    states = list(initial)
    ys: dict[int, str] = {}
    order = range(spec.steps) if tag == "fw" else range(spec.steps - 1, -1, -1)
    zero = em.scalar(0.0)
    for t in order:
        valid = masks.at(t)
        if valid is False:  # every sequence has ended: state unchanged, Y_t = 0
            if need_y:
                ys[t] = em.zeros((spec.batch, spec.hidden))
            continue
        new = cell.step(projections[t], states, f"{tag}/t{t}")
        if valid is True:
            states = list(new)
            ys[t] = new[0]
            continue
        if need_y:
            ys[t] = em.where(valid, new[0], zero, f"{tag}/t{t}/y")
        states = [em.where(valid, n, s or zero, f"{tag}/t{t}/state{k}")
                  for k, (n, s) in enumerate(zip(new, states, strict=True))]
    # ORT: an entry of length 0 ends with a zero state, not with its initial state
    first = masks.at(0)
    for k, (init, current) in enumerate(zip(initial, states, strict=True)):
        if init is None or current is None or first is True:
            continue
        states[k] = (em.where(first, current, zero, f"{tag}/final{k}")
                     if isinstance(first, str) else None)
    return ys, states


def _emit_outputs(em: Emitter, spec: _Spec, outputs: list[str], need: list[bool],
                  ys: list[dict[int, str]], finals: list[list[str | None]]) -> None:
    """Y [T, D, N, H] (layout 1: [N, T, D, H]); Y_h, Y_c [D, N, H] (layout 1: [N, D, H])."""
    steps, batch, hidden, dirs = spec.steps, spec.batch, spec.hidden, len(spec.tags)
    if need[0]:
        rows = em.concat([ys[d][t] for t in range(steps) for d in range(dirs)], 0, "Y_rows")
        if spec.layout == 0:
            em.reshape(rows, (steps, dirs, batch, hidden), "Y", out=outputs[0])
        else:
            tdnh = em.reshape(rows, (steps, dirs, batch, hidden), "Y_tdnh")
            em.transpose(tdnh, (2, 0, 1, 3), "Y", out=outputs[0])
    for k in (0, 1):
        if not need[k + 1]:
            continue
        states = [s or em.zeros((batch, hidden)) for s in (f[k] for f in finals)]
        if spec.layout == 0:
            em.reshape(em.concat(states, 0, f"final{k}_rows"), (dirs, batch, hidden),
                       f"final{k}", out=outputs[k + 1])
        else:
            em.reshape(em.concat(states, 1, f"final{k}_cols"), (batch, dirs, hidden),
                       f"final{k}", out=outputs[k + 1])
