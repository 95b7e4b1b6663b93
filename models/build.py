"""Build the model zoo into ONNX files.

Usage: ``python -m models.build [--out DIR] [--only NAME ...] [--force] [--verify] [--ops]``.

Every model is built from code with fixed seeds, so a rebuild gives the same file. Files already
present are kept unless ``--force``. ``--verify`` checks each file with onnx.checker and compares
ONNX Runtime's output against the source framework's (torch, or numpy for mlp) on a fresh seeded
input; ``--ops`` prints op counts.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx

from models.common import Reference

ZOO: tuple[str, ...] = ("mlp", "lenet5", "resnet18", "mobilenetv2", "transformer", "lstm")
"""Names of the zoo models; each is the module ``models.<name>`` and the file ``<name>.onnx``."""

DEFAULT_OUT = Path(__file__).resolve().parent / "onnx"
ATOL = 1e-4
"""Absolute tolerance of ONNX Runtime against the reference (fp32, other kernels and sum orders)."""

SHAPE_OPS = frozenset(
    {"Shape", "Gather", "Concat", "ConstantOfShape", "Reshape", "Unsqueeze", "Expand"}
)


def _module(name: str) -> ModuleType:
    if name not in ZOO:
        raise ValueError(f"unknown zoo model {name!r}; choose from {', '.join(ZOO)}")
    return importlib.import_module(f"models.{name}")


def build_model(name: str, out_dir: Path = DEFAULT_OUT, *, force: bool = False) -> Path:
    """Write ``<out_dir>/<name>.onnx`` (unless it exists and not `force`) and return its path."""
    path = Path(out_dir) / f"{name}.onnx"
    if force or not path.exists():
        export_model(name, path)
    return path


def export_model(name: str, path: Path) -> Reference:
    """Export zoo model `name` to `path` unconditionally; return its reference input/output pair."""
    module = _module(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target under a per-process name, then rename: a concurrent reader (or a
    # parallel test worker building the same model) never sees a half-written file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        ref: Reference = module.export(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return ref


def reference(name: str) -> Reference:
    """The reference input/output pair of zoo model `name` (exports into a scratch directory)."""
    with tempfile.TemporaryDirectory() as tmp:
        return export_model(name, Path(tmp) / f"{name}.onnx")


def verify_model(path: Path, ref: Reference, atol: float = ATOL) -> float:
    """Check the model at `path`, compare ONNX Runtime's output to `ref`; return the max abs error.

    Raises AssertionError when the outputs differ by more than `atol` or have a different shape.
    """
    import onnxruntime as ort

    onnx.checker.check_model(str(path), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(["y"], {"x": ref.x})
    assert y.shape == ref.y.shape, f"{path.name}: shape {y.shape} != reference {ref.y.shape}"
    err = float(np.max(np.abs(y - ref.y)))
    assert err <= atol, f"{path.name}: max |onnxruntime - reference| = {err:.3g} > {atol}"
    return err


def op_counts(path: Path) -> Counter[str]:
    """Op type -> number of nodes in the main graph of the model at `path`."""
    return Counter(
        node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m models.build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default models/onnx)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=ZOO, metavar="NAME", help=f"subset of {', '.join(ZOO)}"
    )
    parser.add_argument("--force", action="store_true", help="rebuild files that already exist")
    parser.add_argument(
        "--verify", action="store_true", help="check and compare against onnxruntime"
    )
    parser.add_argument("--ops", action="store_true", help="print each model's op counts")
    args = parser.parse_args(argv)

    failed = 0
    for name in args.only or ZOO:
        path = args.out / f"{name}.onnx"
        start = time.perf_counter()
        ref: Reference | None = None
        if args.force or not path.exists():
            ref = export_model(name, path)
            what = f"built in {time.perf_counter() - start:.2f} s"
        else:
            what = "cached"
        line = f"{name:<12} {path}  {path.stat().st_size / 1e6:7.2f} MB  {what}"
        if args.verify:
            try:
                err = verify_model(path, ref if ref is not None else reference(name))
                line += f"  verified (max abs err {err:.2e})"
            except AssertionError as exc:
                line += f"  VERIFY FAILED: {exc}"
                failed += 1
        print(line, flush=True)
        if args.ops:
            counts = op_counts(path)
            shape = sorted(op for op in counts if op in SHAPE_OPS)
            print("    ops: " + ", ".join(f"{op} {n}" for op, n in counts.most_common()))
            print(f"    shape ops: {', '.join(shape) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
