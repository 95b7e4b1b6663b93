"""Host arrays for the TVM runtime: 64-byte aligned, C-contiguous, writable, native order.

TVM's generated CPU code assumes its buffers are aligned to 64 bytes (it uses aligned
vector loads: a plain numpy array, 16-byte aligned, crashes it), and DLPack cannot export
read-only numpy arrays. :func:`host_ready` copies only when one of these does not hold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hcompile.runtime.ffi import tvm_ffi as import_tvm_ffi

#: TVM's kAllocAlignment
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    offset = (-raw.ctypes.data) % ALIGNMENT
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)


def host_ready(x: np.ndarray) -> np.ndarray:
    """``x`` itself when TVM can use it in place, else an aligned contiguous native copy."""
    native = x.dtype.newbyteorder("=")
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
    """A ``tvm_ffi.Tensor`` sharing memory with :func:`host_ready` of ``x``."""
    tvm_ffi = import_tvm_ffi()
    # An empty array has no memory to align (numpy may export any pointer for it).
    return tvm_ffi.from_dlpack(host_ready(x), require_alignment=ALIGNMENT if x.size else 0)


def to_numpy(tensor: Any) -> np.ndarray:
    """A numpy copy of a host tensor (never a view into runtime-owned memory)."""
    return np.array(np.from_dlpack(tensor), copy=True)
