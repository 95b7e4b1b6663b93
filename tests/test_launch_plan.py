"""Launch plans read off TVM's real pipeline: bindings, dims, memory reuse, views, JSON, errors.

The modules are small Relax functions compiled for OpenCL (no device needed: a plan is read
at compile time). Whether the plans *run* correctly is tested in test_opencl_fpga.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
import tvm
from tvm import relax, tirx

from hcompile.errors import ArtifactError, CompileError
from hcompile.runtime.launch_plan import BufferArg, LaunchPlan
from hcompile.targets.launch_plan import (
    DeviceBuild,
    c_identifier_params,
    compile_with_plan,
    plan_pipeline,
)


def _target() -> tvm.target.Target:
    return tvm.target.Target({"kind": "opencl", "max_num_threads": 256, "thread_warp_size": 1},
                             host={"kind": "llvm"})


def _module(params: dict[str, list[int]], body: Any) -> tvm.IRModule:
    """``main(*params) -> tuple(body(*vars))`` as a Relax module."""
    bb = relax.BlockBuilder()
    args = [relax.Var(n, relax.TensorType(s, "float32")) for n, s in params.items()]
    with bb.function("main", args):
        with bb.dataflow():
            outs = body(bb, *args)
            out = bb.emit_output(relax.Tuple(list(outs)))
        bb.emit_func_output(out)
    return bb.get()


def _build(module: tvm.IRModule, num_inputs: int = 1) -> DeviceBuild:
    target = _target()
    return compile_with_plan(module, target, plan_pipeline(target), num_inputs, "test module")


def _kernel_params(source: str) -> dict[str, list[str]]:
    """kernel name -> its parameter names, from the OpenCL C."""
    out = {}
    for m in re.finditer(r"__kernel\s+void\s+(\w+)\(([^)]*)\)\s*\{", source):
        out[m[1]] = [p.split()[-1] for p in m[2].split(",")]
    return out


def _mlp_head(bb: Any, x: Any, w: Any, b: Any) -> list[Any]:
    h = bb.emit(relax.op.nn.relu(relax.op.add(relax.op.matmul(x, w), b)))
    return [bb.emit(relax.op.nn.softmax(h, axis=-1))]


MLP_HEAD = {"x": [4, 64], "w": [64, 32], "b": [32]}


def test_kernel_arguments_follow_operands_not_parameter_order():
    build = _build(_module(MLP_HEAD, _mlp_head))
    plan = build.plan
    buffers = {b.id: b for b in plan.buffers}
    expected = {"x_ptr": ("input", 0), "w_ptr": ("param", 0), "b_ptr": ("param", 1)}
    params = _kernel_params(build.source)
    (matmul,) = [x for x in plan.launches if "matmul" in x.kernel]
    names = params[matmul.kernel]
    # TVM orders kernel parameters by name, not like main's (x, w, b): the plan must follow.
    assert names != ["x_ptr", "w_ptr", "b_ptr"][: len(names)]
    for name, arg in zip(names, matmul.args, strict=True):
        assert isinstance(arg, BufferArg)
        if name in expected:
            b = buffers[arg.buffer]
            assert (b.kind, b.index) == expected[name], name
        else:  # the fused result: a scratch buffer the softmax then reads
            assert buffers[arg.buffer].kind == "scratch"
    (softmax,) = [x for x in plan.launches if "softmax" in x.kernel]
    assert [x.kernel for x in plan.launches] == [matmul.kernel, softmax.kernel]
    out = plan.outputs[0]
    assert (out.shape, out.dtype) == ((4, 32), "float32")
    assert out.buffer in [a.buffer for a in softmax.args if isinstance(a, BufferArg)]


def _thread_extents(module: tvm.IRModule) -> dict[str, dict[str, int]]:
    """kernel -> {thread tag: extent}, read from the kernels' own thread_extent attributes."""
    found: dict[str, dict[str, int]] = {}
    for gv, func in module.functions.items():
        if not isinstance(func, tirx.PrimFunc) or func.attrs.get("calling_conv", 0) != 2:
            continue
        tags: dict[str, int] = {}
        pending = [func.body]
        while pending:
            stmt = pending.pop()
            if isinstance(stmt, tirx.AttrStmt) and stmt.attr_key == "thread_extent":
                tags[str(stmt.node.thread_tag)] = int(stmt.value)
            if isinstance(stmt, tirx.SeqStmt):
                pending.extend(stmt.seq)
            for field in ("body", "then_case", "else_case"):
                child = getattr(stmt, field, None)
                if isinstance(child, tirx.Stmt):
                    pending.append(child)
        found[gv.name_hint] = tags
    return found


def test_grid_and_block_dims_come_from_thread_tags():
    from tvm.ir.instrument import pass_instrument

    seen: list[tvm.IRModule] = []

    @pass_instrument
    class Keep:
        def run_after_pass(self, mod: tvm.IRModule, info: Any) -> None:
            if info.name == "tirx.SplitHostDevice":
                seen.append(mod)

    target = _target()
    module = _module({"x": [8, 64], "w": [64, 48], "b": [48]}, _mlp_head)
    with tvm.transform.PassContext(instruments=[Keep()]):
        tvm.compile(module, target, relax_pipeline=plan_pipeline(target))
    extents = _thread_extents(seen[-1])
    plan = _build(module).plan
    assert plan.launches
    for launch in plan.launches:
        tags = extents[launch.kernel]
        for dim, axis in enumerate("xyz"):
            assert launch.grid[dim] == tags.get(f"blockIdx.{axis}", 1), launch
            assert launch.block[dim] == tags.get(f"threadIdx.{axis}", 1), launch
    # the matmul launches over two grid dims, and its launch tags list y before x
    assert any(x.grid[1] > 1 or x.block[1] > 1 for x in plan.launches)


