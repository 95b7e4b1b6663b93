"""``hcompile run --shard-batch`` as users run it: on an ONNX model (compiled for the run
with that split) and on artifacts (the compiled split, or a clear error naming both)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import hcompile_cli, ort_run
from tests.test_sharding import _transpose_model

X = np.random.default_rng(0).standard_normal((4, 784)).astype(np.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("in") / "in.npz"
    np.savez(path, x=X)
    return path


@pytest.fixture(scope="module")
def sharded_hca(zoo_path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hca") / "s.hca"
    result = hcompile_cli(str(zoo_path("mlp")), "--input-shape", "x=4,784", "--shard-batch",
                          "cpu=1,fpga=1", "-o", str(path))
    assert result.returncode == 0, result.stderr
    # the summary shows each shard's placement (it used to fail on the merged plan)
    assert "shard for cpu: 2 of 4 rows" in result.stderr
    assert "shard for fpga: 2 of 4 rows" in result.stderr
    return path


def test_onnx_model_is_compiled_with_the_requested_split(zoo_path, inputs, tmp_path,
                                                         isolated_cache):
    out = tmp_path / "o.npz"
    result = hcompile_cli("run", str(zoo_path("mlp")), "--input-shape", "x=4,784",
                          "--shard-batch", "cpu=0.25,fpga=0.75", "--inputs", str(inputs),
                          "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert "sharded as cpu 1/4 rows, fpga 3/4 rows (not saved" in result.stderr
    with np.load(out) as data:
        np.testing.assert_allclose(data["y"], ort_run(zoo_path("mlp"), {"x": X})[0],
                                   rtol=1e-4, atol=1e-5)
    plain = hcompile_cli("run", str(zoo_path("mlp")), "--input-shape", "x=4,784", "--random")
    assert plain.returncode == 0, plain.stderr
    assert "y: float32[4, 10]" in plain.stdout and "for this run (not saved" in plain.stderr


def test_onnx_model_with_auto_prints_the_choice(zoo_path, isolated_cache):
    result = hcompile_cli("run", str(zoo_path("mlp")), "--input-shape", "x=8,784",
                          "--shard-batch", "auto", "--random")
    assert result.returncode == 0, result.stderr
    note = next(line for line in result.stderr.splitlines() if "--shard-batch auto:" in line)
    assert "predicted makespan" in note
    assert "y: float32[8, 10]" in result.stdout


def test_onnx_model_that_is_not_batch_major_exits_2(tmp_path, isolated_cache):
    path = tmp_path / "t.onnx"
    onnx.save(_transpose_model(), path)
    result = hcompile_cli("run", str(path), "--shard-batch", "cpu=1,fpga=1", "--random")
    assert result.returncode == 2
    assert "output 't' is not batch-major" in result.stderr and "Traceback" not in result.stderr


def test_artifact_runs_its_own_split(sharded_hca, inputs, isolated_cache):
    for spec in ("cpu=1,fpga=1", "fpga=0.5,cpu=0.5"):  # the same rows, spelled otherwise
        result = hcompile_cli("run", str(sharded_hca), "--inputs", str(inputs),
                              "--shard-batch", spec)
        assert result.returncode == 0, result.stderr
    auto = hcompile_cli("run", str(sharded_hca), "--random", "--shard-batch", "auto")
    assert auto.returncode == 0, auto.stderr
    assert "using the split compiled into" in auto.stderr
    assert "cpu 2/4 rows, fpga 2/4 rows" in auto.stderr


def test_artifact_with_another_split_exits_2_naming_both(sharded_hca, isolated_cache):
    result = hcompile_cli("run", str(sharded_hca), "--random", "--shard-batch",
                          "cpu=0.25,fpga=0.75")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "asks for cpu 1/4 rows, fpga 3/4 rows" in result.stderr
    assert "is sharded as cpu 2/4 rows, fpga 2/4 rows" in result.stderr
    assert "hcompile run MODEL.onnx --shard-batch cpu=0.25,fpga=0.75" in result.stderr
    gpu = hcompile_cli("run", str(sharded_hca), "--random", "--shard-batch", "cpu=1,gpu=1")
    assert gpu.returncode == 2 and "asks for cpu 2/4 rows, gpu 2/4 rows" in gpu.stderr


def test_model_flags_with_an_artifact_exit_2(sharded_hca):
    result = hcompile_cli("run", str(sharded_hca), "--random", "--input-shape", "x=2,784")
    assert result.returncode == 2
    assert "apply when running an ONNX model" in result.stderr
    missing = hcompile_cli("run", "nowhere.onnx", "--random")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
