"""The hcompile runtime: load an artifact and run it.

    import hcompile.runtime
    exe = hcompile.runtime.load("model.hca")
    outputs = exe.run({"x": x})             # {name: np.ndarray}, in the model's output order
    for out in exe.run_many(requests): ...  # pipelined over the devices
    exe.run({"x": x}, trace=(t := hcompile.runtime.Trace())); t.save("trace.json")

Imports numpy and hcompile.artifact only; the TVM runtime library (through ``tvm_ffi``) is
loaded when the first CPU partition is, and the ``tvm`` compiler package never is.
"""

# Runner modules register their code formats on import (explicit registration).
from hcompile.runtime import cuda_runner as _cuda_runner  # noqa: F401
from hcompile.runtime import opencl_runner as _opencl_runner  # noqa: F401
from hcompile.runtime import tvm_cpu as _tvm_cpu  # noqa: F401
from hcompile.runtime.executor import Executor, PartitionInfo, load
from hcompile.runtime.runners import (
    RUNNERS,
    PartitionRunner,
    RunnerOptions,
    choose_code,
    register_runner,
)
from hcompile.runtime.trace import Trace

__all__ = [
    "RUNNERS",
    "Executor",
    "PartitionInfo",
    "PartitionRunner",
    "RunnerOptions",
    "Trace",
    "choose_code",
    "load",
    "register_runner",
]
