"""The direct path of ``Executor.run`` for the common case: one partition, no sharding.

A small model's run is a few microseconds of kernels, so the generic path's per-call work
(an environment dict holding every weight, the inline loop, name lookups, numpy's address
and dtype-name reads) was as long as the model itself. Here everything that does not
depend on the inputs is decided once, at load:

* each input's expected ``(shape, numpy dtype)`` and the partition's argument list, with
  the weights' tensors already in place;
* how to make an input a tensor: in place when numpy's array is usable as it is (the check
  reads the address through ``tvm_ffi``, ~0.3 µs, where numpy's ``ctypes.data`` costs
  ~1 µs), else a copy into a staging tensor the TVM runtime allocated (64-byte aligned,
  compact), one per input and thread.

The safety properties are the generic path's: inputs are fully checked before any device
work (any mismatch goes through :func:`check_inputs` for its complete error message),
the step runs through ``Executor._run_index`` (result count, fault injection, CPU
fallback, strict mode), outputs are checked against the manifest and returned as fresh
arrays, and the only state written after load is per thread (the staging tensors), so
``run`` stays thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from hcompile.ir.types import storage_dtype, to_storage
from hcompile.runtime.ffi import tvm_ffi as import_tvm_ffi
from hcompile.runtime.inputs import check_inputs
from hcompile.runtime.tensors import ALIGNMENT, to_ffi

if TYPE_CHECKING:
    from hcompile.runtime.executor import Executor


class DirectPath:
    """Runs a single-partition, unsharded executor without its scheduling machinery."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._step = executor._steps[0]
        self._tvm_ffi = import_tvm_ffi()
        # Present once libtvm_runtime is loaded (a CPU partition); else inputs that need a
        # copy take to_ffi.
        self._alloc = self._tvm_ffi.get_global_func("runtime.TVMTensorAllocWithScope",
                                                    allow_missing=True)
        self._device = self._tvm_ffi.Device("cpu", 0)
        self._local = threading.local()
        self._inputs = [(s.name, s.shape, np.dtype(s.dtype)) for s in executor.inputs]
        # narrow element types (bfloat16, float8...) reach TVM as their integer storage
        self._ffi_types = {s.name: (self._tvm_ffi.Shape(s.shape),
                                    self._tvm_ffi.dtype(storage_dtype(s.dtype)))
                           for s in executor.inputs}
        self._narrow = {s.name for s in executor.inputs if storage_dtype(s.dtype) != s.dtype}
        position = {s.name: k for k, s in enumerate(executor.inputs)}
        # Per partition argument: the model input's index, or the weight's tensor.
        self._args: list[tuple[int, Any]] = [
            (position[n], None) if n in position else (-1, executor._weights[n])
            for n in self._step.spec.inputs]
        produced = list(self._step.spec.outputs)
        self._outputs = [(s, np.dtype(s.dtype), produced.index(s.name))
                         for s in executor._signature_out]

    @staticmethod
    def applies(executor: Executor) -> bool:
        """Whether ``executor`` can use the direct path: one partition producing every model
        output, no sharding."""
        if executor.sharding is not None or len(executor._steps) != 1:
            return False
        produced = set(executor._steps[0].spec.outputs)
        return all(s.name in produced for s in executor._signature_out)

    def run(self, given: Any) -> dict[str, np.ndarray]:
        arrays = self._checked(given)
        tensors = [self._tensor(name, x) for (name, _, _), x in
                   zip(self._inputs, arrays, strict=True)]
        args = [tensors[k] if k >= 0 else weight for k, weight in self._args]
        results = self._executor._run_index(0, args)  # checks the number of results
        return {spec.name: self._output(spec, dtype, results[k])
                for spec, dtype, k in self._outputs}

    def _checked(self, given: Any) -> list[np.ndarray]:
        """The inputs in signature order; anything unexpected gets check_inputs' errors."""
        if isinstance(given, Mapping) and len(given) == len(self._inputs):
            arrays = []
            for name, shape, dtype in self._inputs:
                x = given.get(name)
                if not (isinstance(x, np.ndarray) and x.shape == shape and x.dtype == dtype
                        and x.dtype.isnative):
                    break
                arrays.append(x)
            else:
                return arrays
        checked = check_inputs(self._executor.inputs, given)
        return [checked[name] for name, _, _ in self._inputs]

    def _tensor(self, name: str, x: np.ndarray) -> Any:
        if name in self._narrow:  # to_storage reads dtype.name: ~1 µs, so only when needed
            x = to_storage(x)
        if x.size and x.flags.c_contiguous and x.flags.writeable:
            tensor = self._tvm_ffi.from_dlpack(x)
            if tensor.data_ptr() % ALIGNMENT == 0 and tensor.is_contiguous():
                return tensor
        if self._alloc is None:
            return to_ffi(x)
        # A staging tensor per input and thread, reused: allocating one per call cost more
        # than the copy. Safe to reuse: it is only read during this thread's current call,
        # and outputs are copied out before the call returns (an output that is the input
        # itself included).
        staging = getattr(self._local, "staging", None)
        if staging is None:
            staging = self._local.staging = {}
        entry = staging.get(name)
        if entry is None:
            shape, dtype = self._ffi_types[name]
            tensor = self._alloc(shape, dtype, self._device, None)
            entry = staging[name] = (tensor, np.from_dlpack(tensor))
        np.copyto(entry[1], x)
        return entry[0]

    def _output(self, spec: Any, dtype: np.dtype[Any], tensor: Any) -> np.ndarray:
        array = np.from_dlpack(tensor)
        if array.shape != spec.shape or array.dtype != dtype:
            return self._executor._output(spec, tensor)  # raises with the full message
        # A copy: the tensor may be runtime-owned memory, a weight or an input.
        return np.array(array, copy=True)
