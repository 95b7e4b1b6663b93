"""Narrow element types in generated code: bfloat16, the float8 family, float4, int4/2, uint4/2.

Storage convention. In the IR a tensor keeps its ONNX element type (``float8_e4m3fn``,
``int4``...). In Relax, TIR, artifacts and at the DLPack boundary it is carried as the
same-width unsigned integer of :data:`hcompile.ir.types.NARROW_STORAGE` (uint16 for
bfloat16, uint8 for the rest: ml_dtypes keeps the sub-byte types one element per byte, value
in the low bits). The runtime views ml_dtypes arrays as their storage before TVM sees them
and views results back, so no target needs to know these types.

Arithmetic happens in a wide type: :func:`decode` turns storage bits into float32 (int32
for the integer types) and :func:`encode` turns float32/int32 back into bits. Both are one
elementwise TE kernel of integer bit operations, so LLVM, CUDA and OpenCL all compile them.
Semantics follow ``onnx.reference`` (Cast, QuantizeLinear), itself ml_dtypes:

* floats round to nearest even; ``saturate=True`` (ONNX Cast's default for float8) clamps
  overflow and infinities to the largest finite value, ``saturate=False`` gives inf where the
  type has one, else NaN. float4_e2m1fn has neither and always saturates.
* float8_e8m0fnu follows ``onnx.numpy_helper.to_float8e8m0`` (sign dropped, ``round_mode``
  up/nearest/down, 0xFF is NaN).
* int4/uint4/int2/uint2 from floats truncate toward zero and wrap (as ml_dtypes ``astype``);
  QuantizeLinear clamps before encoding.

:func:`lower_widened` applies this to ops that do not handle narrow types themselves:
pure data movement runs on the storage bits; anything else computes on decoded values
and encodes its narrow outputs (round to nearest even, non-saturating, like ``astype``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from tvm import relax, te, tirx

from hcompile.ir import TensorType
from hcompile.ir.types import is_narrow, storage_dtype

if TYPE_CHECKING:
    from hcompile.ir import Node
    from hcompile.targets.lowering import LowerContext

PrimExpr = Any  # a tirx expression; TVM has no type stubs, so nothing finer can be checked


class FloatFormat(NamedTuple):
    """A small IEEE-like float: exponent and mantissa widths, bias and special encodings."""

    exp_bits: int
    man_bits: int
    bias: int
    max_bits: int  # magnitude bits of the largest finite value
    nan_bits: int  # NaN's bits, sign included where the sign is kept
    has_inf: bool
    unsigned_zero: bool  # "fnuz": no negative zero; 0x80 is the only NaN


FLOAT_FORMATS = {
    "float8_e4m3fn": FloatFormat(4, 3, 7, 0x7E, 0x7F, False, False),
    "float8_e4m3fnuz": FloatFormat(4, 3, 8, 0x7F, 0x80, False, True),
    "float8_e5m2": FloatFormat(5, 2, 15, 0x7B, 0x7E, True, False),
    "float8_e5m2fnuz": FloatFormat(5, 2, 16, 0x7F, 0x80, False, True),
    "float4_e2m1fn": FloatFormat(2, 1, 1, 0x7, 0x8, False, False),
}
#: integer narrow types: (bits, signed)
INT_FORMATS = {"int4": (4, True), "uint4": (4, False), "int2": (2, True), "uint2": (2, False)}
#: ops whose lowerings only move elements: they run on the storage bits unchanged
MOVE_OPS = frozenset((
    "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split",
    "Slice", "Gather", "GatherElements", "GatherND", "Expand", "Tile", "DepthToSpace",
    "SpaceToDepth", "Dropout",
))  # fmt: skip
#: Relax's OpPatternKind kOpaque: FuseOps leaves such a kernel alone
_OPAQUE = 8
#: ops that handle narrow types in their own lowering
NATIVE_OPS = frozenset(("Cast", "CastLike", "QuantizeLinear", "DequantizeLinear"))


def wide_dtype(dtype: str) -> str:
    """The dtype a narrow ``dtype`` is computed in: int32 for integers, else float32."""
    return "int32" if dtype in INT_FORMATS else "float32"


def _i32(value: int) -> PrimExpr:
    return tirx.const(value, "int32")


def _f32(bits: PrimExpr) -> PrimExpr:
    return tirx.reinterpret("float32", bits)


def _nan() -> PrimExpr:
    # a float constant, not reinterpret(int constant): CUDA C cannot take a literal's address
    return tirx.const(float("nan"), "float32")


def _inf() -> PrimExpr:
    return tirx.const(float("inf"), "float32")


def _rne_shift(v: PrimExpr, shift: PrimExpr) -> PrimExpr:
    """``v >> shift`` rounded to nearest even (``v`` >= 0, 1 <= ``shift`` <= 31)."""
    lsb = (v >> shift) & _i32(1)
    return (v + (_i32(1) << (shift - 1)) - 1 + lsb) >> shift


# -- scalar codecs (TIR expressions) ------------------------------------------------------
def _encode_float(x: PrimExpr, fmt: FloatFormat, saturate: bool) -> PrimExpr:
    width = fmt.exp_bits + fmt.man_bits
    u = tirx.reinterpret("int32", x)
    sign = (u >> 31) & _i32(1)
    a = u & _i32(0x7FFFFFFF)
    ef = a >> 23
    sig = tirx.Select(ef > 0, (a & _i32(0x7FFFFF)) | _i32(0x800000), a & _i32(0x7FFFFF))
    et = tirx.max(ef, _i32(1)) - (127 - fmt.bias)  # the target's biased exponent
    # normal: exponent and mantissa as one integer, so a mantissa carry bumps the exponent
    v = tirx.Select(et >= 1, ((et - 1) << 23) + sig, sig)
    shift = tirx.min(_i32(23 - fmt.man_bits) + tirx.max(_i32(1) - et, _i32(0)), _i32(31))
    mag = _rne_shift(v, shift)
    is_nan = a > 0x7F800000
    overflow = tirx.Or(mag > fmt.max_bits, a == 0x7F800000)
    nan_mag = fmt.nan_bits & ((1 << width) - 1)
    no_specials = not (fmt.has_inf or fmt.unsigned_zero or nan_mag)  # float4: always clamps
    if saturate or no_specials:
        mag = tirx.Select(overflow, _i32(fmt.max_bits), mag)
    elif fmt.has_inf:
        mag = tirx.Select(overflow, _i32(fmt.max_bits + 1), mag)
    else:
        is_nan = tirx.Or(is_nan, overflow)
    bits = (sign << width) | mag
    if fmt.unsigned_zero:
        bits = tirx.Select(mag == 0, _i32(0), bits)
    if fmt.unsigned_zero:
        nan = _i32(fmt.nan_bits)
    elif no_specials:  # no NaN to give: ml_dtypes gives zero with the NaN's sign flipped
        nan = (sign ^ _i32(1)) << width
    else:
        nan = (sign << width) | nan_mag
    return tirx.Cast("uint8", tirx.Select(is_nan, nan, bits))


def _decode_float(b: PrimExpr, fmt: FloatFormat) -> PrimExpr:
    b = tirx.Cast("int32", b)
    width = fmt.exp_bits + fmt.man_bits
    ex = (b >> fmt.man_bits) & _i32((1 << fmt.exp_bits) - 1)
    man = b & _i32((1 << fmt.man_bits) - 1)
    normal = _f32(((ex - fmt.bias + 127) << 23) | (man << (23 - fmt.man_bits)))
    subnormal = tirx.Cast("float32", man) * tirx.const(2.0 ** (1 - fmt.bias - fmt.man_bits),
                                                        "float32")
    mag = tirx.Select(ex == 0, subnormal, normal)
    top = (1 << fmt.exp_bits) - 1
    if fmt.has_inf:  # IEEE-like: all-ones exponent is inf (mantissa 0) or NaN
        mag = tirx.Select(ex == top, tirx.Select(man == 0, _inf(),
                                                 _nan()), mag)
    elif fmt.unsigned_zero:
        mag = tirx.Select(b == 0x80, _nan(), mag)
    elif fmt.nan_bits & 0x7F:
        mag = tirx.Select((b & _i32((1 << width) - 1)) == fmt.nan_bits, _nan(),
                          mag)
    return tirx.Select(((b >> width) & _i32(1)) == 1, -mag, mag)


def _encode_bf16(x: PrimExpr) -> PrimExpr:
    u = tirx.reinterpret("uint32", x)
    one = tirx.const(1, "uint32")
    rounded = (u + tirx.const(0x7FFF, "uint32") + ((u >> 16) & one)) >> 16
    is_nan = (u & tirx.const(0x7FFFFFFF, "uint32")) > tirx.const(0x7F800000, "uint32")
    nan = ((u >> 16) & tirx.const(0x8000, "uint32")) | tirx.const(0x7FC0, "uint32")
    return tirx.Cast("uint16", tirx.Select(is_nan, nan, rounded))


def _decode_bf16(b: PrimExpr) -> PrimExpr:
    return _f32(tirx.Cast("int32", b) << 16)


def _encode_e8m0(x: PrimExpr, saturate: bool, round_mode: str) -> PrimExpr:
    u = tirx.reinterpret("int32", x)
    ef = (u >> 23) & _i32(0xFF)
    if round_mode == "nearest":  # exactly onnx.numpy_helper.to_float8e8m0's rule
        g, r, s = ((u & _i32(m)) != 0 for m in (0x400000, 0x200000, 0x1FFFFF))
        up: PrimExpr = tirx.And(g, tirx.Or(tirx.Or(r, s), ef > 0))
    elif round_mode == "up":
        up = (u & _i32(0x7FFFFF)) != 0
    else:
        up = tirx.const(False, "bool")
    if saturate:
        up = tirx.And(up, ef != 0xFE)
    bits = ef + tirx.Cast("int32", up)
    return tirx.Cast("uint8", tirx.Select(ef == 0xFF, _i32(0xFF), bits))


def _decode_e8m0(b: PrimExpr) -> PrimExpr:
    b = tirx.Cast("int32", b)
    value = _f32(tirx.Select(b == 0, _i32(0x00400000), b << 23))  # 2**-127 is subnormal
    return tirx.Select(b == 0xFF, _nan(), value)


def _encode_int(x: PrimExpr, bits: int, from_float: bool) -> PrimExpr:
    """int32 or float32 -> the low ``bits`` bits (floats truncate; NaN, inf, huge give 0)."""
    if from_float:
        fits = tirx.abs(x) < tirx.const(2.0**31, "float32")
        x = tirx.Select(fits, tirx.Cast("int32", x), _i32(0))
    return tirx.Cast("uint8", x & _i32((1 << bits) - 1))


def _decode_int(b: PrimExpr, bits: int, signed: bool) -> PrimExpr:
    v = tirx.Cast("int32", b) & _i32((1 << bits) - 1)
    if signed:
        v = tirx.Select(v >= (1 << (bits - 1)), v - (1 << bits), v)
    return v


# -- Relax level ------------------------------------------------------------------------------
def _elementwise(ctx: LowerContext, x: relax.Expr, fn: Callable[[PrimExpr], PrimExpr],
                 name: str) -> relax.Expr:
    """One TE kernel applying ``fn`` to every element of ``x``, never fused with its neighbours.

    ``fn`` uses its argument many times; fusion would inline a producer's whole expression at
    each use, exponentially along a decode/encode chain (TVM's simplifier then hangs), and a
    Let binding instead breaks TVM's bound analysis when loops are unrolled. So the kernel is
    marked opaque (op_pattern 8, kOpaque): one extra pass over memory, always correct.
    """
    def compute(t: te.Tensor) -> te.Tensor:
        return te.compute(t.shape, lambda *i: fn(t(*i)), name=name)

    return ctx.bb.emit_te(compute, _emitted(ctx, x), primfunc_name_hint=name,
                          primfunc_attrs={"op_pattern": _OPAQUE})


def _emitted(ctx: LowerContext, x: relax.Expr) -> relax.Var:
    """``x`` bound to a variable: emit_te takes variables only, and they carry the type."""
    return x if isinstance(x, relax.Var) else ctx.emit(x)


def decode(ctx: LowerContext, x: relax.Expr, dtype: str) -> relax.Expr:
    """Storage bits of narrow ``dtype`` -> float32 (int32 for int4/uint4/int2/uint2)."""
    if dtype == "bfloat16":
        fn: Callable[[PrimExpr], PrimExpr] = _decode_bf16
    elif dtype == "float8_e8m0fnu":
        fn = _decode_e8m0
    elif dtype in INT_FORMATS:
        bits, signed = INT_FORMATS[dtype]
        fn = lambda b: _decode_int(b, bits, signed)  # noqa: E731
    else:
        fmt = FLOAT_FORMATS[dtype]
        fn = lambda b: _decode_float(b, fmt)  # noqa: E731
    return _elementwise(ctx, x, fn, f"decode_{dtype}")


def encode(ctx: LowerContext, x: relax.Expr, dtype: str, *, saturate: bool = False,
           round_mode: str = "up") -> relax.Expr:
    """float32 (or int32 for the integer types) -> storage bits of narrow ``dtype``."""
    if dtype in INT_FORMATS:
        x = _emitted(ctx, x)
        bits, from_float = INT_FORMATS[dtype][0], str(x.ty.dtype) != "int32"
        fn: Callable[[PrimExpr], PrimExpr] = lambda v: _encode_int(v, bits, from_float)  # noqa: E731
    elif dtype == "bfloat16":
        fn = _encode_bf16
    elif dtype == "float8_e8m0fnu":
        fn = lambda v: _encode_e8m0(v, saturate, round_mode)  # noqa: E731
    else:
        fmt = FLOAT_FORMATS[dtype]
        fn = lambda v: _encode_float(v, fmt, saturate)  # noqa: E731
    suffix = "_sat" if saturate and dtype.startswith("float8") else ""
    return _elementwise(ctx, x, fn, f"encode_{dtype}{suffix}")


def cast(ctx: LowerContext, x: relax.Expr, source: str, target: str, *, saturate: bool = True,
         round_mode: str = "up") -> relax.Expr:
    """ONNX Cast where ``source`` or ``target`` is narrow (``x`` holds ``source``'s storage)."""
    if is_narrow(source):
        x = decode(ctx, x, source)
        source = wide_dtype(source)
    if not is_narrow(target):
        if target == "bool":
            return relax.op.not_equal(x, relax.const(0, source))
        return relax.op.astype(x, target) if target != source else x
    # integers wrap through int32; floats (also into integer types: they truncate) go through
    # float32, exactly from float16 (float64 rounds once)
    floating = source.startswith(("float", "bfloat"))
    wide = "float32" if floating or wide_dtype(target) == "float32" else "int32"
    if source != wide:
        x = relax.op.astype(x, wide)
    return encode(ctx, x, target, saturate=saturate, round_mode=round_mode)


# -- every other op ---------------------------------------------------------------------------
def involved(ctx: LowerContext, node: Node) -> bool:
    """Whether ``node`` reads or writes a narrow type and needs :func:`lower_widened`."""
    if node.op in NATIVE_OPS:
        return False
    return any(is_narrow(t.dtype) for t in node.output_types) or any(
        name and is_narrow(ctx.type_of(name).dtype) for name in node.inputs)


def lower_widened(ctx: LowerContext, node: Node,
                  lower: Callable[[LowerContext, Node], Sequence[relax.Expr]]) -> list[relax.Expr]:
    """Lower ``node`` on storage bits (data movement) or on decoded values (everything else)."""
    move = node.op in MOVE_OPS
    convert = storage_dtype if move else wide_dtype
    types, values, consts = {}, {}, {}
    for name in dict.fromkeys(n for n in node.inputs if n):
        ttype = ctx.type_of(name)
        if not is_narrow(ttype.dtype):
            continue
        types[name] = TensorType(ttype.shape, convert(ttype.dtype))
        if move:
            continue  # ctx.value already gives the storage bits
        if name in ctx.values:
            values[name] = decode(ctx, ctx.values[name], ttype.dtype)
        else:  # a constant: give the lowering its wide value
            consts[name] = np.asarray(ctx.graph.constants[name]).astype(wide_dtype(ttype.dtype))
    outs = [TensorType(t.shape, convert(t.dtype)) if is_narrow(t.dtype) else t
            for t in node.output_types]
    sub = ctx.derived(types, values, consts)
    results = list(lower(sub, dataclasses.replace(node, output_types=outs)))
    if move:
        return results
    return [encode(ctx, r, t.dtype) if is_narrow(t.dtype) and r is not None else r
            for r, t in zip(results, node.output_types, strict=False)]
