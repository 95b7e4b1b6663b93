"""Launch plans from TVM's real pipeline, and the target base class that uses them.

TVM compiles a partition for a GPU-style target (CUDA, OpenCL) into device kernels plus host
code that allocates memory and launches the kernels. hcompile ships the kernels and replaces
the host code by a :class:`~hcompile.runtime.launch_plan.LaunchPlan` that a small runtime
executes (TVM's OpenCL runtime is not in the wheel, and its CUDA modules compile at load).

The plan is read, not re-derived: a pass instrument snapshots the module as
``tvm.compile`` runs the default pipeline:

* after ``StaticPlanBlockMemory`` (``CallTIRRewrite`` plus TVM's memory planning): the Relax
  ``main`` in call order, with ``alloc_storage``/``alloc_tensor`` (the storage reuse TVM
  planned), calls of TIR functions with outputs last, and reshapes as aliases;
* after ``tirx.SplitHostDevice``: for every TIR function, its host part, which declares
  buffers over its parameters and calls ``call_ffi_kernel(name, operands..., extents...)``,
  and the kernels (``calling_conv == 2``) with their ``tirx.kernel_launch_params``.

Two pitfalls are handled here: a kernel's argument order is not its TIR function's parameter
order (operands are followed back through buffer declarations to the host parameters), and
launch tags are not in dimension order (``blockIdx.{x,y,z}`` are grid dims 0/1/2,
``threadIdx.{x,y,z}`` block dims 0/1/2). Anything in the host code a plan cannot express
raises :class:`~hcompile.errors.CompileError` naming it, so the partition can stay on the CPU.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax, tirx
from tvm.ir.instrument import pass_instrument
from tvm.relax.backend.cuda import pipeline as cuda_pipeline
from tvm.relax.backend.gpu_generic import pipeline as gpu_pipeline

from hcompile.errors import CompileError
from hcompile.ir import Graph
from hcompile.runtime.launch_plan import (
    LaunchPlan,
)
from hcompile.targets.base import BuildResult, CodeBlob, Target, _first_line
from hcompile.targets.lowering import lower_graph, partition_params
from hcompile.targets.plan_extract import extract_plan

#: Relax snapshots, best first: with TVM's storage reuse, else without.
RELAX_SNAPSHOTS = ("StaticPlanBlockMemory", "CallTIRRewrite")
TIR_SNAPSHOT = "tirx.SplitHostDevice"
#: constants folded into a partition travel inside its plan, up to this size



# -- compiling with snapshots ---------------------------------------------------------------


@pass_instrument
class _Snapshots:
    """Keeps the module as it was after the passes a plan is read from."""

    def __init__(self) -> None:
        self.relax: dict[str, tvm.IRModule] = {}
        self.tir: list[tvm.IRModule] = []

    def run_after_pass(self, mod: tvm.IRModule, info: Any) -> None:
        if info.name in RELAX_SNAPSHOTS:
            self.relax[info.name] = mod
        elif info.name == TIR_SNAPSHOT:
            self.tir.append(mod)


@dataclass
class DeviceBuild:
    """A partition compiled for a device: the kernels' source and how to launch them."""

    source: str
    plan: LaunchPlan
    executable: Any


def plan_pipeline(target: tvm.target.Target) -> Any:
    """The default GPU pipeline of ``target`` (dlight schedules, fusion, memory planning),
    plus dead-code elimination after ``CallTIRRewrite``: reshapes become views there and
    their TIR functions would otherwise still be compiled into kernels nobody launches."""
    # the default pipeline's stages for the target (tvm.relax.pipeline's dispatch lacks
    # dataflow_lower_passes for CUDA in 0.27, so take the backend's module directly)
    stages = cuda_pipeline if target.kind.name == "cuda" else gpu_pipeline

    @tvm.transform.module_pass(opt_level=0, name="hcompile_device_pipeline")
    def pipeline(mod: tvm.IRModule, _ctx: Any) -> tvm.IRModule:
        with target:
            passes = [
                *stages.library_dispatch_passes(target),
                *stages.legalize_passes(target),
                *stages.dataflow_lower_passes(target),
                relax.transform.DeadCodeElimination(["main"]),
                *stages.finalize_passes(target),
            ]
            result: tvm.IRModule = tvm.transform.Sequential(passes)(mod)
        return result

    return pipeline


