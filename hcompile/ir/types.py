"""Tensor types: a static shape and a dtype. Symbolic dims never reach the IR."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: dtypes the IR knows, by numpy name. ONNX element types map onto these in the importer.
DTYPES = (
    "float32", "float64", "float16", "bfloat16",
    "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "bool",
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
    if dtype == "bfloat16":
        return 2
    return np.dtype(dtype).itemsize
