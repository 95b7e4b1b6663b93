"""``hcompile compile MODEL.onnx``: import, place, generate code, write one artifact."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from hcompile.cli.files import check_output
from hcompile.errors import UsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compile", help="compile an ONNX model into an artifact (.hca)")
    p.add_argument("model", type=Path, help="the ONNX model file")
    p.add_argument("-o", "--output", type=Path, help="artifact path (default: MODEL.hca in .)")
    p.add_argument("--targets", default="cpu",
                   help="comma-separated targets that may be used (default: cpu)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="static shape of an input (repeatable); fixes symbolic dims")
    p.add_argument("--cuda-arch", help="GPU architecture for the gpu target's cubin "
                   "(default sm_80; PTX is included for newer GPUs)")
    p.add_argument("--fpga-compiler", choices=["aoc", "v++"],
                   help="also build the FPGA board binary with this vendor tool when on PATH")
    p.add_argument("--fpga-board", help="board name passed to --fpga-compiler")
    p.add_argument("--partitioner", default="auto",
                   choices=["auto", "single", "greedy", "dp", "heft", "exhaustive"],
                   help="placement algorithm (default auto: exact when small)")
    p.add_argument("--place", action="append", default=[], metavar="NODE_GLOB=TARGET",
                   help="pin nodes (name or op type glob) to a target (repeatable)")
    p.add_argument("--devices", metavar="PROFILE.toml|NAMES",
                   help="device profiles: a TOML file or names such as nvidia-h100")
    p.add_argument("--report", type=Path, metavar="REPORT.html",
                   help="write a self-contained HTML report of the placement")
    p.add_argument("--plan-json", type=Path, metavar="PLAN.json", help="write the plan JSON")
    p.add_argument("--shard-batch", metavar="auto|TARGET=FRACTION,...",
                   help="split the batch over devices: one copy of the model per device, "
                        "compiled for its rows (auto: from measured speed)")
    p.add_argument("--force", action="store_true", help="overwrite an existing non-artifact file")
    p.add_argument("--no-cache", action="store_true",
                   help="compile every partition afresh (skip the compile cache)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from hcompile.frontend import parse_input_shape

    if args.no_cache:
        os.environ["HCOMPILE_NO_CACHE"] = "1"  # read by hcompile.compile_cache
    shapes = dict(parse_input_shape(spec) for spec in args.input_shape)
    if len(shapes) != len(args.input_shape):
        raise UsageError("--input-shape is given twice for the same input")
    output: Path = args.output or Path(args.model.stem + ".hca")
    check_output(output, kind="artifact", force=args.force, protected=[args.model])
    console = Console(stderr=True, quiet=args.quiet)
    targets = [t for t in args.targets.split(",") if t.strip()]
    start = time.perf_counter()
    with console.status("importing...") as status:
        def progress(step: str, detail: str) -> None:
            status.update(f"[bold]{step}[/bold] {detail}")

        from hcompile.compiler import compile_model

        if args.shard_batch:
            from hcompile.sharding_compile import compile_sharded

            artifact = compile_sharded(args.model, args.shard_batch, input_shapes=shapes,
                                       targets=targets, progress=progress,
                                       target_options=_target_options(args))
        else:
            artifact = compile_model(args.model, targets=targets, input_shapes=shapes,
                                     progress=progress, target_options=_target_options(args),
                                     partitioner=args.partitioner, place=args.place,
                                     devices=args.devices, report_path=args.report)
        status.update("[bold]writing[/bold] " + str(output))
        artifact.save(output, force=args.force)
        if args.plan_json:
            args.plan_json.write_text(json.dumps(artifact.manifest["plan"], indent=1) + "\n")
    elapsed = time.perf_counter() - start
    if not args.quiet:
        _print_summary(console, artifact.manifest, output, elapsed)
    return 0


def _target_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    if args.fpga_compiler:
        # The fpga target reads these (documented in docs/targets.md).
        os.environ["HCOMPILE_FPGA_COMPILER"] = args.fpga_compiler
    if args.fpga_board:
        os.environ["HCOMPILE_FPGA_BOARD"] = args.fpga_board
    return {"gpu": {"arch": args.cuda_arch}} if args.cuda_arch else {}


def _print_summary(console: Console, manifest: dict[str, Any], output: Path,
                   elapsed: float) -> None:
    from hcompile.report import plan_table

    sharding = manifest.get("sharding")
    if sharding is None:
        console.print(plan_table(manifest["plan"]))
    else:  # a sharded artifact: one placement per shard (the merged plan has no nodes)
        for shard, plan in zip(sharding["shards"], manifest["plan"]["shards"], strict=True):
            console.print(f"shard for {shard['target']}: {shard['batch']} of "
                          f"{sharding['batch']} rows")
            console.print(plan_table(plan))
    size = output.stat().st_size
    console.print(f"wrote {output} ({size / 1e6:.2f} MB) in {elapsed:.1f} s")
