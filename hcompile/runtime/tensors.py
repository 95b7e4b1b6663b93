"""Host arrays for the TVM runtime: 64-byte aligned, C-contiguous, writable, native order.

TVM's generated CPU code assumes its buffers are aligned to 64 bytes (it uses aligned
vector loads: a plain numpy array, 16-byte aligned, crashes it), and DLPack cannot export
read-only numpy arrays. :func:`host_ready` copies only when one of these does not hold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hcompile.ir.types import to_storage
from hcompile.runtime.ffi import tvm_ffi as import_tvm_ffi

#: TVM's kAllocAlignment
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(max(nbytes, dtype.itemsize) + ALIGNMENT, dtype=np.uint8)
    offset = (-raw.ctypes.data) % ALIGNMENT
    flat = raw[offset : offset + max(nbytes, dtype.itemsize)].view(dtype)
    if nbytes:
        return flat.reshape(shape)
    # numpy gives a zero-size array all-zero (or otherwise arbitrary) strides, but TVM checks
    # that its argument is compact: stride[i] == prod(shape[i+1:]) elements, exactly.
    return np.lib.stride_tricks.as_strided(flat, shape, compact_strides(shape, dtype.itemsize))


def compact_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Row-major strides in bytes, as TVM computes them (a 0 dim makes the outer strides 0)."""
    return tuple(itemsize * math.prod(shape[i + 1 :]) for i in range(len(shape)))


def host_ready(x: np.ndarray) -> np.ndarray:
    """``x`` itself when TVM can use it in place, else an aligned contiguous native copy.

    A zero-size array is always replaced: numpy's strides for it (often all zero) depend on
    how it was made, and TVM rejects any that are not the compact ones.
    """
    native = x.dtype.newbyteorder("=")
    if x.size == 0:
        return aligned_empty(x.shape, native)
    if (
        x.flags.c_contiguous
        and x.flags.writeable
        and x.ctypes.data % ALIGNMENT == 0
        and x.dtype == native
    ):
        return x
    out = aligned_empty(x.shape, native)
    np.copyto(out, x)
    return out


def to_ffi(x: np.ndarray) -> Any:
    """A ``tvm_ffi.Tensor`` sharing memory with :func:`host_ready` of ``x``.

    Narrow element types (bfloat16, float8, int4...), which DLPack cannot describe, go as
    their integer storage bits (see hcompile.ir.types.NARROW_STORAGE); :func:`to_numpy`'s
    callers view results back with ``from_storage``.
    """
    tvm_ffi = import_tvm_ffi()
    x = to_storage(x)
    # An empty array has no memory to align (numpy may export any pointer for it).
    return tvm_ffi.from_dlpack(host_ready(x), require_alignment=ALIGNMENT if x.size else 0)


def to_numpy(tensor: Any) -> np.ndarray:
    """A numpy copy of a host tensor (never a view into runtime-owned memory)."""
    return np.array(np.from_dlpack(tensor), copy=True)
