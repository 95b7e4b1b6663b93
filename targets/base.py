"""What every target shares: lower a partition to Relax, compile it with TVM, package the code.

A target subclass sets ``name``/``device`` and overrides only what differs (the TVM target,
the Relax pipeline, and how compiled code is packaged).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tvm
from tvm import relax

from hcompile import compile_cache
from hcompile.errors import CompileError
from hcompile.ir import Graph
from hcompile.targets.lowering import lower_graph, partition_params

log = logging.getLogger("hcompile")


@dataclass(slots=True)
class CodeBlob:
    """One piece of compiled code for the artifact.

    format: how the runtime runs it (``tvm-relax-vm-so``...); member: artifact member name;
    data: the bytes; info: format-specific details for the manifest (entry point...).
    """

    format: str
    member: str
    data: bytes
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BuildResult:
    """params: constants the code takes as trailing args, in order; code: compiled pieces;
    seconds: compile wall time."""

    params: list[str]
    code: list[CodeBlob]
    seconds: float


class Target:
    """Base class: the CPU flow. Device targets override ``tvm_target`` and ``package``."""

    name: ClassVar[str] = ""
    device: ClassVar[str] = ""

    def tvm_target(self) -> tvm.target.Target:
        raise NotImplementedError

    def relax_pipeline(self, target: tvm.target.Target) -> Any:
        # The default pipeline for the target legalizes, fuses and schedules.
        return relax.get_default_pipeline(target)

    def cache_flags(self) -> dict[str, Any] | None:
        """Options besides the TVM target that change the code (part of the compile-cache
        key); None (the default) keeps the target's builds out of the cache."""
        return None

    def build(self, graph: Graph, partition_id: int) -> BuildResult:
        """Compile ``graph`` (one partition) into code blobs, or take them from the compile
        cache when this exact partition was built before (see :mod:`hcompile.compile_cache`)."""
        start = time.perf_counter()
        params = partition_params(graph)
        module = lower_graph(graph, params)
        target = self.tvm_target()
        key = None
        flags = self.cache_flags()
        if flags is not None and compile_cache.enabled():
            key = compile_cache.compile_key(tvm.ir.save_json(module), str(target.export()),
                                            {"class": type(self).__name__, **flags},
                                            partition_id)
            hit = compile_cache.load(key)
            if hit is not None and hit.params == params:
                code = [CodeBlob(b["format"], b["member"], b["data"], b["info"])
                        for b in hit.blobs]
                return BuildResult(params, code, time.perf_counter() - start)
        try:
            executable = self._compile(module, target)
        except Exception as err:  # TVM raises its own error types with C++ context
            raise CompileError(
                f"TVM failed to compile partition {partition_id} for {self.name}: "
                f"{_first_line(err)}",
                hint="set HCOMPILE_DEBUG=1 for the full TVM log and IR dumps",
            ) from err
        code = self.package(executable, partition_id)
        if key is not None:
            blobs = [{"format": b.format, "member": b.member, "info": b.info, "data": b.data}
                     for b in code]
            compile_cache.store(key, compile_cache.CachedBuild(params, blobs))
        return BuildResult(params, code, time.perf_counter() - start)

    def fallback_pipeline(self, target: tvm.target.Target) -> Any:
        """A simpler pipeline to retry with when ``relax_pipeline`` fails (None: no retry)."""
        return None

    def _compile(self, module: tvm.IRModule, target: tvm.target.Target) -> Any:
        try:
            return tvm.compile(module, target, relax_pipeline=self.relax_pipeline(target))
        except Exception as err:  # TVM raises its own error types with C++ context
            fallback = self.fallback_pipeline(target)
            if fallback is None:
                raise
            log.warning("%s code generation failed (%s); compiling that partition again "
                        "without schedules (slower code)", self.name, _first_line(err))
            return tvm.compile(module, target, relax_pipeline=fallback)

    def package(self, executable: Any, partition_id: int) -> list[CodeBlob]:
        """Export a Relax VM executable as a shared library."""
        with tempfile.TemporaryDirectory(prefix="hcompile-") as tmp:
            path = Path(tmp) / f"p{partition_id}.so"
            try:
                executable.export_library(str(path))
            except Exception as err:
                raise CompileError(f"exporting partition {partition_id} failed: "
                                   f"{_first_line(err)}",
                                   hint="a C compiler (gcc or cc) must be on PATH") from err
            data = path.read_bytes()
        member = f"partitions/{partition_id}/{self.name}.so"
        return [CodeBlob("tvm-relax-vm-so", member, data, {"entry": "main"})]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__