def compile_with_plan(module: tvm.IRModule, target: tvm.target.Target, pipeline: Any,
                      num_inputs: int, what: str) -> DeviceBuild:
    """``tvm.compile`` the Relax ``module`` and read its launch plan off the pipeline."""
    snapshots = _Snapshots()
    try:
        with tvm.transform.PassContext(instruments=[snapshots]):
            executable = tvm.compile(module, target, relax_pipeline=pipeline)
    except Exception as err:  # TVM raises its own error types with C++ context
        raise CompileError(f"TVM failed to compile {what}: {_first_line(err)}",
                           hint="set HCOMPILE_DEBUG=1 for the full TVM log and IR dumps") from err
    relax_mod = next((snapshots.relax[n] for n in RELAX_SNAPSHOTS if n in snapshots.relax), None)
    if relax_mod is None:
        raise CompileError(f"{what}: the pipeline ran neither {RELAX_SNAPSHOTS[0]} nor "
                           f"{RELAX_SNAPSHOTS[1]}; no launch plan can be read")
    functions: dict[str, tirx.PrimFunc] = {}
    for mod in snapshots.tir:
        for gv, func in mod.functions.items():
            if isinstance(func, tirx.PrimFunc):
                functions[gv.name_hint] = func
    plan = extract_plan(relax_mod["main"], functions, num_inputs, what)
    source = device_source(executable, target.kind.name)
    if source is None and plan.launches:
        raise CompileError(f"{what}: TVM produced no {target.kind.name} device module")
    return DeviceBuild(source or "", plan, executable)


def device_source(executable: Any, kind: str) -> str | None:
    """The device module's source (OpenCL C or CUDA C) from the executable's import tree;
    None when there is none (a partition of views only launches nothing)."""
    pending = [executable.mod]
    while pending:
        mod = pending.pop()
        if mod.kind == kind:
            source: str = mod.inspect_source()
            return source
        pending.extend(mod.imports)
    return None


# -- the shared target ----------------------------------------------------------------------


class LaunchPlanTarget(Target):
    """A device target whose code is kernels plus a launch plan. Subclasses give the TVM
    target and turn a :class:`DeviceBuild` into code blobs (``package_device``)."""

    def relax_pipeline(self, target: tvm.target.Target) -> Any:
        return plan_pipeline(target)

    def build(self, graph: Graph, partition_id: int) -> BuildResult:
        start = time.perf_counter()
        params = partition_params(graph)
        module = c_identifier_params(lower_graph(graph, params))
        target = self.tvm_target()
        what = f"partition {partition_id} for {self.name}"
        build = compile_with_plan(module, target, self.relax_pipeline(target),
                                  len(graph.inputs), what)
        if os.environ.get("HCOMPILE_DEBUG") == "1":
            _dump(partition_id, self.name, build)
        code = self.package_device(build, partition_id)
        return BuildResult(params, code, time.perf_counter() - start)

    def package_device(self, build: DeviceBuild, partition_id: int) -> list[CodeBlob]:
        raise NotImplementedError


def c_identifier_params(module: tvm.IRModule) -> tvm.IRModule:
    """``module`` with ``main``'s parameters renamed to C identifiers. TVM names kernel
    parameters after them, and ONNX names ("/layer1/conv/W") are not valid OpenCL C or CUDA."""
    main = module["main"]
    used: set[str] = set()
    renamed = []
    for param in main.params:
        name = re.sub(r"\W", "_", param.name) or "v"
        name = f"v_{name}" if name[0].isdigit() else name
        base, n = name, 1
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        renamed.append(relax.Var(name, param.ty))
    if [p.name for p in main.params] == [r.name for r in renamed]:
        return module
    bound = main.bind_params(dict(zip(main.params, renamed, strict=True)))
    functions = {gv.name_hint: func for gv, func in module.functions.items()}
    functions["main"] = relax.Function(renamed, bound.body, attrs=main.attrs)
    return tvm.IRModule(functions)


def _dump(partition_id: int, target: str, build: DeviceBuild) -> None:
    import json
    from pathlib import Path

    folder = Path(os.environ.get("HCOMPILE_DUMP_DIR", "hcompile-dump"))
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"p{partition_id}-{target}"
    stem.with_suffix(".src").write_text(build.source)
    stem.with_suffix(".plan.json").write_text(json.dumps(build.plan.to_json(), indent=1))
