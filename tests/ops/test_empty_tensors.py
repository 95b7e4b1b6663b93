"""Zero-size tensors reach TVM with compact strides, however numpy made them (numpy gives an
empty array all-zero or view-dependent strides, which TVM's argument check rejects)."""

from __future__ import annotations

import numpy as np
import pytest

from hcompile.runtime.tensors import ALIGNMENT, compact_strides, host_ready

from .harness import check_node


def _empties() -> list[np.ndarray]:
    big = np.ones((4, 6, 5), np.float32)
    return [np.empty((3, 0, 5), np.float32), np.zeros((3, 0, 5), np.float32),
            big[:3, 2:2, :], np.empty((0, 5), np.float32).reshape(3, 0, 5)]


@pytest.mark.parametrize("index", range(4))
def test_host_ready_gives_compact_aligned_empty_arrays(index):
    x = _empties()[index]
    ready = host_ready(x)
    assert ready.shape == x.shape
    assert ready.strides == compact_strides(x.shape, x.itemsize) == (0, 20, 4)
    assert ready.ctypes.data % ALIGNMENT == 0


@pytest.mark.parametrize("op", ["Trilu", "Relu"])
def test_empty_inputs_run(op):
    for x in _empties():
        check_node(op, [x], opset=14)
