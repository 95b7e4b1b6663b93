"""Models for the executor tests: hand-built artifacts with sleeping runners, and a small
ONNX model with two parallel branches to place on two devices."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from hcompile.artifact import Artifact
from hcompile.artifact.manifest import CodeSpec, PartitionSpec
from hcompile.errors import DeviceError
from hcompile.runtime import RUNNERS, PartitionRunner, RunnerOptions, register_runner
from hcompile.runtime.tensors import to_ffi


class _Sleeper(PartitionRunner):
    """Test code format: sleeps ``sleep`` seconds (releasing the GIL, as device code does),
    then returns ``sum(inputs) + add`` for every output; ``fail: true`` raises."""

    def __init__(self, partition: PartitionSpec, code: CodeSpec, blob: bytes,
                 params: Sequence[Any], options: RunnerOptions) -> None:
        super().__init__(partition, code, blob, params, options)
        self.sleep = float(code.extra.get("sleep", 0.0))
        self.add = float(code.extra.get("add", 0.0))
        self.fail = bool(code.extra.get("fail", False))

    def run(self, args: Sequence[Any]) -> list[Any]:
        if self.fail:
            raise DeviceError(f"partition {self.partition.id}: test failure")
        if self.sleep:
            time.sleep(self.sleep)
        total = sum(np.from_dlpack(a).astype(np.float32) for a in args)
        return [to_ffi(np.asarray(total + self.add, dtype=np.float32))
                for _ in self.partition.outputs]


def _sleeper(code_format: str, device: str) -> None:
    if code_format not in RUNNERS:
        register_runner(code_format)(type(f"Sleeper_{device}", (_Sleeper,), {"runs_on": device}))


_sleeper("test-sleep-cpu", "cpu")
_sleeper("test-sleep-fpga", "fpga")


def sleep_artifact(parts: list[tuple[str, list[str], list[str], float, float]],
                   inputs: Sequence[str] = ("x",), outputs: Sequence[str] = ("y",),
                   shape: Sequence[int] = (4,), fallback: bool = True,
                   failing: Sequence[int] = ()) -> Artifact:
    """An artifact of sleeping partitions ``(target, inputs, outputs, sleep_s, add)``;
    fpga partitions get a (non-sleeping) CPU fallback computing the same."""
    spec = [{"name": n, "shape": list(shape), "dtype": "float32"} for n in (*inputs,)]
    out_spec = [{"name": n, "shape": list(shape), "dtype": "float32"} for n in outputs]
    partitions = []
    members = {}
    for i, (target, ins, outs, sleep, add) in enumerate(parts):
        member = f"code/{i}"
        members[member] = b"sleep"
        code = {"format": f"test-sleep-{target}", "member": member, "entry": "main",
                "sleep": sleep, "add": add, "fail": i in failing}
        partitions.append({
            "id": i, "target": target, "device": target, "inputs": ins, "params": [],
            "outputs": outs, "code": [code],
            "fallback": ({"format": "test-sleep-cpu", "member": member, "entry": "main",
                          "add": add} if fallback and target != "cpu" else None),
        })
    manifest = {"inputs": spec, "outputs": out_spec, "weights": {}, "partitions": partitions}
    return Artifact(manifest=manifest, members=members)


def diamond(sleep: float = 0.05) -> Artifact:
    """x -> a (cpu) and b (fpga) side by side -> y = a + b (cpu)."""
    return sleep_artifact([("cpu", ["x"], ["a"], sleep, 1.0),
                           ("fpga", ["x"], ["b"], sleep, 2.0),
                           ("cpu", ["a", "b"], ["y"], 0.0, 0.0)])


def branch_model(n: int = 64, depth: int = 2, batch: int = 4) -> Any:
    """ONNX: x -> [MatMul, Tanh] x depth on branch ``a_*`` and on branch ``b_*`` -> Add."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights = [], []
    for b in "ab":
        prev = "x"
        for k in range(depth):
            w = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
            weights.append(numpy_helper.from_array(w, f"W{b}{k}"))
            nodes.append(helper.make_node("MatMul", [prev, f"W{b}{k}"], [f"{b}m{k}"],
                                          name=f"{b}_MatMul_{k}"))
            nodes.append(helper.make_node("Tanh", [f"{b}m{k}"], [f"{b}t{k}"],
                                          name=f"{b}_Tanh_{k}"))
            prev = f"{b}t{k}"
    nodes.append(helper.make_node("Add", [f"at{depth - 1}", f"bt{depth - 1}"], ["y"],
                                  name="join_Add"))
    graph = helper.make_graph(
        nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, n])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def branch_reference(model: Any, x: np.ndarray) -> np.ndarray:
    from onnx import numpy_helper

    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    depth = len(w) // 2
    out = []
    for b in "ab":
        h = x.astype(np.float64)
        for k in range(depth):
            h = np.tanh(h @ w[f"W{b}{k}"])
        out.append(h)
    return (out[0] + out[1]).astype(np.float32)


def compile_placed(model: Any, place: Sequence[str], targets: Sequence[str] = ("cpu", "fpga"),
                   **options: Any) -> Artifact:
    """compile_model with ``--place`` rules pinning nodes to targets."""
    from hcompile import compiler

    return compiler.compile_model(model, targets=list(targets), place=list(place), **options)


BRANCH_PLACE = ("a_*=cpu", "b_*=fpga", "join_*=cpu")


def overlapping(first: Any, second: Any) -> bool:
    """Whether two trace spans overlap in time."""
    return bool(first.start < second.end and second.start < first.end)
