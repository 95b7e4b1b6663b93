"""Building blocks of ``decompose_rnn``: a node emitter, the RNN activations, and one cell per op.

A cell owns its weights, prepared at compile time in numpy (transposed, gate-split, biases summed),
and emits two kinds of work:

- ``project``: the input projection of *all* time steps at once, ``Gemm(X[T*N, I], Wᵀ, b)``,
  split into one ``[N, gates*H]`` tensor per step (hoisted out of the time loop);
- ``step``: one time step, with one fused recurrent ``Gemm(H_prev, Rᵀ, x_t)`` plus elementwise ops.

A state passed as ``None`` is known to be zero (the first step without an initial state); cells then
skip the work that multiplies by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcompile.ir import Graph, Node, TensorType


class Emitter:
    """Creates the nodes and constants replacing one RNN node.

    Every new tensor and node is named ``<rnn node name>/<hint>`` (made unique against ``taken``);
    a node is named after its first output. Output shapes are computed here, so every node gets a
    static ``output_types`` entry.
    """

    def __init__(self, graph: Graph, node: Node, taken: set[str], dtype: str) -> None:
        self.graph = graph
        self.prefix = node.name
        self.opset = max(node.opset, 13)  # Split/Squeeze/Clip take their sizes/bounds as inputs
        self.meta = {k: v for k, v in node.meta.items() if k == "source"}
        self.meta["decomposed_from"] = node.name
        self.dtype = dtype
        self.taken = taken
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self._cache: dict[Any, str] = {}

    # -- names, types, constants ------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        base = f"{self.prefix}/{hint}"
        name, k = base, 1
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name

    def type_of(self, name: str) -> TensorType:
        if name not in self.types:
            self.types[name] = self.graph.type_of(name)
        return self.types[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.type_of(name).shape

    def dtype_of(self, name: str) -> str:
        return self.type_of(name).dtype

    def const(self, value: np.ndarray, hint: str) -> str:
        name = self.fresh(hint)
        self.graph.constants[name] = value
        self.types[name] = TensorType.of(value)
        return name

    def scalar(self, value: float, dtype: str | None = None) -> str:
        """A shared 0-d constant (of the RNN's dtype unless given)."""
        dtype = dtype or self.dtype
        key = ("scalar", float(value), dtype)
        if key not in self._cache:
            self._cache[key] = self.const(np.array(value, dtype=dtype), f"c_{value:g}_{dtype}")
        return self._cache[key]

    def ints(self, values: Sequence[int], hint: str) -> str:
        """A shared 1-d int64 constant (shapes, split sizes, axes)."""
        key = ("ints", tuple(values))
        if key not in self._cache:
            self._cache[key] = self.const(np.array(values, dtype=np.int64), hint)
        return self._cache[key]

    def zeros(self, shape: tuple[int, ...]) -> str:
        key = ("zeros", shape)
        if key not in self._cache:
            self._cache[key] = self.const(np.zeros(shape, dtype=self.dtype), "zeros")
        return self._cache[key]

    # -- nodes ------------------------------------------------------------------------------------
    def emit(
        self,
        op: str,
        inputs: list[str],
        shapes: list[tuple[int, ...]],
        hint: str,
        *,
        attrs: dict[str, Any] | None = None,
        dtype: str | None = None,
        outputs: list[str] | None = None,
        domain: str = "",
    ) -> list[str]:
        outs = outputs or [self.fresh(hint if len(shapes) == 1 else f"{hint}{k}")
                           for k in range(len(shapes))]
        types = [TensorType(tuple(s), dtype or self.dtype) for s in shapes]
        name = outs[0] if outputs is None else self.fresh(hint)
        self.nodes.append(Node(op, name, inputs, outs, dict(attrs or {}), types,
                               domain=domain, opset=self.opset, meta=dict(self.meta)))
        self.types.update(zip(outs, types, strict=True))
        return outs

    def unary(self, op: str, x: str, hint: str) -> str:
        return self.emit(op, [x], [self.shape(x)], hint)[0]

    def binary(self, op: str, a: str, b: str, hint: str, dtype: str | None = None) -> str:
        shape = tuple(np.broadcast_shapes(self.shape(a), self.shape(b)))
        return self.emit(op, [a, b], [shape], hint, dtype=dtype)[0]

    def add(self, a: str, b: str, hint: str) -> str:
        return self.binary("Add", a, b, hint)

    def mul(self, a: str, b: str, hint: str) -> str:
        return self.binary("Mul", a, b, hint)

    def sub(self, a: str, b: str, hint: str) -> str:
        return self.binary("Sub", a, b, hint)

    def gemm(self, a: str, b: str, c: str | None, hint: str) -> str:
        """``a @ b (+ c)`` for 2-d ``a`` and ``b``; ``c`` broadcasts to the result."""
        shape = (self.shape(a)[0], self.shape(b)[1])
        return self.emit("Gemm", [a, b] + ([c] if c else []), [shape], hint)[0]

    def where(self, cond: str, a: str, b: str, hint: str) -> str:
        shape = tuple(np.broadcast_shapes(self.shape(cond), self.shape(a), self.shape(b)))
        return self.emit("Where", [cond, a, b], [shape], hint, dtype=self.dtype_of(a))[0]

    def clip(self, x: str, bound: float | None, hint: str) -> str:
        if bound is None:
            return x
        return self.emit("Clip", [x, self.scalar(-bound), self.scalar(bound)],
                         [self.shape(x)], hint)[0]

    def split(self, x: str, sizes: list[int], axis: int, hint: str) -> list[str]:
        """One Split node (one kernel whatever the number of pieces): for the per-step pieces
        of the input projection, which feed the recurrent Gemm's bias as they are."""
        if len(sizes) == 1:
            return [x]
        shape = self.shape(x)
        shapes = [(*shape[:axis], s, *shape[axis + 1:]) for s in sizes]
        return self.emit("Split", [x, self.ints(sizes, "split")], shapes, hint,
                         attrs={"axis": axis}, dtype=self.dtype_of(x))

    def slices(self, x: str, sizes: list[int], axis: int, hint: str) -> list[str]:
        """One Slice node per piece: for gates. A Split is a kernel of its own with a tuple
        of outputs, which TVM cannot fuse; a Slice fuses into the elementwise ops that read
        it, so a step's gate math becomes one or two kernels."""
        if len(sizes) == 1:
            return [x]
        shape = self.shape(x)
        pieces, start = [], 0
        for k, size in enumerate(sizes):
            piece = (*shape[:axis], size, *shape[axis + 1:])
            bounds = [self.ints([start], "start"), self.ints([start + size], "end"),
                      self.ints([axis], "axes")]
            pieces += self.emit("Slice", [x, *bounds], [piece], f"{hint}{k}",
                                dtype=self.dtype_of(x))
            start += size
        return pieces

    def concat(self, xs: list[str], axis: int, hint: str) -> str:
        if len(xs) == 1:
            return xs[0]
        shape = list(self.shape(xs[0]))
        shape[axis] = sum(self.shape(x)[axis] for x in xs)
        return self.emit("Concat", xs, [tuple(shape)], hint, attrs={"axis": axis},
                         dtype=self.dtype_of(xs[0]))[0]

    def reshape(self, x: str, shape: tuple[int, ...], hint: str, out: str | None = None) -> str:
        return self.emit("Reshape", [x, self.ints(shape, "shape")], [shape], hint,
                         dtype=self.dtype_of(x), outputs=[out] if out else None)[0]

    def transpose(self, x: str, perm: tuple[int, ...], hint: str, out: str | None = None) -> str:
        shape = tuple(self.shape(x)[p] for p in perm)
        return self.emit("Transpose", [x], [shape], hint, attrs={"perm": list(perm)},
                         dtype=self.dtype_of(x), outputs=[out] if out else None)[0]

    def gather(self, x: str, index: int, axis: int, hint: str) -> str:
        shape = self.shape(x)
        index_name = self.const(np.array(index, dtype=np.int64), f"{hint}_index")
        return self.emit("Gather", [x, index_name], [shape[:axis] + shape[axis + 1:]], hint,
                         attrs={"axis": axis}, dtype=self.dtype_of(x))[0]


# -- activations ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Activation:
    """One activation function of an RNN gate: lower-case name and its alpha/beta."""

    name: str
    alpha: float = 0.0
    beta: float = 0.0


def activate(em: Emitter, act: Activation, x: str, hint: str) -> str:
    """Emit ``act(x)`` with primitive ops."""
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softplus": "Softplus"}
    if act.name in simple:
        return em.unary(simple[act.name], x, hint)
    alpha, beta = em.scalar(act.alpha), em.scalar(act.beta)
    if act.name == "affine":
        return em.add(em.mul(x, alpha, f"{hint}_ax"), beta, hint)
    if act.name == "scaledtanh":
        inner = em.unary("Tanh", em.mul(x, beta, f"{hint}_bx"), f"{hint}_tanh")
        return em.mul(inner, alpha, hint)
    if act.name == "hardsigmoid":
        lin = em.add(em.mul(x, alpha, f"{hint}_ax"), beta, f"{hint}_axb")
        return em.emit("Clip", [lin, em.scalar(0.0), em.scalar(1.0)], [em.shape(x)], hint)[0]
    if act.name == "softsign":
        denom = em.add(em.unary("Abs", x, f"{hint}_abs"), em.scalar(1.0), f"{hint}_den")
        return em.binary("Div", x, denom, hint)
    if act.name == "thresholdedrelu":  # x > alpha ? x : 0
        above = em.binary("Greater", x, alpha, f"{hint}_above", dtype="bool")
        return em.where(above, x, em.scalar(0.0), hint)
    negative = em.binary("Less", x, em.scalar(0.0), f"{hint}_neg", dtype="bool")
    if act.name == "leakyrelu":  # x >= 0 ? x : alpha * x
        return em.where(negative, em.mul(x, alpha, f"{hint}_ax"), x, hint)
    # elu: x >= 0 ? x : alpha * (exp(x) - 1)
    expm1 = em.sub(em.unary("Exp", x, f"{hint}_exp"), em.scalar(1.0), f"{hint}_expm1")
    return em.where(negative, em.mul(expm1, alpha, f"{hint}_aexp"), x, hint)


# -- cells ----------------------------------------------------------------------------------------
@dataclass
class CellConfig:
    """Attributes shared by every cell of one RNN node (one direction)."""

    hidden: int
    acts: list[Activation]
    clip: float | None
    tag: str  # "fw" / "bw": names the direction in tensor names


class Cell:
    """One direction of an RNN op. Subclasses set the weights and implement ``step``."""

    #: number of recurrent states (h; h and c for LSTM)
    num_states = 1

    def __init__(self, em: Emitter, cfg: CellConfig) -> None:
        self.em = em
        self.cfg = cfg
        self.projections: list[tuple[str, str | None]] = []  # (Wᵀ const, bias const or None)

    def weight(self, value: np.ndarray, hint: str) -> str:
        value = np.ascontiguousarray(value, dtype=self.em.dtype)
        return self.em.const(value, f"{self.cfg.tag}/{hint}")

    def add_projection(self, w: np.ndarray, bias: np.ndarray | None, hint: str) -> None:
        """Register ``x @ w.T + bias`` (w: [gates*H, I]) as one hoisted input projection."""
        bias_name = None
        if bias is not None and np.any(bias):
            bias_name = self.weight(bias, f"{hint}_bias")
        self.projections.append((self.weight(w.T, f"{hint}_Wt"), bias_name))

    def project(self, x2: str, steps: int) -> list[tuple[str, ...]]:
        """Input projections of all steps: per step a tuple with one tensor per projection."""
        em, tag = self.em, self.cfg.tag
        per_step: list[list[str]] = [[] for _ in range(steps)]
        for wt, bias in self.projections:
            full = em.gemm(x2, wt, bias, f"{tag}/xproj")
            batch = em.shape(x2)[0] // steps
            for t, piece in enumerate(em.split(full, [batch] * steps, 0, f"{tag}/xproj_t")):
                per_step[t].append(piece)
        return [tuple(p) for p in per_step]

    def act(self, index: int, x: str, hint: str) -> str:
        x = self.em.clip(x, self.cfg.clip, f"{hint}_clip")
        return activate(self.em, self.cfg.acts[index], x, hint)

    def step(self, xs: tuple[str, ...], states: list[str | None], tag: str) -> list[str]:
        raise NotImplementedError


class RnnCell(Cell):
    """``H = f(x·Wᵀ + H·Rᵀ + Wb + Rb)``."""

    def __init__(self, em: Emitter, cfg: CellConfig, w: np.ndarray, r: np.ndarray,
                 b: np.ndarray | None) -> None:
        super().__init__(em, cfg)
        hid = cfg.hidden
        self.add_projection(w, None if b is None else b[:hid] + b[hid:], "x")
        self.rt = self.weight(r.T, "Rt")

    def step(self, xs: tuple[str, ...], states: list[str | None], tag: str) -> list[str]:
        (x,), (h,) = xs, states
        pre = x if h is None else self.em.gemm(h, self.rt, x, f"{tag}/pre")
        return [self.act(0, pre, f"{tag}/h")]


class GruCell(Cell):
    """ONNX GRU, gates z, r, h; ``linear_before_reset`` picks where the reset gate applies."""

    def __init__(self, em: Emitter, cfg: CellConfig, w: np.ndarray, r: np.ndarray,
                 b: np.ndarray | None, linear_before_reset: bool) -> None:
        super().__init__(em, cfg)
        hid = cfg.hidden
        self.lbr = linear_before_reset
        wb, rb = (np.zeros(3 * hid), np.zeros(3 * hid)) if b is None else (b[:3 * hid], b[3 * hid:])
        # x projections of z|r and of h, each with every bias that is not inside r * (...)
        self.add_projection(w[:2 * hid], wb[:2 * hid] + rb[:2 * hid], "xzr")
        self.add_projection(w[2 * hid:], wb[2 * hid:] + (0 if self.lbr else rb[2 * hid:]), "xh")
        self.rbh: str | None = None  # Rb_h, applied inside r * (...) when linear_before_reset
        self.rbias: str | None = None  # [0, 0, Rb_h]: the bias of the fused recurrent Gemm
        if self.lbr:
            self.rt = self.weight(r.T, "Rt")
            if np.any(rb[2 * hid:]):
                self.rbh = self.weight(rb[2 * hid:], "Rbh")
                self.rbias = self.weight(np.concatenate([np.zeros(2 * hid), rb[2 * hid:]]), "Rb")
        else:
            self.rt_zr = self.weight(r[:2 * hid].T, "Rt_zr")
            self.rt_h = self.weight(r[2 * hid:].T, "Rt_h")

    def step(self, xs: tuple[str, ...], states: list[str | None], tag: str) -> list[str]:
        em, hid = self.em, self.cfg.hidden
        (xzr, xh), (h,) = xs, states
        # hh: the recurrent term of the h gate that the reset gate multiplies (lbr only)
        hh: str | None = self.rbh if self.lbr else None
        if h is None:
            zr_pre = xzr
        elif self.lbr:
            hr = em.gemm(h, self.rt, self.rbias, f"{tag}/hR")
            hzr, hh = em.slices(hr, [2 * hid, hid], 1, f"{tag}/hR_")
            zr_pre = em.add(xzr, hzr, f"{tag}/zr_pre")
        else:
            zr_pre = em.gemm(h, self.rt_zr, xzr, f"{tag}/zr_pre")
        # Per-gate activations on slices: they fuse into their consumers (Emitter.slices).
        z_pre, r_pre = em.slices(zr_pre, [hid, hid], 1, f"{tag}/zr_")
        z, r = self.act(0, z_pre, f"{tag}/z"), self.act(0, r_pre, f"{tag}/r")
        if hh is not None:  # xh + r * (H_prev·Rhᵀ + Rbh)
            h_pre = em.add(xh, em.mul(r, hh, f"{tag}/r_hR"), f"{tag}/h_pre")
        elif h is not None and not self.lbr:  # xh + (r * H_prev)·Rhᵀ
            h_pre = em.gemm(em.mul(r, h, f"{tag}/r_h"), self.rt_h, xh, f"{tag}/h_pre")
        else:
            h_pre = xh
        cand = self.act(1, h_pre, f"{tag}/hcand")
        # H = (1 - z) * cand + z * H_prev = cand + z * (H_prev - cand)
        if h is None:
            return [em.sub(cand, em.mul(z, cand, f"{tag}/z_cand"), f"{tag}/h")]
        delta = em.mul(z, em.sub(h, cand, f"{tag}/h_minus_cand"), f"{tag}/z_delta")
        return [em.add(cand, delta, f"{tag}/h")]


class LstmCell(Cell):
    """ONNX LSTM, gates i, o, f, c (in ONNX's order, so i|o|f share one activation node)."""

    num_states = 2

    def __init__(self, em: Emitter, cfg: CellConfig, w: np.ndarray, r: np.ndarray,
                 b: np.ndarray | None, p: np.ndarray | None, input_forget: bool) -> None:
        super().__init__(em, cfg)
        hid = cfg.hidden
        self.input_forget = input_forget
        self.add_projection(w, None if b is None else b[:4 * hid] + b[4 * hid:], "x")
        self.rt = self.weight(r.T, "Rt")
        self.peep: list[str] | None = None  # P_i, P_o, P_f
        if p is not None and np.any(p):
            self.peep = [self.weight(p[k * hid:(k + 1) * hid], f"P{g}")
                         for k, g in enumerate("iof")]

    def step(self, xs: tuple[str, ...], states: list[str | None], tag: str) -> list[str]:
        em, hid = self.em, self.cfg.hidden
        (x,), (h, c) = xs, states
        pre = x if h is None else em.gemm(h, self.rt, x, f"{tag}/gates")
        # Per-gate slices and activations, not one activation over i|o|f: a node read by two
        # fused kernels cannot fuse into either (see Emitter.slices). Peepholes: i and f see
        # C_prev, o sees the new C.
        i_pre, o_pre, f_pre, c_pre = em.slices(pre, [hid] * 4, 1, f"{tag}/gates_")
        f: str | None = None  # the forget gate; unused while C_prev is zero
        i = self.act(0, self._peep(i_pre, 0, c, f"{tag}/i_pre"), f"{tag}/i")
        if c is not None and not self.input_forget:
            f = self.act(0, self._peep(f_pre, 2, c, f"{tag}/f_pre"), f"{tag}/f")
        cand = self.act(1, c_pre, f"{tag}/c_cand")
        c_new = em.mul(i, cand, f"{tag}/i_cand")
        if c is not None:
            if self.input_forget:  # coupled gates: f = 1 - i (as ORT)
                f = em.sub(em.scalar(1.0), i, f"{tag}/f_coupled")
            assert f is not None
            c_new = em.add(em.mul(f, c, f"{tag}/f_c"), c_new, f"{tag}/c")
        o = self.act(0, self._peep(o_pre, 1, c_new, f"{tag}/o_pre"), f"{tag}/o")
        h_new = em.mul(o, activate(em, self.cfg.acts[2], c_new, f"{tag}/c_act"), f"{tag}/h")
        return [h_new, c_new]

    def _peep(self, gate: str, index: int, c: str | None, hint: str) -> str:
        """``gate + P[index] * c`` with peepholes, else ``gate``."""
        if c is None or self.peep is None:
            return gate
        return self.em.add(gate, self.em.mul(c, self.peep[index], f"{hint}_peep"), hint)