def _chain(bb: Any, x: Any, w: Any) -> list[Any]:
    y = x
    for _ in range(4):
        y = bb.emit(relax.op.nn.softmax(relax.op.matmul(y, w), axis=-1))
        y = bb.emit(relax.op.nn.softmax(y, axis=0))
    return [y]


def test_memory_planning_reuses_scratch_buffers():
    plan = _build(_module({"x": [16, 16], "w": [16, 16]}, _chain)).plan
    n = len(plan.launches)
    assert n >= 8  # each launch makes a new 16x16 tensor
    scratch = {b.id for b in plan.buffers if b.kind == "scratch"}
    used = [{a.buffer for a in x.args if isinstance(a, BufferArg)} for x in plan.launches]
    assert all(u & scratch for u in used[1:])
    # n tensors live in fewer buffers: TVM's static memory plan reuses them
    assert len(scratch) < n
    assert plan.scratch_bytes() < n * 16 * 16 * 4
    # the output owns its buffer: only the last launch touches it
    out = plan.outputs[0].buffer
    assert [out in u for u in used] == [False] * (n - 1) + [True]


def test_reshape_is_a_view_not_a_launch():
    def body(bb: Any, x: Any, w: Any) -> list[Any]:
        y = bb.emit(relax.op.matmul(x, w))
        y = bb.emit(relax.op.reshape(y, [8, 8]))
        return [bb.emit(relax.op.nn.softmax(y, axis=-1))]

    build = _build(_module({"x": [4, 16], "w": [16, 16]}, body))
    plan = build.plan
    assert len(plan.launches) == 2  # matmul and softmax; the reshape costs nothing
    assert "reshape" not in build.source
    matmul_out = plan.launches[0].args
    softmax_in = plan.launches[1].args
    written = {a.buffer for a in matmul_out if isinstance(a, BufferArg)}
    assert written & {a.buffer for a in softmax_in if isinstance(a, BufferArg)}


def test_folded_constants_travel_in_the_plan():
    def body(bb: Any, x: Any) -> list[Any]:
        c = relax.const(np.linspace(-1, 1, 16, dtype="float32"))
        return [bb.emit(relax.op.nn.softmax(relax.op.add(x, c), axis=-1))]

    plan = _build(_module({"x": [2, 16]}, body)).plan
    (const,) = plan.buffers_of("const")
    np.testing.assert_array_equal(np.frombuffer(const.data, np.float32),
                                  np.linspace(-1, 1, 16, dtype="float32"))


def test_plan_json_round_trip():
    plan = _build(_module(MLP_HEAD, _mlp_head)).plan
    text = json.dumps(plan.to_json())
    again = LaunchPlan.from_json(json.loads(text))
    assert again == plan
    assert again.to_json() == plan.to_json()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p.update(version=99), "version"),
        (lambda p: p["launches"][0].update(kernel="nope"), "unknown kernel"),
        (lambda p: p["launches"][0]["args"].pop(), "passes"),
        (lambda p: p["outputs"][0].update(offset=1 << 20), "outside"),
        (lambda p: p["buffers"][0].update(kind="magic"), "kind"),
        (lambda p: p["launches"][0].update(block=[1, 2]), "block"),
        (lambda p: p.pop("kernels"), "kernels"),
        (lambda p: p["launches"][0]["args"][0].update(buffer=99), "unknown buffer"),
        (lambda p: p["buffers"][0].update(id=5), "ids"),
    ],
)
def test_corrupt_plans_are_artifact_errors(edit, message):
    data = _build(_module(MLP_HEAD, _mlp_head)).plan.to_json()
    edit(data)
    with pytest.raises(ArtifactError, match=message):
        LaunchPlan.from_json(data)


def test_host_code_the_plan_cannot_express_is_a_compile_error():
    def body(bb: Any, x: Any) -> list[Any]:
        ty = relax.TensorType([4, 4], "float32")
        return [bb.emit(relax.call_dps_packed("my_library.fancy_op", [x], ty))]

    with pytest.raises(CompileError, match=r"cannot express .*my_library\.fancy_op"):
        _build(_module({"x": [4, 4]}, body))


def test_onnx_names_become_c_identifiers():
    params = {"/layer1/x:0": [2, 8], "0.weight": [8, 8], "0/weight": [8, 8]}

    def body(bb: Any, x: Any, w1: Any, w2: Any) -> list[Any]:
        return [bb.emit(relax.op.matmul(relax.op.matmul(x, w1), w2))]

    module = c_identifier_params(_module(params, body))
    names = [p.name for p in module["main"].params]
    assert all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in names) and len(set(names)) == 3
    build = _build(module)
    for kernel_params in _kernel_params(build.source).values():
        assert all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in kernel_params)
