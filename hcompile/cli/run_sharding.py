"""What ``hcompile run`` loads: an artifact, or an ONNX model compiled for the run, and how
``--shard-batch`` applies to each.

* ``hcompile run MODEL.onnx [--shard-batch SPEC]`` compiles the model in memory first
  (nothing is written), sharded by SPEC when given, so any split can be tried directly.
* ``hcompile run ARTIFACT --shard-batch SPEC``: the artifact's shards are compiled for their
  row counts, so the split is fixed in the file. ``auto`` accepts the artifact's split (and
  says which it is); an explicit SPEC must give every device the rows it was compiled for,
  else the error names both splits and how to get the one asked for.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from hcompile.errors import UsageError

log = logging.getLogger("hcompile")


def is_onnx_model(path: Path) -> bool:
    """Whether ``hcompile run`` should compile ``path`` (an ``.onnx`` file) first."""
    return path.suffix.lower() == ".onnx"


def load_for_run(args: argparse.Namespace) -> Any:
    """The executor ``hcompile run`` runs: the artifact, or the model compiled now."""
    import hcompile

    if not is_onnx_model(args.artifact):
        if args.input_shape or args.targets:
            raise UsageError("--input-shape and --targets apply when running an ONNX model",
                             hint=f"{args.artifact} is an artifact: its shapes and targets "
                                  "were fixed when it was compiled")
        exe = hcompile.load(args.artifact, strict=args.strict)
        if args.shard_batch is not None:
            check_sharding(exe, args.shard_batch, args.artifact)
        return exe
    if not args.artifact.is_file():
        raise UsageError(f"{args.artifact} does not exist", hint="give an .hca or .onnx file")
    artifact = _compile(args)
    return hcompile.load(artifact, strict=args.strict)


def _compile(args: argparse.Namespace) -> Any:
    from hcompile.frontend import parse_input_shape

    shapes = dict(parse_input_shape(spec) for spec in args.input_shape)
    targets = [t.strip() for t in (args.targets or "").split(",") if t.strip()]
    if args.shard_batch is None:
        from hcompile.compiler import compile_model

        art = compile_model(args.artifact, targets=targets or ["cpu"], input_shapes=shapes)
        log.info("compiled %s for this run (not saved; `hcompile %s` writes an artifact)",
                 args.artifact, args.artifact)
        return art
    from hcompile.runtime.sharding import Sharding
    from hcompile.sharding_compile import compile_sharded

    art = compile_sharded(args.artifact, args.shard_batch, input_shapes=shapes,
                          targets=targets or None)
    sharding = Sharding.from_manifest(art.manifest, art.parsed())
    assert sharding is not None
    log.info("compiled %s for this run, sharded as %s (not saved; `hcompile %s "
             "--shard-batch %s` writes an artifact)", args.artifact, sharding.describe(),
             args.artifact, args.shard_batch)
    return art


def check_sharding(exe: Any, spec: str, path: Path) -> None:
    """``--shard-batch`` with an artifact: the artifact must be sharded as asked."""
    from hcompile.runtime.sharding import parse_shard_spec, split_batch

    wanted = parse_shard_spec(spec)
    sharding = exe.sharding
    if sharding is None:
        raise UsageError(f"--shard-batch {spec}: {path} is not batch-sharded",
                         hint=f"compile it with `hcompile MODEL.onnx --shard-batch {spec}`, or "
                              f"run the ONNX model directly: `hcompile run MODEL.onnx "
                              f"--shard-batch {spec}`")
    if wanted is None:
        log.info("--shard-batch auto: using the split compiled into %s: %s", path,
                 sharding.describe())
        return
    have = {s.target: s.batch for s in sharding.shards}
    rows = {t: r for t, r in split_batch(sharding.batch, wanted).items() if r > 0}
    if rows == have:
        return
    asked = ", ".join(f"{t} {r}/{sharding.batch} rows" for t, r in rows.items())
    raise UsageError(
        f"--shard-batch {spec} asks for {asked}, but {path} is sharded as "
        f"{sharding.describe()}",
        hint="each shard's code is compiled for its row count, so an artifact's split is "
             f"fixed: recompile with `hcompile MODEL.onnx --shard-batch {spec}`, run the "
             f"ONNX model directly with `hcompile run MODEL.onnx --shard-batch {spec}`, or "
             "drop --shard-batch to use the compiled split")
