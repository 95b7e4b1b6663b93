"""LSTMs as one fused CPU kernel per direction, instead of unrolled steps.

``decompose_rnn`` unrolls recurrences into primitive ops that every target can run and the
partitioner can place. When the CPU is the only target nothing is gained from that, and a
step costs three kernel calls (recurrent matvec, gates, state update): 126 calls for the
zoo's 2-layer LSTM, which ran 1.3-2.2x ONNX Runtime's time. An LSTM the fused kernel covers
becomes instead: the hoisted input projection (one Gemm), one ``hcompile::LSTMRecurrence``
node per direction (``hcompile/ops/recurrent.py``), and the glue to ONNX's output layout.

Covered: float32; default activations (Sigmoid, Tanh, Tanh); any direction, layout, clip,
peepholes, input_forget and initial states; ``sequence_lens`` absent or constant at full
length. Anything else is unrolled, as are GRU and RNN. ``options.extra["rnn"] = "unroll"``
forces unrolling (tests of the decomposition itself).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hcompile.errors import UsageError

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.passes import PassOptions
    from hcompile.passes.decompose_rnn import _Spec
    from hcompile.passes.rnn_cells import Cell, Emitter, LstmCell

#: options.extra key choosing how recurrences compile, and its values
RNN_OPTION, RNN_MODES = "rnn", ("auto", "unroll")
_DEFAULT_LSTM_ACTIVATIONS = ["sigmoid", "tanh", "tanh"]


def fusable(node: Node, spec: _Spec, cells: list[Cell], dtype: str,
            options: PassOptions) -> bool:
    """Whether ``node`` becomes fused recurrence kernels (see the module docstring)."""
    mode = options.extra.get(RNN_OPTION, "auto")
    if mode not in RNN_MODES:
        raise UsageError(f"options.extra[{RNN_OPTION!r}] is {mode!r}; expected one of "
                         f"{', '.join(RNN_MODES)}", hint="leave it unset for the default (auto)")
    if mode != "auto" or list(options.targets) != ["cpu"]:
        return False
    if node.op != "LSTM" or dtype != "float32":
        return False
    if any([a.name for a in cell.cfg.acts] != _DEFAULT_LSTM_ACTIVATIONS for cell in cells):
        return False
    lens = spec.inputs["sequence_lens"]
    if not lens:
        return True
    constants = cells[0].em.graph.constants
    return lens in constants and bool(np.all(np.asarray(constants[lens]) >= spec.steps))


def emit(em: Emitter, spec: _Spec, cells: list[LstmCell], x_rows: str,
         initial: list[list[str | None]]) -> tuple[list[str], list[list[str | None]]]:
    """Per direction: the projection and the recurrence node. Returns ``Y`` of each direction
    ``[T, N, H]`` and the final states ``[Y_h, Y_c]`` of each direction ``[N, H]``."""
    steps, batch, hidden = spec.steps, spec.batch, spec.hidden
    ys: list[str] = []
    finals: list[list[str | None]] = []
    for d, (cell, tag) in enumerate(zip(cells, spec.tags, strict=True)):
        (wt, bias), = cell.projections
        xproj = em.reshape(em.gemm(x_rows, wt, bias, f"{tag}/xproj"),
                           (steps, batch, 4 * hidden), f"{tag}/xproj_steps")
        peep = ""
        if "P" in spec.weights and np.any(spec.weights["P"][d]):
            peep = cell.weight(spec.weights["P"][d], "P")
        attrs: dict[str, object] = {"reverse": int(tag == "bw"),
                                    "input_forget": int(cell.input_forget)}
        if cell.cfg.clip is not None:
            attrs["clip"] = float(cell.cfg.clip)
        h0, c0 = initial[d]
        y, y_h, y_c = em.emit("LSTMRecurrence",
                              [xproj, cell.rt, h0 or "", c0 or "", peep],
                              [(steps, batch, hidden), (batch, hidden), (batch, hidden)],
                              f"{tag}/recurrence", attrs=attrs, domain="hcompile")
        ys.append(y)
        finals.append([y_h, y_c])
    return ys, finals


def emit_y(em: Emitter, spec: _Spec, ys: list[str], out: str) -> None:
    """ONNX's ``Y``: ``[T, D, N, H]`` (layout 1: ``[N, T, D, H]``) from each direction's
    ``[T, N, H]``."""
    steps, batch, hidden, dirs = spec.steps, spec.batch, spec.hidden, len(ys)
    parts = [em.reshape(y, (steps, 1, batch, hidden), f"{tag}/y_tdnh")
             for y, tag in zip(ys, spec.tags, strict=True)]
    tdnh = parts[0] if dirs == 1 else em.concat(parts, 1, "Y_tdnh")
    if spec.layout == 0:
        em.reshape(tdnh, (steps, dirs, batch, hidden), "Y", out=out)
    else:
        em.transpose(tdnh, (2, 0, 1, 3), "Y", out=out)
