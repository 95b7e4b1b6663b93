"""Tensor types: a static shape and a dtype. Symbolic dims never reach the IR."""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes  # noqa: F401  (registers bfloat16, float8_*, int4... as numpy dtype names)
import numpy as np

#: Narrow element types (ml_dtypes names) -> the same-width unsigned integer that carries their
#: bits in generated code and across DLPack, which knows none of them. ml_dtypes stores the
#: sub-byte types (int4, uint4, int2, uint2, float4_e2m1fn) one element per byte, value in the
#: low bits, so they are uint8 too. See hcompile/ops/narrow_types.py for the codecs.
NARROW_STORAGE = {
    "bfloat16": "uint16",
    "float8_e4m3fn": "uint8", "float8_e4m3fnuz": "uint8", "float8_e5m2": "uint8",
    "float8_e5m2fnuz": "uint8", "float8_e8m0fnu": "uint8", "float4_e2m1fn": "uint8",
    "int4": "uint8", "uint4": "uint8", "int2": "uint8", "uint2": "uint8",
}  # fmt: skip

#: dtypes the IR knows, by numpy name. ONNX element types map onto these in the importer.
DTYPES = (
    "float32", "float64", "float16",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "bool", *NARROW_STORAGE,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TensorType:
    """A tensor's static type.

    shape: one non-negative int per axis (``()`` for a scalar).
    dtype: a numpy dtype name from :data:`DTYPES`.
    """

    shape: tuple[int, ...]
    dtype: str

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * dtype_itemsize(self.dtype)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    @classmethod
    def of(cls, array: np.ndarray) -> TensorType:
        return cls(tuple(int(d) for d in array.shape), np.dtype(array.dtype).name)


def dtype_itemsize(dtype: str) -> int:
    return np.dtype(dtype).itemsize


def is_narrow(dtype: str) -> bool:
    """True for the element types carried as integer bits (:data:`NARROW_STORAGE`)."""
    return dtype in NARROW_STORAGE


def storage_dtype(dtype: str) -> str:
    """The dtype generated code and DLPack see for ``dtype`` (itself unless narrow)."""
    return NARROW_STORAGE.get(dtype, dtype)


def to_storage(array: np.ndarray) -> np.ndarray:
    """``array`` viewed as its storage dtype (no copy); unchanged unless narrow."""
    storage = NARROW_STORAGE.get(array.dtype.name)
    return array if storage is None else array.view(storage)


def from_storage(array: np.ndarray, dtype: str) -> np.ndarray:
    """Storage bits viewed as narrow ``dtype`` (no copy); unchanged unless ``dtype`` is narrow."""
    if dtype not in NARROW_STORAGE or array.dtype.name == dtype:
        return array
    if array.dtype.name != NARROW_STORAGE[dtype]:
        raise TypeError(f"{dtype} is carried as {NARROW_STORAGE[dtype]}, not {array.dtype}")
    return array.view(dtype)
