"""hcompile: compile ONNX models to heterogeneous CPU / GPU / FPGA code with Apache TVM.

    import hcompile
    art = hcompile.compile("model.onnx", targets=["cpu"], input_shapes={"x": (1, 784)})
    art.save("model.hca")
    exe = hcompile.load("model.hca")        # imports only the runtime
    outputs = exe.run({"x": x})

``compile`` pulls in the compiler (onnx, TVM); ``load`` pulls in only the runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hcompile.errors import HcompileError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hcompile.artifact import Artifact
    from hcompile.runtime import Executor


def compile(model: Any, *, shard_batch: str | None = None, **options: Any) -> Artifact:
    """Compile an ONNX model (path or ModelProto) into an in-memory :class:`Artifact`.

    ``shard_batch`` (``"auto"`` or ``"cpu=0.4,fpga=0.6"``) compiles one copy per device for
    its share of the batch; the runtime splits inputs and concatenates outputs.
    """
    if shard_batch is not None:
        from hcompile.sharding_compile import compile_sharded

        return compile_sharded(model, shard_batch, **options)
    from hcompile.compiler import compile_model

    return compile_model(model, **options)


def load(artifact: Any, **options: Any) -> Executor:
    """Load an artifact (path or :class:`Artifact`) into a runtime :class:`Executor`."""
    from hcompile.runtime import load as load_executor

    return load_executor(artifact, **options)


__all__ = ["HcompileError", "__version__", "compile", "load"]
