"""The runtime: numbers, input validation, fallback, cache, threads, imports, no pickle.

Test artifacts are real: two Relax partitions compiled with TVM here (once per session)
and packed by hand:

    partition 0 (cpu): h = relu(x @ W1 + b1)
    partition 1 (cpu): y = softmax((h @ W2 + b2) * t)      (t is a 0-d model input)
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hcompile.artifact import Artifact
from hcompile.errors import ArtifactError, DeviceError, InputError
from hcompile.runtime import RUNNERS, Executor, PartitionRunner, load, register_runner

RTOL, ATOL = 1e-4, 1e-5
BATCH, D_IN, D_HID, D_OUT = 2, 784, 100, 10
ROOT = Path(__file__).resolve().parent.parent


def _compile(build: Any, path: Path) -> bytes:
    """Compile the Relax function ``build(bb)`` for the host CPU; return the .so bytes."""
    import tvm
    from tvm import relax

    bb = relax.BlockBuilder()
    build(bb, relax)
    target = tvm.target.Target(
        {"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu(), "num-cores": 2}
    )
    ex = tvm.compile(bb.get(), target, relax_pipeline=relax.get_default_pipeline(target))
    ex.export_library(str(path))
    return path.read_bytes()


def _layer0(bb: Any, relax: Any) -> None:
    x = relax.Var("x", relax.TensorType((BATCH, D_IN), "float32"))
    w = relax.Var("W1", relax.TensorType((D_IN, D_HID), "float32"))
    b = relax.Var("b1", relax.TensorType((D_HID,), "float32"))
    with bb.function("main", [x, w, b]):
        with bb.dataflow():
            h = bb.emit(relax.op.nn.relu(relax.op.add(relax.op.matmul(x, w), b)))
            out = bb.emit_output(relax.Tuple([h]))
        bb.emit_func_output(out)


def _layer1(bb: Any, relax: Any) -> None:
    h = relax.Var("h", relax.TensorType((BATCH, D_HID), "float32"))
    t = relax.Var("t", relax.TensorType((), "float32"))
    w = relax.Var("W2", relax.TensorType((D_HID, D_OUT), "float32"))
    b = relax.Var("b2", relax.TensorType((D_OUT,), "float32"))
    with bb.function("main", [h, t, w, b]):
        with bb.dataflow():
            z = bb.emit(relax.op.multiply(relax.op.add(relax.op.matmul(h, w), b), t))
            y = bb.emit(relax.op.nn.softmax(z, axis=-1))
            out = bb.emit_output(relax.Tuple([y]))
        bb.emit_func_output(out)


@pytest.fixture(scope="session")
def code(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("relax")
    return {"p0": _compile(_layer0, d / "p0.so"), "p1": _compile(_layer1, d / "p1.so")}


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "W1": rng.standard_normal((D_IN, D_HID), dtype=np.float32) * 0.05,
        "b1": rng.standard_normal(D_HID, dtype=np.float32),
        "W2": rng.standard_normal((D_HID, D_OUT), dtype=np.float32) * 0.1,
        "b2": rng.standard_normal(D_OUT, dtype=np.float32),
    }


def _spec(name: str, shape: tuple[int, ...], dtype: str = "float32") -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": dtype}


def _code(member: str, fmt: str = "tvm-relax-vm-so") -> dict[str, str]:
    return {"format": fmt, "member": member, "entry": "main"}


def _partition(pid: int, target: str, io: tuple[list[str], list[str], list[str]], code: Any):
    inputs, params, outputs = io
    return {
        "id": pid, "target": target, "device": target, "code": code, "fallback": None,
        "inputs": inputs, "params": params, "outputs": outputs,
    }  # fmt: skip


def make_artifact(
    code: dict[str, bytes], outputs: tuple[str, ...] = ("y", "h"), p1_target: str = "cpu"
) -> Artifact:
    """The two-partition MLP; ``p1_target="gpu"`` gives partition 1 (stand-in) CUDA code
    plus the real CPU code as its fallback."""
    shapes = {
        "x": (BATCH, D_IN), "t": (), "h": (BATCH, D_HID), "y": (BATCH, D_OUT),
        **{k: v.shape for k, v in _weights().items()},
    }  # fmt: skip
    p0 = _partition(0, "cpu", (["x"], ["W1", "b1"], ["h"]), [_code("partitions/0/cpu.so")])
    p1 = _partition(1, p1_target, (["h", "t"], ["W2", "b2"], ["y"]), [])
    members = {"partitions/0/cpu.so": code["p0"], "partitions/1/cpu.so": code["p1"]}
    if p1_target == "cpu":
        p1["code"] = [_code("partitions/1/cpu.so")]
    else:
        p1["code"] = [_code("partitions/1/gpu.cubin", "cuda-cubin")]
        p1["fallback"] = _code("partitions/1/cpu.so")
        members["partitions/1/gpu.cubin"] = b"not really a cubin"
    manifest = {
        "model": {"name": "mlp2", "source": "mlp2.onnx", "sha256": "0" * 64},
        "inputs": [_spec("x", shapes["x"]), _spec("t", ())],
        "outputs": [_spec(n, shapes[n]) for n in outputs],
        "plan": {"partitioner": "single", "predicted_ms": 1.0, "partitions": [], "nodes": []},
        "partitions": [p0, p1],
    }
    art = Artifact(manifest, members)
    for name, array in _weights().items():
        art.add_weight(name, array)
    return art


def reference(x: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    w = _weights()
    h = np.maximum(x @ w["W1"] + w["b1"], 0)
    z = (h @ w["W2"] + w["b2"]) * t
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return {"y": e / e.sum(axis=-1, keepdims=True), "h": h}


def _inputs(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((BATCH, D_IN), dtype=np.float32),
        "t": np.array(0.7, dtype=np.float32),
    }


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def hca(code: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artifact(code).save(tmp_path_factory.mktemp("hca") / "mlp2.hca")


@pytest.fixture(scope="session")
def exe(hca: Path, tmp_path_factory: pytest.TempPathFactory) -> Executor:
    return load(hca, cache_dir=tmp_path_factory.mktemp("exe-cache"))


# -- numbers ---------------------------------------------------------------------------------


def test_matches_numpy(exe: Executor) -> None:
    inputs = _inputs()
    out = exe.run(inputs)
    assert list(out) == ["y", "h"]  # the model's output order
    for name, expected in reference(inputs["x"], inputs["t"]).items():
        np.testing.assert_allclose(out[name], expected, rtol=RTOL, atol=ATOL)


def test_load_accepts_in_memory_artifact_and_hcompile_load(code: dict[str, bytes], hca: Path):
    import hcompile

    inputs = _inputs(2)
    a = load(make_artifact(code)).run(inputs)
    b = hcompile.load(hca).run(inputs)
    np.testing.assert_array_equal(a["y"], b["y"])


def test_outputs_are_copies(exe: Executor) -> None:
    inputs = _inputs()
    first = exe.run(inputs)
    kept = {k: v.copy() for k, v in first.items()}
    for v in first.values():
        assert v.flags.owndata and v.flags.writeable
        v[...] = -1.0
    again = exe.run(inputs)
    for name in kept:
        np.testing.assert_array_equal(again[name], kept[name])
        assert not np.shares_memory(again[name], first[name])


def test_outputs_may_be_inputs_or_weights(code: dict[str, bytes]) -> None:
    art = make_artifact(code, outputs=("y", "x", "b2", "t"))
    inputs = _inputs()
    out = load(art).run(inputs)
    assert list(out) == ["y", "x", "b2", "t"]
    np.testing.assert_array_equal(out["x"], inputs["x"])
    np.testing.assert_array_equal(out["b2"], _weights()["b2"])
    assert out["t"].shape == () and out["t"] == np.float32(0.7)
    out["x"][...] = 0  # a copy: the caller's array is untouched
    assert np.any(inputs["x"] != 0)


def test_inputs_that_tvm_cannot_take_in_place(exe: Executor) -> None:
    """Non-contiguous, read-only, misaligned (TVM code crashes on those) and big-endian."""
    base = _inputs()
    expected = exe.run(base)["y"]
    wide = np.zeros((BATCH, 2 * D_IN), np.float32)
    wide[:, ::2] = base["x"]
    readonly = base["x"].copy()
    readonly.flags.writeable = False
    buf = np.zeros(BATCH * D_IN + 64, np.float32)
    start = next(i for i in range(1, 17) if buf[i:].ctypes.data % 64 != 0)
    misaligned = buf[start : start + BATCH * D_IN].reshape(BATCH, D_IN)
    misaligned[...] = base["x"]
    fortran = np.asfortranarray(base["x"])
    for x in (wide[:, ::2], readonly, misaligned, fortran):
        np.testing.assert_array_equal(exe.run({"x": x, "t": base["t"]})["y"], expected)


def test_nan_and_inf_pass_through(code: dict[str, bytes]) -> None:
    inputs = _inputs()
    inputs["x"][0, 0] = np.nan
    inputs["x"][1, 1] = np.inf
    out = load(make_artifact(code, outputs=("x", "y"))).run(inputs)
    assert np.isnan(out["x"][0, 0]) and np.isposinf(out["x"][1, 1])
    assert out["y"].shape == (BATCH, D_OUT)  # no error; the values follow IEEE arithmetic


def test_executor_describes_itself(exe: Executor) -> None:
    assert exe.inputs == [("x", (BATCH, D_IN), "float32"), ("t", (), "float32")]
    assert [(o.name, o.shape, o.dtype) for o in exe.outputs] == [
        ("y", (BATCH, D_OUT), "float32"), ("h", (BATCH, D_HID), "float32"),
    ]  # fmt: skip
    assert [(p.id, p.runs_on, p.code_format, p.fallback) for p in exe.partitions] == [
        (0, "cpu", "tvm-relax-vm-so", False), (1, "cpu", "tvm-relax-vm-so", False),
    ]  # fmt: skip
    assert "x: float32[2, 784]" in repr(exe)


# -- input validation ------------------------------------------------------------------------


def _error(exe: Executor, inputs: Any) -> str:
    with pytest.raises(InputError) as info:
        exe.run(inputs)
    return str(info.value)


def test_unknown_input_lists_expected_names(exe: Executor) -> None:
    msg = _error(exe, {**_inputs(), "z": np.zeros(3, np.float32)})
    assert "unknown input 'z'" in msg and "x: float32[2, 784], t: float32[]" in msg


def test_missing_input(exe: Executor) -> None:
    msg = _error(exe, {"x": _inputs()["x"]})
    assert msg.startswith("missing input 't' (float32, shape ())")


def test_non_array_values(exe: Executor) -> None:
    msg = _error(exe, {"x": _inputs()["x"].tolist(), "t": _inputs()["t"]})
    assert "input 'x' is a list, not a numpy array" in msg
    assert "dtype float32 and shape (2, 784)" in msg
    msg = _error(exe, {"x": _inputs()["x"], "t": 0.7})
    assert "input 't' is a float, not a numpy array" in msg
    assert "np.array(value, dtype=np.float32)" in msg


def test_dtype_mismatch_is_not_cast(exe: Executor) -> None:
    msg = _error(exe, {"x": _inputs()["x"].astype(np.float64), "t": _inputs()["t"]})
    assert msg.startswith(
        "input 'x' has dtype float64, expected float32; cast with x.astype(np.float32)"
    )
    msg = _error(exe, {"x": _inputs()["x"].astype(">f4"), "t": _inputs()["t"]})
    assert "non-native byte order" in msg


def test_shape_mismatch(exe: Executor) -> None:
    msg = _error(exe, {"x": np.zeros((1, D_IN), np.float32), "t": _inputs()["t"]})
    assert msg.startswith(
        "input 'x' has shape (1, 784), expected (2, 784); "
        "recompile with --input-shape x=1,784 to change it"
    )


def test_all_problems_reported_at_once(exe: Executor) -> None:
    msg = _error(exe, {"x": np.zeros((1, 3), np.int64), "q": 1})
    assert msg.startswith("4 problems with the inputs:")
    for part in ("unknown input 'q'", "missing input 't'", "dtype int64", "shape (1, 3)"):
        assert part in msg


def test_not_a_mapping(exe: Executor) -> None:
    assert "takes a mapping" in _error(exe, [_inputs()["x"]])


# -- devices and runners ---------------------------------------------------------------------


def test_gpu_partition_falls_back_to_cpu_code(code: dict[str, bytes]) -> None:
    exe = load(make_artifact(code, p1_target="gpu"))
    p1 = exe.partitions[1]
    assert (p1.target, p1.runs_on, p1.fallback, p1.member) == (
        "gpu", "cpu", True, "partitions/1/cpu.so",
    )  # fmt: skip
    inputs = _inputs()
    np.testing.assert_allclose(
        exe.run(inputs)["y"], reference(inputs["x"], inputs["t"])["y"], rtol=RTOL, atol=ATOL
    )


def test_gpu_partition_without_fallback_is_a_device_error(code: dict[str, bytes], _cache: Path):
    art = make_artifact(code, p1_target="gpu")
    art.manifest["partitions"][1]["fallback"] = None
    with pytest.raises(DeviceError) as info:
        load(art)
    msg = str(info.value)
    assert "partition 1 (target 'gpu'" in msg and "no CPU fallback" in msg
    assert "cuda-cubin" in msg
    assert not _cache.exists()  # refused before writing any code


def test_registry_runs_a_new_code_format(
    code: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner for another format plugs in by decorator (here: numpy, standing in for GPU)."""
    monkeypatch.setattr("hcompile.runtime.runners.RUNNERS", dict(RUNNERS))
    from hcompile.runtime import runners

    @register_runner("test-numpy")
    class NumpyRunner(PartitionRunner):
        runs_on = "gpu"

        def __init__(self, partition: Any, code: Any, blob: bytes, params: Any, options: Any):
            super().__init__(partition, code, blob, params, options)
            self.w, self.b = (np.from_dlpack(p) for p in params)

        def run(self, args: Any) -> list[Any]:
            import tvm_ffi

            h, t = (np.from_dlpack(a) for a in args)
            z = (h @ self.w + self.b) * t
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            return [tvm_ffi.from_dlpack(np.ascontiguousarray(e / e.sum(-1, keepdims=True)))]

    assert runners.RUNNERS["test-numpy"] is NumpyRunner and "test-numpy" not in RUNNERS
    art = make_artifact(code, p1_target="gpu")
    art.manifest["partitions"][1]["code"][0]["format"] = "test-numpy"
    exe = load(art)
    assert (exe.partitions[1].runs_on, exe.partitions[1].fallback) == ("gpu", False)
    inputs = _inputs()
    np.testing.assert_allclose(
        exe.run(inputs)["y"], reference(inputs["x"], inputs["t"])["y"], rtol=RTOL, atol=ATOL
    )
    with pytest.raises(ValueError, match="already has a runner"):
        register_runner("test-numpy")(NumpyRunner)


