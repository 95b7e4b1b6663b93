"""The CLI as users run it: a subprocess, exit codes, messages, files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from tests.conftest import hcompile_cli, ort_run


def test_compile_run_inspect_round_trip(zoo_path, tmp_path: Path, isolated_cache):
    model = zoo_path("mlp")
    art = tmp_path / "m.hca"
    result = hcompile_cli(str(model), "-o", str(art))
    assert result.returncode == 0, result.stderr
    assert "symbolic batch dim 'batch' set to 1" in result.stderr
    assert zipfile.is_zipfile(art)

    x = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    out = tmp_path / "o.npz"
    result = hcompile_cli("run", str(art), "--inputs", str(tmp_path / "in.npz"), "--output",
                          str(out))
    assert result.returncode == 0, result.stderr
    assert "y: float32[1, 10]" in result.stdout
    with np.load(out) as data:
        np.testing.assert_allclose(data["y"], ort_run(model, {"x": x})[0], rtol=1e-4, atol=1e-5)

    np.save(tmp_path / "x.npy", x)
    result = hcompile_cli("run", str(art), "--input", f"x={tmp_path / 'x.npy'}")
    assert result.returncode == 0, result.stderr

    result = hcompile_cli("inspect", str(art))
    assert result.returncode == 0, result.stderr
    assert "cpu" in result.stdout and "x" in result.stdout


def test_random_run_and_default_output_name(zoo_path, tmp_path: Path, isolated_cache):
    result = hcompile_cli(str(zoo_path("lenet5")), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    art = tmp_path / "lenet5.hca"
    result = hcompile_cli("run", str(art), "--random", "--output", str(tmp_path / "o.npz"))
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "o.npz")["y"].shape == (1, 10)


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, path)
    return path


def test_unsupported_ops_exit_2_listing_each_op_and_node(tmp_path: Path):
    nodes = [helper.make_node("Frob", ["x"], ["a"], name="f1", domain="com.example"),
             helper.make_node("Zap", ["a"], ["b"], name="z1", domain="com.example"),
             helper.make_node("Frob", ["b"], ["y"], name="f2", domain="com.example")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, [2])],
                              [helper.make_tensor_value_info("y", 1, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    result = hcompile_cli(str(_save(model, tmp_path / "u.onnx")), "-o", str(tmp_path / "u.hca"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "com.example::Frob (nodes: f1, f2)" in result.stderr
    assert "com.example::Zap (nodes: z1)" in result.stderr
    assert not (tmp_path / "u.hca").exists()


def test_symbolic_dim_without_flag_exit_2(tmp_path: Path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", 1, ["N", "T", 4])],
                              [helper.make_tensor_value_info("y", 1, ["N", "T", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = _save(model, tmp_path / "s.onnx")
    result = hcompile_cli(str(path), "-o", str(tmp_path / "s.hca"))
    assert result.returncode == 2
    assert "input 'x'" in result.stderr and "--input-shape x=1,N,4" in result.stderr
    result = hcompile_cli(str(path), "-o", str(tmp_path / "s.hca"), "--input-shape", "x=2,5,4")
    assert result.returncode == 0, result.stderr


def test_malformed_model_exit_2(tmp_path: Path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\x01garbage")
    result = hcompile_cli(str(path))
    assert result.returncode == 2
    assert "not a valid ONNX file" in result.stderr and "Traceback" not in result.stderr


def test_bad_run_inputs_exit_2(zoo_path, tmp_path: Path, isolated_cache):
    art = tmp_path / "m.hca"
    assert hcompile_cli(str(zoo_path("mlp")), "-o", str(art), "-q").returncode == 0
    np.savez(tmp_path / "wrong.npz", x=np.zeros((2, 784), np.float32))
    result = hcompile_cli("run", str(art), "--inputs", str(tmp_path / "wrong.npz"))
    assert result.returncode == 2
    assert "shape" in result.stderr and "(1, 784)" in result.stderr
    np.savez(tmp_path / "name.npz", z=np.zeros((1, 784), np.float32))
    result = hcompile_cli("run", str(art), "--inputs", str(tmp_path / "name.npz"))
    assert result.returncode == 2 and "'z'" in result.stderr
    result = hcompile_cli("run", str(art))
    assert result.returncode == 2 and "--random" in result.stderr


def test_never_overwrites_foreign_files(zoo_path, tmp_path: Path, isolated_cache):
    precious = tmp_path / "notes.txt"
    precious.write_text("my notes")
    result = hcompile_cli(str(zoo_path("mlp")), "-o", str(precious))
    assert result.returncode == 2 and "--force" in result.stderr
    assert precious.read_text() == "my notes"
    model_copy = tmp_path / "mlp.onnx"
    model_copy.write_bytes(zoo_path("mlp").read_bytes())
    result = hcompile_cli(str(model_copy), "-o", str(model_copy))
    assert result.returncode == 2
    assert model_copy.read_bytes() == zoo_path("mlp").read_bytes()


def test_tampered_artifact_exit_2(zoo_path, tmp_path: Path, isolated_cache):
    art = tmp_path / "m.hca"
    assert hcompile_cli(str(zoo_path("mlp")), "-o", str(art), "-q").returncode == 0
    tampered = tmp_path / "t.hca"
    with zipfile.ZipFile(art) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("weights/"):
                data = data[:-4] + b"\x00\x00\x80\x3f"
            dst.writestr(info, data)
    result = hcompile_cli("run", str(tampered), "--random")
    assert result.returncode == 2
    assert "weights/" in result.stderr and "Traceback" not in result.stderr


def test_no_command_prints_help_and_exits_2():
    result = hcompile_cli()
    assert result.returncode == 2 and "usage" in result.stdout.lower()
    assert hcompile_cli("--version").stdout.startswith("hcompile ")


def test_ops_lists_supported_ops():
    result = hcompile_cli("ops")
    assert result.returncode == 0
    assert "MatMul" in result.stdout and "LSTM" in result.stdout


def test_debug_mode_dumps_ir_after_each_pass(zoo_path, tmp_path: Path, isolated_cache):
    dump = tmp_path / "dump"
    result = hcompile_cli(str(zoo_path("lstm")), "-o", str(tmp_path / "l.hca"), "-q",
                          env={"HCOMPILE_DEBUG": "1", "HCOMPILE_DUMP_DIR": str(dump)})
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in dump.iterdir())
    assert names == ["00-import.ir", "01-simplify.ir", "02-decompose_rnn.ir",
                     "03-fold_weights.ir", "04-dce.ir", "05-cost.ir", "06-place.ir"]
    assert "LSTM(" in (dump / "00-import.ir").read_text()
    assert "LSTM(" not in (dump / "02-decompose_rnn.ir").read_text()
    assert "@cpu" in (dump / "06-place.ir").read_text()


def test_gpu_artifact_falls_back_to_cpu_with_one_warning(zoo_path, tmp_path: Path,
                                                         isolated_cache):
    art = tmp_path / "g.hca"
    result = hcompile_cli(str(zoo_path("mlp")), "-o", str(art), "--targets", "gpu", "-q")
    assert result.returncode == 0, result.stderr
    x = np.random.default_rng(3).standard_normal((1, 784)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    result = hcompile_cli("run", str(art), "--inputs", str(tmp_path / "in.npz"), "--output",
                          str(tmp_path / "o.npz"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("runs on its CPU fallback") == 1
    np.testing.assert_allclose(np.load(tmp_path / "o.npz")["y"],
                               ort_run(zoo_path("mlp"), {"x": x})[0], rtol=1e-4, atol=1e-5)
    result = hcompile_cli("run", str(art), "--random", "--strict",
                          env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2
    assert "CPU fallback" in result.stderr and "Traceback" not in result.stderr
