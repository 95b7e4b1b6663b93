"""``hcompile run ARTIFACT|MODEL.onnx``: run a compiled model (or an ONNX model, compiled
first in memory) on inputs from files or random data."""

from __future__ import annotations

import argparse
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hcompile.cli.files import check_output
from hcompile.cli.run_sharding import load_for_run
from hcompile.errors import InputError, UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run an artifact (or an ONNX model, compiled in memory "
                                   "first) and print (or save) its outputs")
    p.add_argument("artifact", type=Path, metavar="ARTIFACT|MODEL.onnx")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--inputs", type=Path, metavar="IN.npz", help="all inputs, by name")
    src.add_argument("--random", action="store_true", help="random inputs of the right shapes")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="one input from a .npy file (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    p.add_argument("--output", type=Path, metavar="OUT.npz", help="save the outputs here")
    p.add_argument("--force", action="store_true", help="overwrite a non-npz --output file")
    p.add_argument("--strict", action="store_true",
                   help="fail instead of running a device partition on its CPU fallback")
    p.add_argument("--profile", type=Path, metavar="TRACE.json",
                   help="write a Chrome trace of the run (open it in ui.perfetto.dev)")
    p.add_argument("--check", action="store_true",
                   help="also run each device partition's CPU code and print the max error")
    p.add_argument("--shard-batch", metavar="auto|TARGET=FRACTION,...",
                   help="with MODEL.onnx: compile it sharded this way; with an artifact: "
                        "require its compiled split to be this one (auto: any)")
    p.add_argument("--targets", help="with MODEL.onnx: targets to compile for (default cpu; "
                   "with --shard-batch auto: cpu,fpga)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="with MODEL.onnx: static shape of an input (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.output is not None:
        protected = [args.artifact, *(Path(s.partition("=")[2]) for s in args.input)]
        if args.inputs:
            protected.append(args.inputs)
        check_output(args.output, kind="npz", force=args.force, protected=protected)
    if args.profile is not None:
        _check_trace_output(args.profile, force=args.force, protected=[args.artifact])
    exe = load_for_run(args)
    feeds = _gather_inputs(args, exe.inputs)
    trace = None
    if args.profile is not None:
        from hcompile.runtime.trace import Trace

        trace = Trace()
    outputs = exe.run(feeds, trace=trace)
    if not args.quiet:
        for name, value in outputs.items():
            print(describe_array(name, value))
    if trace is not None:
        trace.save(args.profile)
        if not args.quiet:
            print(f"wrote {args.profile} ({len(trace.spans)} spans on {len(trace.tracks())} "
                  "tracks; open it in https://ui.perfetto.dev)")
    if args.check:
        from hcompile.runtime.check import check_partitions, format_checks

        print(format_checks(check_partitions(exe, feeds)))
    if args.output is not None:
        _save_npz(args.output, outputs)
        if not args.quiet:
            print(f"wrote {args.output}")
    return 0


def _check_trace_output(path: Path, *, force: bool, protected: list[Path]) -> None:
    """Like ``check_output``: an earlier trace (JSON with ``traceEvents``) may be replaced."""
    if any(p.exists() and p.resolve() == path.resolve() for p in protected):
        raise UsageError(f"the trace {path} is also an input of this command",
                         hint="choose another --profile path")
    if path.is_dir():
        raise UsageError(f"--profile {path} is a directory", hint="give a file path")
    if force or not path.exists():
        return
    try:
        with path.open("rb") as f:
            earlier = b'"traceEvents"' in f.read(64)
    except OSError:
        earlier = False
    if not earlier:
        raise UsageError(f"{path} exists and is not an hcompile trace; not overwriting it",
                         hint="choose another --profile path, or pass --force to replace it")


def _gather_inputs(args: argparse.Namespace, specs: Any) -> dict[str, np.ndarray]:
    if args.random and args.input:
        raise UsageError("--random cannot be combined with --input")
    feeds: dict[str, np.ndarray] = {}
    if args.inputs:
        feeds.update(_load_npz(args.inputs))
    for spec in args.input:
        name, sep, file = spec.partition("=")
        if not sep or not name or not file:
            raise UsageError(f"bad --input '{spec}'", hint="write NAME=FILE.npy")
        feeds[name] = _load_npy(Path(file))
    if args.random:
        rng = np.random.default_rng(args.seed)
        feeds = {s.name: random_array(rng, s.shape, s.dtype) for s in specs}
    if not feeds and specs:
        names = ", ".join(s.name for s in specs)
        raise UsageError("no inputs given",
                         hint=f"pass --inputs IN.npz, --input NAME=FILE.npy or --random "
                              f"(the model's inputs: {names})")
    return feeds


def random_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Standard-normal floats; small non-negative ints (valid as indices); random bools."""
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise InputError(f"{path} is a .npy file, not an .npz archive",
                                 hint="use --input NAME=FILE.npy for a single array")
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read inputs from {path}: {err}",
                         hint="write it with numpy.savez(path, name=array, ...)") from None


def _load_npy(path: Path) -> np.ndarray:
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {path}: {err}", hint="write it with numpy.save") from None
    if not isinstance(value, np.ndarray):
        raise InputError(f"{path} is an .npz archive, not a .npy array",
                         hint="use --inputs for .npz files")
    return value


def _save_npz(path: Path, outputs: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **outputs)  # type: ignore[arg-type]  # numpy stubs mistype **kwds
    fd, tmp = tempfile.mkstemp(prefix=".hcompile-", suffix=".npz", dir=path.parent or ".")
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)


def describe_array(name: str, value: np.ndarray, count: int = 6) -> str:
    flat = value.reshape(-1)
    head = np.array2string(flat[:count], precision=5, separator=", ", max_line_width=200)
    more = f" ... ({flat.size} values)" if flat.size > count else ""
    stats = ""
    if flat.size and np.issubdtype(value.dtype, np.number):
        stats = f"  min {flat.min():.5g} max {flat.max():.5g} mean {flat.mean():.5g}"
    return f"{name}: {value.dtype}{list(value.shape)}  {head}{more}{stats}"
