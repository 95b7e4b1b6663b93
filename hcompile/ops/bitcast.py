"""BitCast (opset 26): reinterpret each element's bits as another type of the same width.

TIR's ``reinterpret`` does it for numeric types. ``bool`` is stored as one byte holding 0 or
1, so a bool <-> 8-bit cast is a value conversion with the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from tvm import relax, te, tirx

from hcompile.ops.common import dtype, onnx_dtype, out_shape, required, unsupported
from hcompile.ops.registry import register

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext


@register("BitCast", since=26)
def lower_bitcast(ctx: LowerContext, node: Node) -> Sequence[relax.Expr]:
    source = dtype(ctx, node)
    target = onnx_dtype(node, required(node, "to"))
    if "bfloat16" in (source, target):
        raise unsupported(node, "bfloat16 (no numpy-native element type)")
    if _bits(source) != _bits(target):
        raise unsupported(node, f"a cast from {source} to {target} (different bit widths)")
    x = ctx.input(node, 0)
    if source == target:
        return [x]
    if "bool" in (source, target):
        # bool holds 0/1 in one byte: the value conversion keeps those bits
        return [relax.op.astype(x, target)]
    dims = out_shape(node)

    def build(data: Any) -> Any:
        return te.compute(dims, lambda *i: tirx.reinterpret(target, data[i]), name="bitcast")

    return [ctx.bb.emit_te(build, x, primfunc_name_hint="bitcast")]


def _bits(name: str) -> int:
    return 8 if name == "bool" else np.dtype(name).itemsize * 8
