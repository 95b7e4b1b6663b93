"""Blocked (NCHW[x]c) convolutions for the CPU: a Relax pass run before legalization.

Every conv2d with groups 1 or depthwise (and float32) becomes a blocked conv: data
``NCHW{b}c``, weights ``OIHW{i}i{o}o`` (depthwise: ``OIHW{o}o``), output ``NCHW{b}c``, computed
by our TE compute (TVM's legalization has none; :mod:`.schedules.conv` schedules it). A
tensor's block depends only on its channel count (:func:`channel_blocking`), so producers and
consumers agree: one vector of fp32 when the channels fill more than one, the channel count
padded with zeros to a multiple of it (24 channels: 32 as 2 x 16, so the kernels run on whole
vectors); else the largest power of two dividing the count. Padded channels stay zero or
finite through convs (zero weights), bias and batch norm (zero), relu/clip and residual
adds, and are sliced off where a tensor leaves the blocked layout. Elementwise
ops on blocked tensors (bias, batch norm, relu/clip, residual adds) stay blocked, so
consecutive convs exchange blocked tensors; anything else gets an NCHW copy, made once.

Weights are packed once, when the code is loaded: ``main``'s params after its ``num_input``
inputs are weights, and the packing moves into ``main_transform_params`` (see
:class:`hcompile.runtime.tvm_cpu.TvmCpuRunner`), so no call repacks them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tvm
from tvm import relax, te, topi

from hcompile.targets.llvm_cpu.dense_padding import PadDenseColumns
from hcompile.targets.llvm_cpu.relax_types import all_float32, static_shape
from hcompile.targets.llvm_cpu.schedules.conv import BLOCKED_CONV_BLOCK, BLOCKED_DEPTHWISE_BLOCK
from hcompile.targets.llvm_cpu.schedules.features import CPUFeatures


def layout_passes(features: CPUFeatures, *, blocked_convs: bool = True
                  ) -> list[tvm.transform.Pass]:
    """Blocked layouts for convs and their elementwise neighbours (``blocked_convs``), whole
    vectors of columns for matmuls with weights (:mod:`.dense_padding`), weights packed at
    load."""
    lanes = features.lanes(32)
    if lanes < 4:
        return []  # no SIMD worth blocking for
    # LiftTransformParams moves the weights' layout transforms (everything computed from
    # weights alone) into ``main_transform_params``, which the runtime calls once at load.
    return (([BlockedLayout(lanes)] if blocked_convs else [])
            + [PadDenseColumns(lanes), relax.transform.LiftTransformParams()])


def channel_block(channels: int, lanes: int) -> int:
    """The block of a tensor with ``channels`` channels: the largest power of two dividing it,
    at most one vector. A function of the channel count alone, so producer and consumer of a
    tensor always agree on its layout."""
    block = 1
    while block < lanes and channels % (block * 2) == 0:
        block *= 2
    return block


def channel_blocking(channels: int, lanes: int) -> tuple[int, int]:
    """(block, padded channel count) of a tensor with ``channels`` channels: whole vectors
    (``lanes``) with zero padding when the channels fill more than one vector, else
    :func:`channel_block` without padding (3 input channels stay 3, in blocks of 1)."""
    if channels > lanes and channels % lanes:
        return lanes, -(-channels // lanes) * lanes
    return channel_block(channels, lanes), channels


def to_blocked(block: int) -> Callable[..., tuple[Any, ...]]:
    return lambda n, c, h, w: (n, c // block, h, w, c % block)


def from_blocked(block: int) -> Callable[..., tuple[Any, ...]]:
    return lambda n, cb, h, w, c: (n, cb * block + c, h, w)


@tvm.transform.module_pass(opt_level=0, name="hcompile.BlockedLayout")
class BlockedLayout:
    """Rewrite NCHW convs (groups 1 or depthwise) to blocked ones and keep their outputs blocked
    through elementwise ops; other consumers get an NCHW copy, made once per tensor."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes

    def transform_module(self, mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        blocker = _Blocker(mod, self.lanes)
        for gvar, func in list(mod.functions_items()):
            if isinstance(func, relax.Function):
                blocker.builder_.update_func(gvar, blocker.visit_expr(func))
        return blocker.builder_.get()


_ELEMENTWISE = frozenset(("relax.add", "relax.subtract", "relax.multiply", "relax.divide",
                          "relax.maximum", "relax.minimum", "relax.clip", "relax.nn.relu",
                          "relax.sigmoid", "relax.tanh", "relax.nn.silu"))


_POOLS = {"relax.nn.max_pool2d": relax.op.nn.max_pool2d,
          "relax.nn.avg_pool2d": relax.op.nn.avg_pool2d}


@relax.expr_functor.mutator
class _Blocker(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, lanes: int) -> None:
        super().__init__(mod)
        self.lanes = lanes
        self.blocked: dict[Any, tuple[relax.Var, int]] = {}  # NCHW var -> (blocked var, block)
        self.plain: set[Any] = set()  # blocked vars whose NCHW copy exists

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:
        value = binding.value
        rewritten = self._rewrite(value) if isinstance(value, relax.Call) else None
        if rewritten is not None:
            new = self.builder_.emit(rewritten[0], name_hint=binding.var.name + "_b")
            self.blocked[binding.var] = (new, rewritten[1])
            if not isinstance(binding.var, relax.DataflowVar):  # a function output: NCHW now
                self.plain.add(binding.var)
                plain = self._unblocked(new, rewritten[1], binding.var)
                self.builder_.emit_normalized(
                    relax.VarBinding(binding.var, self.builder_.normalize(plain)))
            return  # else the NCHW value is made only if something needs it (_nchw)
        self._plain(value)
        super().visit_var_binding_(binding)

    def _plain(self, value: relax.Expr) -> None:
        """Give the blocked-only tensors ``value`` uses their NCHW value (tuples of them
        too: Concat's operand is an inline tuple)."""
        if isinstance(value, relax.Call | relax.Tuple):
            for arg in value.args if isinstance(value, relax.Call) else value.fields:
                self._plain(arg)
        else:
            self._nchw(value)

    def _rewrite(self, call: relax.Call) -> tuple[relax.Expr, int] | None:
        name = getattr(call.op, "name", "")
        if name == "relax.nn.conv2d":
            return self._conv(call)
        if name in _ELEMENTWISE:
            return self._elementwise(call)
        if name in _POOLS:
            return self._pool(call, _POOLS[name])
        return None

    def _pool(self, call: relax.Call, make: Callable[..., relax.Expr]
              ) -> tuple[relax.Expr, int] | None:
        """A pool of a blocked tensor, in the blocked layout (vectors along the channel block;
        TOPI's pool2d takes NCHW[x]c)."""
        x = call.args[0]
        attrs = call.attrs
        shape = static_shape(x)
        if not (isinstance(x, relax.Var) and x in self.blocked) or shape is None \
                or str(attrs.layout) != "NCHW" or str(attrs.out_layout) != "NCHW" \
                or not all_float32(call):
            return None
        block = self.blocked[x][1]
        layout = f"NCHW{block}c"
        return make(self.blocked[x][0], pool_size=attrs.pool_size, strides=attrs.strides,
                    padding=attrs.padding, dilation=attrs.dilation, ceil_mode=attrs.ceil_mode,
                    count_include_pad=attrs.count_include_pad, layout=layout,
                    out_layout=layout), block

    def _nchw(self, arg: relax.Expr) -> relax.Expr:
        """``arg`` in its original layout (made from the blocked value the first time)."""
        if isinstance(arg, relax.Var) and arg in self.blocked and arg not in self.plain:
            var, block = self.blocked[arg]
            self.plain.add(arg)
            plain = self.builder_.emit(self._unblocked(var, block, arg), name_hint=arg.name)
            self.set_var_remap(arg, plain)
        return self.visit_expr(arg)

    def _unblocked(self, blocked: relax.Expr, block: int, like: relax.Expr) -> relax.Expr:
        """The NCHW value of ``blocked``, shaped like ``like`` (padded channels cut off)."""
        plain = relax.op.layout_transform(blocked, from_blocked(block))
        channels = (static_shape(like) or (0, 0))[1]
        if (static_shape(blocked) or (0, 0))[1] * block == channels:
            return plain
        return relax.op.strided_slice(self.builder_.emit(plain), axes=[1], begin=[0],
                                      end=[channels])

    def _input(self, arg: relax.Expr, block: int, pad: float = 0.0) -> relax.Expr:
        """``arg`` (an NCHW tensor) in the blocked layout of ``block``, channels padded with
        ``pad`` up to whole blocks."""
        if isinstance(arg, relax.Var) and arg in self.blocked and self.blocked[arg][1] == block:
            return self.blocked[arg][0]
        return self.builder_.emit(_block(self._nchw(arg), {1: block}, to_blocked(block), pad))

    def _conv(self, call: relax.Call) -> tuple[relax.Expr, int] | None:
        attrs = call.attrs
        x, w = call.args
        xs, ws = static_shape(x), static_shape(w)
        layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
        if layouts != ("NCHW", "OIHW", "NCHW") or xs is None or ws is None or len(xs) != 4 \
                or not all_float32(x, w, call):
            return None
        out_block = channel_blocking(ws[0], self.lanes)[0]
        groups = int(attrs.groups)
        window = {"strides": [int(v) for v in attrs.strides],
                  "padding": [int(v) for v in attrs.padding],
                  "dilation": [int(v) for v in attrs.dilation]}
        if out_block < 4:
            return None
        if groups == 1:
            in_block = channel_blocking(xs[1], self.lanes)[0]
            weight = _block(self._nchw(w), {0: out_block, 1: in_block}, lambda o, i, h, v: (
                o // out_block, i // in_block, h, v, i % in_block, o % out_block))
            return self.builder_.call_te(conv2d_nchwc, self._input(x, in_block),
                                         self.builder_.emit(weight), **window,
                                         primfunc_name_hint="conv2d_nchwc"), out_block
        if groups == xs[1] == ws[0] and ws[1] == 1:
            weight = _block(self._nchw(w), {0: out_block}, lambda o, i, h, v: (
                o // out_block, i, h, v, o % out_block))
            return self.builder_.call_te(depthwise_nchwc, self._input(x, out_block),
                                         self.builder_.emit(weight), **window,
                                         primfunc_name_hint="depthwise_nchwc"), out_block
        return None

    def _elementwise(self, call: relax.Call) -> tuple[relax.Expr, int] | None:
        out = static_shape(call)
        if out is None or len(out) != 4 or not all_float32(call) or not any(
                isinstance(a, relax.Var) and a in self.blocked for a in call.args):
            return None
        block, padded = channel_blocking(out[1], self.lanes)
        kinds = [_operand_kind(arg, out) for arg in call.args]
        if block < 4 or None in kinds:
            return None
        divide = call.op.name == "relax.divide"
        if divide and padded != out[1] and kinds[1] == "full":
            return None  # padded channels would divide 0 by 0
        args = []
        for index, (arg, kind) in enumerate(zip(call.args, kinds, strict=True)):
            pad = 1.0 if divide and index == 1 else 0.0  # a padded divisor is one
            if kind == "full":
                args.append(self._input(arg, block, pad))
            elif kind == "channel":
                args.append(self.builder_.emit(
                    _block(self._nchw(arg), {1: block}, to_blocked(block), pad)))
            else:  # scalars, all-ones shapes and non-tensors broadcast as they are
                args.append(self._nchw(arg))
        return relax.Call(call.op, args, call.attrs), block


def _block(value: relax.Expr, blocks: dict[int, int], index_map: Callable[..., Any],
           pad: float = 0.0) -> relax.Expr:
    """``layout_transform(value, index_map)``, padding with ``pad`` when an axis is not a
    whole number of its block (``blocks``: axis -> block)."""
    shape = static_shape(value)
    whole = shape is not None and all(shape[a] % b == 0 for a, b in blocks.items())
    return relax.op.layout_transform(value, index_map, pad_value=None if whole else pad)


def _operand_kind(arg: relax.Expr, out: tuple[int, ...]) -> str | None:
    """How an operand of a blocked elementwise op is converted: ``full`` (a tensor of the
    output's shape), ``channel`` (one value per channel, shape (1, C, 1, 1)), ``as_is``
    (scalars, all-ones shapes, non-tensors), None: not blockable."""
    if not isinstance(getattr(arg, "ty", None), relax.TensorType):
        return "as_is"
    shape = static_shape(arg)
    if shape is None:
        return None
    if shape == out:
        return "full"
    if shape == (1, out[1], 1, 1):
        return "channel"
    return "as_is" if all(d == 1 for d in shape) else None


def _output_size(size: int, before: int, after: int, kernel: int, stride: int,
                 dilation: int) -> int:
    return (size + before + after - (kernel - 1) * dilation - 1) // stride + 1


def _pad(data: te.Tensor, padding: list[int]) -> te.Tensor:
    top, left, bottom, right = padding
    if not any(padding):
        return data
    return topi.nn.pad(data, [0, 0, top, left, 0], [0, 0, bottom, right, 0], name="data_pad")


def depthwise_nchwc(data: te.Tensor, kernel: te.Tensor, strides: list[int],
                    padding: list[int], dilation: list[int]) -> te.Tensor:
    """``out[n, cb, y, x, c] = sum(pad(data)[n, cb, y*s+ky*d, x*s+kx*d, c] *
    kernel[cb, 0, ky, kx, c])``, data ``NCHW{c}c``, kernel ``OIHW{c}o`` with I = 1."""
    n, chunks, height, width, block = (int(d) for d in data.shape)
    kh, kw = int(kernel.shape[2]), int(kernel.shape[3])
    out_h = _output_size(height, padding[0], padding[2], kh, strides[0], dilation[0])
    out_w = _output_size(width, padding[1], padding[3], kw, strides[1], dilation[1])
    padded = _pad(data, padding)
    rky = te.reduce_axis((0, kh), name="ky")
    rkx = te.reduce_axis((0, kw), name="kx")
    (sh, sw), (dh, dw) = strides, dilation

    def body(b: Any, cb: Any, y: Any, x: Any, c: Any) -> Any:
        return te.sum(padded[b, cb, y * sh + rky * dh, x * sw + rkx * dw, c]
                      * kernel[cb, 0, rky, rkx, c], axis=[rky, rkx])

    return te.compute((n, chunks, out_h, out_w, block), body, name=BLOCKED_DEPTHWISE_BLOCK)


def conv2d_nchwc(data: te.Tensor, kernel: te.Tensor, strides: list[int], padding: list[int],
                 dilation: list[int]) -> te.Tensor:
    """``out[n, oc, y, x, o] = sum(pad(data)[n, ic, y*s+ky*d, x*s+kx*d, i] *
    kernel[oc, ic, ky, kx, i, o])``, data ``NCHW{i}c``, kernel ``OIHW{i}i{o}o``."""
    n, ic_chunks, height, width, ic_block = (int(d) for d in data.shape)
    oc_chunks, _, kh, kw, _, oc_block = (int(d) for d in kernel.shape)
    out_h = _output_size(height, padding[0], padding[2], kh, strides[0], dilation[0])
    out_w = _output_size(width, padding[1], padding[3], kw, strides[1], dilation[1])
    padded = _pad(data, padding)
    ric = te.reduce_axis((0, ic_chunks), name="ic")
    rky = te.reduce_axis((0, kh), name="ky")
    rkx = te.reduce_axis((0, kw), name="kx")
    rib = te.reduce_axis((0, ic_block), name="ib")
    (sh, sw), (dh, dw) = strides, dilation

    def body(b: Any, oc: Any, y: Any, x: Any, o: Any) -> Any:
        return te.sum(padded[b, ric, y * sh + rky * dh, x * sw + rkx * dw, rib]
                      * kernel[oc, ric, rky, rkx, rib, o], axis=[ric, rky, rkx, rib])

    return te.compute((n, oc_chunks, out_h, out_w, oc_block), body, name=BLOCKED_CONV_BLOCK)
