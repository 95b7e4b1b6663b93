"""What the CPU layout passes ask of a Relax expression's type: its static shape, its dtype."""

from __future__ import annotations

from tvm import relax


def static_shape(expr: relax.Expr) -> tuple[int, ...] | None:
    """The tensor's shape as ints; None for non-tensors, unknown or symbolic shapes."""
    ty = getattr(expr, "ty", None)
    shape = getattr(ty, "shape", None)
    if not isinstance(ty, relax.TensorType) or shape is None:
        return None
    try:
        return tuple(int(d) for d in shape)
    except (TypeError, ValueError):  # symbolic dims
        return None


def all_float32(*exprs: relax.Expr) -> bool:
    return all(str(getattr(getattr(e, "ty", None), "dtype", "")) == "float32" for e in exprs)
