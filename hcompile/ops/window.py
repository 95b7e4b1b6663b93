"""Attributes shared by windowed ops (Conv, ConvTranspose, pools): strides, dilations, pads.

ONNX writes pads as ``[x1_begin, x2_begin, ..., x1_end, x2_end]``, the same order Relax's
conv/pool ``padding`` uses, so :class:`Window.pads` is passed through unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hcompile.ops.common import attr_str, check_choice, ints, unsupported

if TYPE_CHECKING:
    from hcompile.ir import Node

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


@dataclass(frozen=True)
class Window:
    """Per spatial axis: kernel size, stride, dilation; pads as begins then ends."""

    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads: list[int]

    @property
    def effective_kernel(self) -> list[int]:
        return [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations, strict=True)]


def window(node: Node, spatial: tuple[int, ...], kernel: list[int]) -> Window:
    """Parse strides / dilations / pads / auto_pad of a Conv-like or pool node (forward ops)."""
    rank = len(spatial)
    strides = _per_axis(node, "strides", rank)
    dilations = _per_axis(node, "dilations", rank)
    if len(kernel) != rank:
        raise unsupported(node, "kernel_shape", kernel, hint=f"expected {rank} spatial dims")
    auto_pad = attr_str(node, "auto_pad", "NOTSET")
    check_choice(node, "auto_pad", auto_pad, AUTO_PADS)
    if auto_pad == "NOTSET":
        pads = ints(node.attr("pads")) or [0] * (2 * rank)
        if len(pads) != 2 * rank or min(pads) < 0:
            raise unsupported(node, "pads", pads)
    elif auto_pad == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = same_pads(spatial, kernel, strides, dilations, upper=auto_pad == "SAME_UPPER")
    return Window(kernel, strides, dilations, pads)


def same_pads(
    spatial: tuple[int, ...],
    kernel: list[int],
    strides: list[int],
    dilations: list[int],
    *,
    upper: bool,
) -> list[int]:
    """SAME_UPPER / SAME_LOWER: output = ceil(input / stride); SAME_UPPER pads the end more."""
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = max(0, (math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if upper else large)
        ends.append(large if upper else small)
    return begins + ends


def _per_axis(node: Node, name: str, rank: int) -> list[int]:
    values = ints(node.attr(name)) or [1] * rank
    if len(values) != rank or min(values) < 1:
        raise unsupported(node, name, values)
    return values
