"""Pad: constant / reflect / edge (opset 13), an ``axes`` input (18), wrap (19).

Negative pads crop. ``pads`` lists all begins then all ends, over ``axes`` (default: every axis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from tvm import relax

from hcompile.ops.common import attr_str, check_choice, const_ints, norm_axes, shape, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@register("Pad", since=13, static_inputs=(1, 2, 3))
def lower_pad(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    dims = shape(ctx, node)
    mode = attr_str(node, "mode", "constant")
    check_choice(node, "mode", mode, _MODES)
    begins, ends = _pads(ctx, node, len(dims))
    x = ctx.input(node, 0)
    if min(begins + ends, default=0) < 0:
        if mode != "constant":
            raise unsupported(node, f"negative pads with mode={mode!r}")
        starts = [max(-b, 0) for b in begins]
        stops = [d - max(-e, 0) for d, e in zip(dims, ends, strict=True)]
        x = relax.op.strided_slice(x, list(range(len(dims))), starts, stops)
        begins, ends = [max(b, 0) for b in begins], [max(e, 0) for e in ends]
    if not any(begins + ends):
        return [x]
    if mode == "reflect" and any(
        p >= d for d, b, e in zip(dims, begins, ends, strict=True) for p in (b, e)
    ):
        raise unsupported(
            node, f"reflect pads {begins + ends} not smaller than the shape {list(dims)}"
        )
    widths = [w for pair in zip(begins, ends, strict=True) for w in pair]
    value = 0.0
    constant = ctx.const(node, 2)
    if mode == "constant" and constant is not None and np.asarray(constant).size:
        value = np.asarray(constant).reshape(-1)[0].item()
    return [relax.op.nn.pad(x, widths, _MODES[mode], value)]


def _pads(ctx: LowerContext, node: Node, rank: int) -> tuple[list[int], list[int]]:
    pads = const_ints(ctx, node, 1) or []
    axes_given = const_ints(ctx, node, 3) if node.opset >= 18 else None
    axes = norm_axes(node, axes_given, rank) if axes_given is not None else list(range(rank))
    if len(pads) != 2 * len(axes):
        raise unsupported(node, "pads", pads, hint=f"expected {2 * len(axes)} values")
    begins, ends = [0] * rank, [0] * rank
    for i, axis in enumerate(axes):
        begins[axis], ends[axis] = pads[i], pads[i + len(axes)]
    return begins, ends
