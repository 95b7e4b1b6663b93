"""Shared fixtures: the model zoo, ONNX Runtime as the oracle, the GPU tier."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
ZOO_DIR = ROOT / "models" / "onnx"
ZOO = ("mlp", "lenet5", "resnet18", "mobilenetv2", "transformer", "lstm")


def _has_cuda_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _has_cuda_gpu():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def zoo_path():
    """``zoo_path(name)`` -> path of a zoo model, building it from code if it is missing."""

    def get(name: str) -> Path:
        path = ZOO_DIR / f"{name}.onnx"
        if not path.exists():
            sys.path.insert(0, str(ROOT))
            from models.build import build_model

            build_model(name, ZOO_DIR)
        return path

    return get


def ort_run(model: Path | bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a model in ONNX Runtime (CPU, default optimisations) and return its outputs."""
    import onnxruntime as ort

    source = str(model) if isinstance(model, Path) else model
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("HCOMPILE_CACHE_DIR", str(cache))
    return cache


def hcompile_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``hcompile`` console script as a user would."""
    exe = Path(sys.executable).parent / "hcompile"
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def matmul_model(path: Path, rows: int = 4, k: int = 32, n: int = 16) -> Path:
    """A one-MatMul ONNX model ``x[rows, k] @ w[k, n]`` with a seeded constant ``w``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, n])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path