def test_vm_failure_is_a_device_error_naming_the_partition(code: dict[str, bytes]) -> None:
    art = make_artifact(code)
    art.manifest["inputs"][0]["shape"] = [1, D_IN]  # the code was compiled for batch 2
    exe = load(art)
    with pytest.raises(DeviceError, match=r"partition 0 \(target cpu"):
        exe.run({"x": np.zeros((1, D_IN), np.float32), "t": _inputs()["t"]})


def test_missing_entry_function(code: dict[str, bytes]) -> None:
    art = make_artifact(code)
    art.manifest["partitions"][1]["code"][0]["entry"] = "forward"
    with pytest.raises(ArtifactError, match=r"partition 1: .* has no function 'forward'"):
        load(art)


def test_output_count_mismatch(code: dict[str, bytes]) -> None:
    art = make_artifact(code)
    art.manifest["partitions"][0]["outputs"] = ["h", "h2"]
    with pytest.raises(ArtifactError, match="partition 0 returned 1 tensors"):
        load(art).run(_inputs())


def test_weight_not_matching_manifest(code: dict[str, bytes]) -> None:
    art = make_artifact(code)
    art.manifest["weights"]["b1"]["shape"] = [D_HID + 1]
    with pytest.raises(ArtifactError, match=r"weight 'b1' holds float32\[100\]"):
        load(art)


# -- cache, threads ----------------------------------------------------------------------------


def test_code_cache_is_reused_and_repaired(hca: Path, _cache: Path) -> None:
    load(hca)
    files = sorted((_cache / "so").iterdir())
    assert len(files) == 2 and all(f.suffix == ".so" and len(f.stem) == 64 for f in files)
    before = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}
    load(hca)
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files} == before
    # a damaged cache entry is rewritten, not loaded (replaced, not written in place: the
    # original is mapped into this process, and truncating a mapped file kills it)
    (_cache / "garbage").write_bytes(b"garbage")
    os.replace(_cache / "garbage", files[0])
    out = load(hca).run(_inputs())
    assert files[0].stat().st_size > 1000
    np.testing.assert_allclose(out["y"], reference(**_inputs())["y"], rtol=RTOL, atol=ATOL)
    assert not [p for p in (_cache / "so").iterdir() if p.suffix == ".tmp"]


def test_cache_dir_from_environment(hca: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HCOMPILE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    load(hca)
    assert len(list((tmp_path / "xdg" / "hcompile" / "so").glob("*.so"))) == 2


def test_thread_safe(exe: Executor) -> None:
    seeds = range(8)
    serial = {s: exe.run(_inputs(s)) for s in seeds}
    failures: list[str] = []

    def work(seed: int) -> None:
        inputs = _inputs(seed)
        for i in range(50):
            try:
                out = exe.run(inputs)
            except Exception as e:  # a thread's exception would not fail the test by itself
                failures.append(f"thread {seed} run {i}: {e!r}")
                continue
            if not all(np.array_equal(out[k], serial[seed][k]) for k in out):
                failures.append(f"thread {seed} run {i}: different results")

    threads = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# -- imports and pickle ------------------------------------------------------------------------


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip


def test_import_runtime_pulls_in_neither_onnx_nor_tvm() -> None:
    proc = _python(
        """
        import sys
        import hcompile.runtime, hcompile.artifact
        bad = [m for m in sys.modules if m.split(".")[0] in ("onnx", "tvm")]
        print(bad)
        assert not bad, bad
        """
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_load_and_run_stays_out_of_the_compiler(hca: Path, tmp_path: Path) -> None:
    inputs = _inputs()
    np.savez(tmp_path / "in.npz", **inputs)
    expected = reference(inputs["x"], inputs["t"])["y"]
    np.save(tmp_path / "expected.npy", expected)
    proc = _python(
        f"""
        import sys
        import numpy as np
        import hcompile
        exe = hcompile.load({str(hca)!r})
        inputs = dict(np.load({str(tmp_path / "in.npz")!r}))
        y = exe.run(inputs)["y"]
        np.testing.assert_allclose(y, np.load({str(tmp_path / "expected.npy")!r}),
                                   rtol={RTOL}, atol={ATOL})
        forbidden = ("onnx", "tvm", "tvm.relax", "hcompile.frontend", "hcompile.passes",
                     "hcompile.targets", "hcompile.compiler")
        bad = [m for m in sys.modules
               if any(m == f or m.startswith(f + ".") for f in forbidden)]
        assert not bad, bad
        print("ok")
        """,
        env={"HCOMPILE_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr + proc.stdout


class _Unpickled(Exception):
    pass


def test_loading_and_running_never_unpickle(
    hca: Path, code: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _Unpickled("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    # the trap works: numpy's own pickled-array path trips it
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    buf.seek(0)
    with pytest.raises(_Unpickled):
        np.load(buf, allow_pickle=True)

    inputs = _inputs()
    out = load(Artifact.read(hca)).run(inputs)
    np.testing.assert_allclose(out["y"], reference(**inputs)["y"], rtol=RTOL, atol=ATOL)

    # a weight that is a pickled object array is refused, not unpickled
    art = make_artifact(code)
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    art.members[art.manifest["weights"]["b2"]["member"]] = buf.getvalue()
    with pytest.raises(ArtifactError, match=r"weight 'b2' .* not a valid \.npy array"):
        load(art)


def test_manifest_written_is_plain_json(hca: Path) -> None:
    import zipfile

    with zipfile.ZipFile(hca) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["partitions"][1]["inputs"] == ["h", "t"]
